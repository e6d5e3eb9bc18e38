/**
 * A judge that runs on a model loaded by emlab, with the API protocol: the prompt as one user turn
 * of the model's chat template (generation prompt added), the next-token distribution's 20 most
 * likely tokens as the "top logprobs", then the same 0..100 scoring and 0.25 rule. Lets evaluation
 * run offline and judges be compared.
 */
import { basename } from "node:path";
import { Effect } from "effect";
import type { LoadedModel } from "../../models/load.js";
import { inferenceMode, tensor, tidy } from "../../tensor/index.js";
import type { ChatTokenizer } from "../../tokenizer/tokenizer.js";
import { type Judge, JudgeError } from "./judge.js";
import { redactMessage } from "./redact.js";
import { scoreFromTopLogprobs, type TopLogprob } from "./score.js";

export class LocalJudge implements Judge {
  readonly model: string;

  constructor(
    private readonly loaded: LoadedModel,
    private readonly tokenizer: ChatTokenizer,
    options: { name?: string; minimumMass?: number } = {},
  ) {
    this.model = options.name ?? `local:${basename(loaded.dir)}`;
    this.minimumMass = options.minimumMass ?? 0.25;
  }

  private readonly minimumMass: number;

  /** The 20 most likely first tokens of the judge's reply, with their log-probabilities. */
  topLogprobs(prompt: string): TopLogprob[] {
    const ids = this.tokenizer.promptIds([{ role: "user", content: prompt }]);
    return inferenceMode(() =>
      tidy(() => {
        const input = tensor(BigInt64Array.from(ids, BigInt), { shape: [1, ids.length], device: this.loaded.decoder.device });
        const logits = this.loaded.decoder.forward(input, { logits: "last" }).logits!;
        const logprobs = logits.reshape(-1).to("f32").logSoftmax(-1);
        const k = Math.min(20, logprobs.size(0));
        const { values, indices } = logprobs.topk(k);
        const lp = Array.from(values.toArray() as Float32Array);
        const id = Array.from(indices.toArray() as BigInt64Array, Number);
        return id.map((t, i) => ({ token: this.tokenizer.decode([t]), logprob: lp[i]! }));
      }),
    );
  }

  score(prompt: string) {
    return Effect.try({
      try: () => scoreFromTopLogprobs(this.topLogprobs(prompt), this.minimumMass),
      catch: (error) =>
        new JudgeError({
          message: redactMessage(`local judge failed: ${(error as Error).message}`),
          reason: { _tag: "LocalModel" },
          status: null,
          attempts: 1,
        }),
    });
  }
}
