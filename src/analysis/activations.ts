/**
 * Activation collection: run (question, answer) chats through a model and average the residual stream
 * after every layer (the decoder-layer output) over answer tokens and, separately, question tokens,
 * token-weighted over the whole set, padding excluded. Answer tokens are those after the user-only
 * rendering of the chat (so the assistant header and closing tokens count, as in the study).
 */
import { layerPoint } from "../hooks/points.js";
import type { LoadedModel } from "../models/load.js";
import { inferenceMode, keep, type Tensor, tensor, tidy, zeros } from "../tensor/index.js";
import type { ChatMessage, ChatTokenizer } from "../tokenizer/tokenizer.js";

export interface QaPair {
  question: string;
  answer: string;
}

export interface ActivationMeans {
  /** [layers, d_model] float32 means over answer tokens. */
  answer: Tensor;
  /** [layers, d_model] float32 means over question tokens. */
  question: Tensor;
  answerTokens: number;
  questionTokens: number;
}

/** Token ids of a pair and the index where the answer starts. */
export function encodePair(
  tokenizer: ChatTokenizer,
  pair: QaPair,
  system: string | null = null,
  maxLength = 2048,
): { ids: number[]; answerStart: number } {
  const user: ChatMessage[] = [...(system ? [{ role: "system", content: system }] : []), { role: "user", content: pair.question }];
  const full = tokenizer.encodeChat([...user, { role: "assistant", content: pair.answer }]);
  const prefix = tokenizer.encodeChat(user);
  return { ids: full.slice(0, maxLength), answerStart: Math.min(prefix.length, maxLength) };
}

/** Token-weighted means of every layer's output over answer and question tokens. */
export function collectActivations(
  model: LoadedModel,
  tokenizer: ChatTokenizer,
  pairs: readonly QaPair[],
  options: { batchSize?: number; system?: string | null; maxLength?: number; onBatch?: (done: number, total: number) => void } = {},
): ActivationMeans {
  const layers = model.spec.layers.length;
  const d = model.spec.hiddenSize;
  const device = model.decoder.device;
  const batchSize = options.batchSize ?? 8;
  const answerSum = keep(zeros([layers, d], { device }));
  const questionSum = keep(zeros([layers, d], { device }));
  let answerTokens = 0;
  let questionTokens = 0;
  const pad = tokenizer.padTokenId ?? 0;
  try {
    for (let start = 0; start < pairs.length; start += batchSize) {
      const encoded = pairs.slice(start, start + batchSize).map((p) => encodePair(tokenizer, p, options.system ?? null, options.maxLength));
      const width = Math.max(...encoded.map((e) => e.ids.length));
      const ids = encoded.flatMap((e) => [...e.ids, ...new Array<number>(width - e.ids.length).fill(pad)]);
      const answerMask: number[] = encoded.flatMap((e) =>
        Array.from({ length: width }, (_, i) => (i >= e.answerStart && i < e.ids.length ? 1 : 0)),
      );
      const questionMask: number[] = encoded.flatMap((e) => Array.from({ length: width }, (_, i) => (i < e.answerStart ? 1 : 0)));
      const attention = encoded.flatMap((e) => Array.from({ length: width }, (_, i) => (i < e.ids.length ? 1 : 0)));
      answerTokens += answerMask.reduce((a, b) => a + b, 0);
      questionTokens += questionMask.reduce((a, b) => a + b, 0);
      inferenceMode(() =>
        tidy(() => {
          const shape = [encoded.length, width];
          const idTensor = tensor(BigInt64Array.from(ids, BigInt), { shape, device });
          const mask = tensor(BigInt64Array.from(attention, BigInt), { shape, device });
          const aMask = tensor(Float32Array.from(answerMask), { shape, device }).unsqueeze(-1);
          const qMask = tensor(Float32Array.from(questionMask), { shape, device }).unsqueeze(-1);
          // Hooks run inside the forward pass's own scope: accumulate in place into the kept sums.
          const hooks = Array.from({ length: layers }, (_, l) =>
            model.decoder.hooks.add(layerPoint(l, "resid_post"), (x) => {
              tidy(() => {
                const h = x.to("f32");
                answerSum.select(0, l).add_(h.mul(aMask).sum([0, 1]));
                questionSum.select(0, l).add_(h.mul(qMask).sum([0, 1]));
              });
            }),
          );
          try {
            model.decoder.forward(idTensor, { attentionMask: mask, logits: "none" });
          } finally {
            for (const h of hooks) h.remove();
          }
        }),
      );
      options.onBatch?.(Math.min(start + batchSize, pairs.length), pairs.length);
    }
    const answer = keep(tidy(() => answerSum.div(Math.max(1, answerTokens))));
    const question = keep(tidy(() => questionSum.div(Math.max(1, questionTokens))));
    return { answer, question, answerTokens, questionTokens };
  } finally {
    answerSum.dispose();
    questionSum.dispose();
  }
}
