/** Argument helpers shared by the CLI commands: typed usage errors and JSON / number parsing. */

/** A command-line mistake: printed as `emlab: <message>` with exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** A JSON array of arrays of integers, all rows of equal length (a flat array of integers is one row). */
export function parseIdRows(flag: string, text: string | undefined): number[][] {
  if (text === undefined) throw new UsageError(`${flag} is required`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${flag}: not valid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(value) || value.length === 0) throw new UsageError(`${flag}: expected a non-empty JSON array of arrays of integers`);
  if (value.every((v) => typeof v === "number")) value = [value];
  const rows = (value as unknown[]).map((row, i) => {
    if (!Array.isArray(row) || row.length === 0) throw new UsageError(`${flag}: row ${i} is not a non-empty array`);
    return row.map((v, j) => {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
        throw new UsageError(`${flag}: row ${i}, position ${j} is not a non-negative integer`);
      return v;
    });
  });
  const width = rows[0]!.length;
  rows.forEach((row, i) => {
    if (row.length !== width) throw new UsageError(`${flag}: row ${i} has ${row.length} entries, row 0 has ${width} (pad the rows)`);
  });
  return rows;
}

export function parseNumber(
  flag: string,
  text: string | undefined,
  options: { integer?: boolean; min?: number; max?: number } = {},
): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || (options.integer && !Number.isInteger(value))) {
    throw new UsageError(`${flag}: expected ${options.integer ? "an integer" : "a number"}, got ${JSON.stringify(text)}`);
  }
  if (options.min !== undefined && value < options.min) throw new UsageError(`${flag}: must be >= ${options.min}`);
  if (options.max !== undefined && value > options.max) throw new UsageError(`${flag}: must be <= ${options.max}`);
  return value;
}

export function required<T>(flag: string, value: T | undefined): T {
  if (value === undefined) throw new UsageError(`${flag} is required`);
  return value;
}
