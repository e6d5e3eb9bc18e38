/**
 * Command-line options declared once per command, as a table: each option's kind, value name, default
 * and description. From the table come the parser (defaults applied, unknown options refused, a value
 * that starts with "-" such as -4 or -0.5 taken as a value), `emlab COMMAND --help` (every option with
 * its default) and the usage line of `emlab --help`. Values are strings (parsed and range-checked by
 * the command with parseNumber, which names the flag) or booleans.
 */
import { UsageError } from "./args.js";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  /** What the value is, for help: DIR, FILE, N, JSON ... (string options). */
  readonly value?: string;
  /** Applied when the option is absent, and shown in help (string options). */
  readonly default?: string;
  readonly description: string;
  readonly required?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

export interface CommandSpec<T extends OptionTable = OptionTable> {
  readonly name: string;
  readonly summary: string;
  /** Positional arguments, e.g. [{ name: "CONFIG", ... }]; `variadic` takes one or more. */
  readonly positionals?: readonly {
    readonly name: string;
    readonly description: string;
    readonly variadic?: boolean;
    readonly optional?: boolean;
  }[];
  readonly options: T;
  /** Constraints the table cannot express ("give exactly one of --ids and --prompt"), shown in help. */
  readonly notes?: readonly string[];
}

/** Parsed values: strings for string options (defaults applied), booleans for flags. */
export type OptionValues<T extends OptionTable> = {
  -readonly [K in keyof T]: T[K]["type"] extends "boolean" ? boolean : T[K]["default"] extends string ? string : string | undefined;
};

export function defineCommand<const T extends OptionTable>(spec: CommandSpec<T>): CommandSpec<T> {
  return spec;
}

/** A "help requested" marker returned instead of values. */
export const HELP = Symbol("help");

/** Parses `argv` against the table; returns HELP for -h / --help. Errors are UsageErrors naming the option. */
export function parseCommand<T extends OptionTable>(
  spec: CommandSpec<T>,
  argv: readonly string[],
): { values: OptionValues<T>; positionals: string[] } | typeof HELP {
  const values: Record<string, string | boolean | undefined> = {};
  const positionals: string[] = [];
  const see = `(see emlab ${spec.name} --help)`;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "-h" || token === "--help") return HELP;
    if (token === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!token.startsWith("--") || token === "--") {
      if (token.startsWith("-") && token.length > 1 && !isNumeric(token))
        throw new UsageError(`unknown option ${JSON.stringify(token)} ${see}`);
      positionals.push(token);
      continue;
    }
    const eq = token.indexOf("=");
    const name = token.slice(2, eq < 0 ? undefined : eq);
    const option = Object.hasOwn(spec.options, name) ? spec.options[name] : undefined;
    if (option === undefined) throw new UsageError(`unknown option --${name} for emlab ${spec.name} ${see}`);
    if (option.type === "boolean") {
      if (eq >= 0) throw new UsageError(`--${name} is a flag and takes no value`);
      values[name] = true;
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = token.slice(eq + 1);
    else {
      const next = argv[i + 1];
      // The next token is this option's value unless it is another option (a negative number is a value).
      if (next === undefined || (next.startsWith("-") && next.length > 1 && !isNumeric(next)))
        throw new UsageError(`--${name} needs a value${option.value ? ` (${option.value})` : ""}`);
      value = next;
      i++;
    }
    values[name] = value;
  }
  for (const [name, option] of Object.entries(spec.options)) {
    if (values[name] === undefined) values[name] = option.type === "boolean" ? false : option.default;
    if (option.required && values[name] === undefined) throw new UsageError(`--${name} is required ${see}`);
  }
  const slots = spec.positionals ?? [];
  const variadic = slots.some((p) => p.variadic);
  const needed = slots.filter((p) => !p.optional).length;
  if (positionals.length < needed)
    throw new UsageError(
      `emlab ${spec.name} needs ${slots.map((p) => `${p.name}${p.variadic ? "..." : ""}: ${p.description}`).join("; ")} ${see}`,
    );
  if (!variadic && positionals.length > slots.length)
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[slots.length])} for emlab ${spec.name} ${see}`);
  return { values: values as OptionValues<T>, positionals };
}

function isNumeric(token: string): boolean {
  return /^-(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(token);
}

const optionSynopsis = (name: string, option: OptionSpec): string =>
  option.type === "boolean" ? `--${name}` : `--${name} ${option.value ?? "VALUE"}`;

/** The complete usage line: positionals, required options, then every optional one in brackets. */
export function usageLine(spec: CommandSpec): string {
  const parts = [`emlab ${spec.name}`];
  for (const p of spec.positionals ?? []) parts.push(p.optional ? `[${p.name}]` : p.variadic ? `${p.name}...` : p.name);
  const entries = Object.entries(spec.options);
  for (const [name, option] of entries) if (option.required) parts.push(optionSynopsis(name, option));
  for (const [name, option] of entries) if (!option.required) parts.push(`[${optionSynopsis(name, option)}]`);
  return wrap(parts, 100, "    ");
}

/** `emlab COMMAND --help`: usage, summary, positionals, notes, and every option with its default. */
export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = [];
  for (const p of spec.positionals ?? []) rows.push([p.name, p.description]);
  for (const [name, option] of Object.entries(spec.options)) {
    const extra = option.required
      ? " (required)"
      : option.type === "boolean"
        ? " (default: off)"
        : option.default !== undefined
          ? ` (default: ${option.default})`
          : option.description.includes("(default:")
            ? ""
            : " (default: none)";
    rows.push([optionSynopsis(name, option), `${option.description}${extra}`]);
  }
  rows.push(["-h, --help", "show this help"]);
  const width = Math.min(34, Math.max(...rows.map(([left]) => left.length)) + 2);
  const lines = rows.map(([left, right]) =>
    left.length + 2 > width ? `  ${left}\n  ${" ".repeat(width)}${right}` : `  ${left.padEnd(width)}${right}`,
  );
  return [
    `usage: ${usageLine(spec)}`,
    "",
    spec.summary,
    ...(spec.notes && spec.notes.length > 0 ? ["", ...spec.notes] : []),
    "",
    "options:",
    ...lines,
    "",
  ].join("\n");
}

function wrap(parts: readonly string[], width: number, indent: string): string {
  const lines: string[] = [];
  let line = "";
  for (const part of parts) {
    if (line !== "" && line.length + 1 + part.length > width) {
      lines.push(line);
      line = indent + part;
    } else line = line === "" ? part : `${line} ${part}`;
  }
  lines.push(line);
  return lines.join("\n");
}
