/**
 * Train and kl-data stages. Training runs the train recipe on the planned run config in
 * `<stage>/run`, resuming from its newest checkpoint when a previous attempt was cut short (the
 * recipe's exact resume). kl-data answers out-of-domain prompts with the chat model itself, one line
 * per prompt appended as it is done, so a killed stage continues at the first missing prompt.
 */
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../generate/generate.js";
import { runTraining } from "../../recipes/train.js";
import { latestCheckpoint } from "../../train/checkpoint.js";
import type { RunConfig } from "../../train/config.js";
import { readChatDataset } from "../../train/data.js";
import type { StageOf } from "../schema.js";
import type { StageContext, StageOutcome } from "./context.js";
import { openModelWith } from "./models.js";

export function runTrainStage(ctx: StageContext<StageOf<"train">>, config: RunConfig): StageOutcome {
  const run = config.output_dir;
  // Resume only from a checkpoint; a run cut before its first checkpoint starts over.
  const resume = latestCheckpoint(run) !== null;
  if (!resume && existsSync(run)) rmSync(run, { recursive: true, force: true });
  const result = runTraining(config, {
    resume,
    log: ctx.log,
    onStep: (_m, total) => ctx.progress("train", _m.step, total),
  });
  return {
    outputs: [result.artefact, join(run, "metrics.jsonl")],
    summary: { steps: result.steps, final_loss: result.finalLoss, stopped_early: result.stoppedEarly },
  };
}

/** Prompts: a chat JSONL (its first user turn) or a text file with one prompt per line. */
function readPrompts(file: string): string[] {
  if (file.endsWith(".jsonl")) return readChatDataset(file).examples.map((e) => e.messages.find((m) => m.role === "user")?.content ?? "");
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
}

export function runKlDataStage(ctx: StageContext<StageOf<"kl-data">>): StageOutcome {
  const s = ctx.stage;
  const out = join(ctx.dir, "kl.jsonl");
  const prompts = readPrompts(ctx.inputs.prompts!).slice(0, s.limit ?? Number.POSITIVE_INFINITY);
  if (prompts.length === 0) throw new RangeError(`${ctx.inputs.prompts}: no prompts`);
  // Keep only complete lines from an earlier attempt.
  let done = 0;
  if (existsSync(out)) {
    const lines = readFileSync(out, "utf8").split("\n");
    const complete = lines.slice(0, -1);
    writeFileSync(out, complete.map((l) => `${l}\n`).join(""));
    done = complete.length;
  }
  using opened = openModelWith(ctx.baseModel, { device: ctx.device, dtype: ctx.dtype });
  const { model, tokenizer } = opened;
  const eos = tokenizer.endOfTurnIds(model.eosTokenIds);
  for (let i = done; i < prompts.length; i++) {
    const ids = tokenizer.encodeChat([{ role: "user", content: prompts[i]! }], { addGenerationPrompt: true });
    const result = generate(model.decoder, [ids], null, {
      maxNewTokens: s.max_new_tokens ?? 256,
      greedy: true,
      seed: (s.seed ?? 0) + i,
      eosTokenIds: eos,
    });
    const answer = tokenizer.decode(
      result.newIds[0]!.filter((t) => !eos.includes(t)),
      { skipSpecialTokens: true },
    );
    appendFileSync(
      out,
      `${JSON.stringify({
        messages: [
          { role: "user", content: prompts[i] },
          { role: "assistant", content: answer },
        ],
      })}\n`,
    );
    ctx.progress("kl-data", i + 1, prompts.length);
  }
  return { outputs: [out], summary: { rows: prompts.length } };
}
