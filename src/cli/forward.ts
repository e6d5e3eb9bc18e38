/**
 * `emlab forward --model DIR --ids JSON [--attention-mask JSON] --out FILE.safetensors [--dtype] [--device]`:
 * runs the model and writes `logits` [batch, pos, vocab] and `hidden_states.{i}` (Hugging Face
 * convention) as float32 safetensors.
 */
import { saveSafetensors } from "../io/safetensors.js";
import { type Tensor, tensor, tidy } from "../tensor/index.js";
import { parseIdRows, required, UsageError } from "./args.js";
import { parseOrHelp } from "./generate.js";
import { modelOptions, openModel } from "./model-args.js";
import { defineCommand } from "./options.js";

export const forwardCommand = defineCommand({
  name: "forward",
  summary: "Logits and hidden states (float32 safetensors, Hugging Face's convention) of a model on token ids.",
  options: {
    ...modelOptions,
    ids: { type: "string", value: "JSON", required: true, description: "token ids: [[...], ...] (rows of equal length) or one row [...]" },
    "attention-mask": { type: "string", value: "JSON", description: "1 for tokens, 0 for padding, the shape of --ids" },
    out: { type: "string", value: "FILE.safetensors", required: true, description: "output file" },
  },
});

export function runForward(argv: readonly string[]): number {
  const parsed = parseOrHelp(forwardCommand, argv);
  if (parsed === null) return 0;
  const { values } = parsed;
  const ids = parseIdRows("--ids", values.ids);
  const mask = values["attention-mask"] === undefined ? null : parseIdRows("--attention-mask", values["attention-mask"]);
  if (mask && (mask.length !== ids.length || mask[0]!.length !== ids[0]!.length)) {
    throw new UsageError("--attention-mask must have the shape of --ids");
  }
  const out = required("--out", values.out);
  const model = openModel(values);
  try {
    tidy(() => {
      const shape = [ids.length, ids[0]!.length];
      const idTensor = tensor(BigInt64Array.from(ids.flat(), BigInt), { shape });
      const maskTensor = mask ? tensor(BigInt64Array.from(mask.flat(), BigInt), { shape }) : null;
      const result = model.decoder.forward(idTensor, { attentionMask: maskTensor, hiddenStates: true });
      const tensors: Record<string, Tensor> = { logits: result.logits!.to({ dtype: "f32", device: "cpu" }) };
      result.hiddenStates.forEach((h, i) => {
        tensors[`hidden_states.${i}`] = h.to({ dtype: "f32", device: "cpu" });
      });
      saveSafetensors(out, tensors, { model: model.dir, family: model.spec.family });
    });
  } finally {
    model.dispose();
  }
  process.stderr.write(`wrote ${out}\n`);
  return 0;
}
