/**
 * Train and kl-data stages. Training runs the train recipe's Effect program on the planned run
 * config in `<stage>/run`, resuming from its newest checkpoint when a previous attempt was cut short
 * (the recipe's exact resume); interrupted, the recipe writes the checkpoint of the step reached.
 * kl-data answers out-of-domain prompts with the chat model itself, one line per prompt appended as it
 * is done (the event loop turns between prompts), so a stopped stage continues at the first missing one.
 */
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Effect } from "effect";
import { generate } from "../../generate/generate.js";
import { trainingProgram } from "../../recipes/train.js";
import { attempt } from "../../train/attempt.js";
import { latestCheckpoint } from "../../train/checkpoint.js";
import type { RunConfig } from "../../train/config.js";
import { readPrompts } from "../preflight.js";
import type { StageOf } from "../schema.js";
import type { StageContext, StageProgram } from "./context.js";
import { scopedOpenModel } from "./models.js";

export const trainStage = (ctx: StageContext<StageOf<"train">>, config: RunConfig): StageProgram =>
  Effect.gen(function* () {
    const run = config.output_dir;
    // Resume only from a checkpoint; a run cut before its first checkpoint starts over.
    const resume = latestCheckpoint(run) !== null;
    if (!resume && existsSync(run)) rmSync(run, { recursive: true, force: true });
    const result = yield* trainingProgram(config, {
      resume,
      // The recipe's interruption line names `emlab train --resume`; here the experiment's rerun resumes.
      log: (line) => ctx.log(line.replace("(continue with --resume)", "(running the experiment again resumes from it)")),
      onStep: (m, total) => ctx.progress("train", m.step, total),
    });
    return {
      outputs: [result.artefact, join(run, "metrics.jsonl")],
      summary: { steps: result.steps, final_loss: result.finalLoss, stopped_early: result.stoppedEarly },
    };
  });

export const klDataStage = (ctx: StageContext<StageOf<"kl-data">>): StageProgram =>
  Effect.scoped(
    Effect.gen(function* () {
      const s = ctx.stage;
      const out = join(ctx.dir, "kl.jsonl");
      const prompts = yield* attempt(() => readPrompts(ctx.inputs.prompts!, `${ctx.path}.prompts`, s.limit));
      // Keep only complete lines from an earlier attempt.
      let done = 0;
      if (existsSync(out)) {
        const complete = readFileSync(out, "utf8").split("\n").slice(0, -1);
        writeFileSync(out, complete.map((l) => `${l}\n`).join(""));
        done = complete.length;
      }
      const { model, tokenizer } = yield* scopedOpenModel(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype });
      const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
      const answer = (i: number) => {
        const ids = tokenizer.encodeChat([{ role: "user", content: prompts[i]! }], { addGenerationPrompt: true });
        const result = generate(model.decoder, [ids], null, {
          maxNewTokens: s.max_new_tokens ?? 256,
          greedy: true,
          seed: (s.seed ?? 0) + i,
          eosTokenIds: eos,
        });
        const text = tokenizer.decode(
          result.newIds[0]!.filter((t) => !eos.includes(t)),
          { skipSpecialTokens: true },
        );
        appendFileSync(
          out,
          `${JSON.stringify({
            messages: [
              { role: "user", content: prompts[i] },
              { role: "assistant", content: text },
            ],
          })}\n`,
        );
      };
      const loop = Effect.gen(function* () {
        for (; done < prompts.length; done++) {
          yield* Effect.yieldNow;
          yield* attempt(() => answer(done));
          ctx.progress("kl-data", done + 1, prompts.length);
        }
      });
      yield* loop.pipe(Effect.onInterrupt(() => Effect.sync(() => ctx.log(`kept ${done} of ${prompts.length} answers in ${out}`))));
      return { outputs: [out], summary: { rows: prompts.length } };
    }),
  );
