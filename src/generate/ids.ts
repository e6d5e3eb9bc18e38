/**
 * Token-id arguments as the public API accepts them: rows of ids (number[][]), one row (number[]) or an
 * int64 tensor [batch, pos] / [pos]. A 1-D input is one row; anything else is an `IdShapeError` that
 * names the argument, raised before any tensor work.
 */
import { Data } from "effect";
import { type Device, type Tensor, tensor } from "../tensor/index.js";

export class IdShapeError extends Data.TaggedError("IdShapeError")<{ readonly argument: string; readonly message: string }> {}

export type IdRowsInput = readonly (readonly number[])[] | readonly number[];

/** Validates `value` as token-id rows (a flat list is one row). */
export function idRows(argument: string, value: unknown): number[][] {
  const fail = (why: string): never => {
    throw new IdShapeError({ argument, message: `${argument}: ${why}` });
  };
  if (!Array.isArray(value) || value.length === 0) return fail("expected a non-empty array of token ids or of rows of token ids");
  const rows: unknown[] = value.every((v) => typeof v === "number") ? [value] : value;
  const checked = rows.map((row, i) => {
    if (!Array.isArray(row)) return fail(`row ${i} is not an array (mixing ids and rows?)`);
    if (row.length === 0) return fail(`row ${i} is empty`);
    return row.map((v, j) =>
      typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : fail(`row ${i}, position ${j} is not a non-negative integer`),
    );
  });
  const width = checked[0]!.length;
  checked.forEach((row, i) => {
    if (row.length !== width) fail(`row ${i} has ${row.length} ids, row 0 has ${width} (pad the rows and pass an attention mask)`);
  });
  return checked;
}

/** An int64 [batch, pos] tensor from rows, a flat row or a tensor ([pos] becomes [1, pos]); the caller disposes it. */
export function idTensor(argument: string, value: IdRowsInput | Tensor, device: Device | Tensor["device"] = "cpu"): Tensor {
  if (Array.isArray(value)) {
    const rows = idRows(argument, value);
    return tensor(
      BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
      { shape: [rows.length, rows[0]!.length], device },
    );
  }
  const t = value as Tensor;
  if (typeof t !== "object" || t === null || typeof (t as { ndim?: unknown }).ndim !== "number") {
    throw new IdShapeError({ argument, message: `${argument}: expected token ids (number[][], number[] or an int64 tensor)` });
  }
  if (t.ndim !== 1 && t.ndim !== 2)
    throw new IdShapeError({ argument, message: `${argument}: expected [batch, pos] or [pos], got shape [${t.shape.join(", ")}]` });
  if (t.numel === 0) throw new IdShapeError({ argument, message: `${argument}: empty` });
  if (t.dtype !== "i64" && t.dtype !== "i32")
    throw new IdShapeError({ argument, message: `${argument}: expected integer ids, got ${t.dtype}` });
  const moved = t.to({ dtype: "i64", device: device as Device });
  if (t.ndim === 2) return moved;
  const row = moved.unsqueeze(0);
  moved.dispose();
  return row;
}
