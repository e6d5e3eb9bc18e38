// The option tables behind every command: parsing (defaults applied, negative numbers as values, unknown options
// and missing values refused, --help), and the help / usage derived from the same table, for every command.
import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/cli/args.js";
import { commands, usage } from "../../src/cli/main.js";
import { defineCommand, HELP, helpText, parseCommand, usageLine } from "../../src/cli/options.js";

const demo = defineCommand({
  name: "demo",
  summary: "A command for the tests.",
  positionals: [{ name: "FILE", description: "an input" }],
  options: {
    scale: { type: "string", value: "S", default: "8", description: "a scale" },
    model: { type: "string", value: "DIR", required: true, description: "a model" },
    layers: { type: "string", value: "L", description: "layers" },
    json: { type: "boolean", description: "JSON out" },
  },
});

describe("parseCommand", () => {
  it("applies defaults, takes negative numbers (-4, -0.5, -1e-3) as values, and --name=value", () => {
    const a = parseCommand(demo, ["f.txt", "--model", "m", "--scale", "-4"]);
    expect(a).not.toBe(HELP);
    if (a === HELP) return;
    expect(a.values).toEqual({ scale: "-4", model: "m", layers: undefined, json: false });
    expect(a.positionals).toEqual(["f.txt"]);
    const b = parseCommand(demo, ["--scale=-0.5", "--model", "m", "f", "--json", "--layers", "-1e-3"]);
    if (b === HELP) throw new Error("help");
    expect([b.values.scale, b.values.layers, b.values.json]).toEqual(["-0.5", "-1e-3", true]);
    const c = parseCommand(demo, ["--model", "m", "f"]);
    if (c === HELP) throw new Error("help");
    expect(c.values.scale).toBe("8");
  });

  it("refuses unknown options, a missing value, a flag with a value, a missing required option and extra arguments", () => {
    const cases: [string[], RegExp][] = [
      [["f", "--model", "m", "--frobnicate"], /unknown option --frobnicate for emlab demo/],
      [["f", "--model"], /--model needs a value \(DIR\)/],
      [["f", "--model", "--json"], /--model needs a value/],
      [["f", "--model", "m", "--json=yes"], /--json is a flag/],
      [["f"], /--model is required/],
      [["--model", "m"], /needs FILE/],
      [["f", "g", "--model", "m"], /unexpected argument "g"/],
      [["f", "--model", "m", "-x"], /unknown option "-x"/],
    ];
    for (const [argv, message] of cases) {
      expect(() => parseCommand(demo, argv), argv.join(" ")).toThrow(UsageError);
      expect(() => parseCommand(demo, argv), argv.join(" ")).toThrow(message);
    }
  });

  it("returns HELP for --help and -h, wherever they are", () => {
    expect(parseCommand(demo, ["--help"])).toBe(HELP);
    expect(parseCommand(demo, ["f", "--model", "m", "-h"])).toBe(HELP);
  });
});

describe("help and usage from the tables", () => {
  it("the demo's help lists every option with its default, and the usage line names every option", () => {
    const help = helpText(demo);
    expect(help).toMatch(/^usage: emlab demo FILE --model DIR \[--scale S\] \[--layers L\] \[--json\]/);
    expect(help).toMatch(/--scale S\s+a scale \(default: 8\)/);
    expect(help).toMatch(/--model DIR\s+a model \(required\)/);
    expect(help).toMatch(/--layers L\s+layers \(default: none\)/);
    expect(help).toMatch(/--json\s+JSON out \(default: off\)/);
  });

  it.each(commands.map((c) => [c.name, c] as const))(
    "%s: --help shows every option of its table with a default, and the usage line has them all",
    (_name, spec) => {
      const help = helpText(spec);
      const line = usageLine(spec);
      for (const [name, option] of Object.entries(spec.options)) {
        const helpLine = help
          .split("\n")
          .find(
            (l) =>
              l.trimStart().startsWith(`--${name}`) &&
              (l.trimStart().length === `--${name}`.length || /[\s]/.test(l.trimStart()[`--${name}`.length]!)),
          );
        expect(helpLine, `--${name} in help`).toBeDefined();
        const described = help.slice(help.indexOf(helpLine!)).split("\n").slice(0, 2).join(" ");
        expect(described, `--${name}: a default or (required)`).toMatch(/\((default: [^)]*|required)\)|\(default:/);
        if (option.default !== undefined) expect(described).toContain(`(default: ${option.default})`);
        expect(line, `usage of ${spec.name} has --${name}`).toContain(`--${name}`);
      }
      // The overall usage contains this command's complete usage line.
      expect(usage()).toContain(line.replace(/\n/g, "\n  "));
    },
  );

  it("the model commands list --adapter in their usage line", () => {
    for (const name of [
      "forward",
      "generate",
      "chat",
      "eval",
      "steer",
      "ablate",
      "efficiency",
      "stability",
      "significance",
      "gradients",
      "monitor",
      "kl-data",
      "direction",
    ]) {
      expect(usageLine(commands.find((c) => c.name === name)!), name).toContain("[--adapter DIR]");
    }
  });
});
