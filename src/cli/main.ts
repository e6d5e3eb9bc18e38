/**
 * The `emlab` command line. Thin: parses arguments and calls one library function per command.
 */
import { parseArgs } from "node:util";
import { analysisCommands, runAnalysis } from "./analysis.js";
import { redact } from "../eval/judge/redact.js";
import { UsageError } from "./args.js";
import { runChat } from "./chat.js";
import { runDoctor } from "./doctor.js";
import { runEval } from "./eval.js";
import { runJudge } from "./judge.js";
import { runKlData } from "./kl-data.js";
import { runMetrics } from "./metrics.js";
import { runTrain } from "./train.js";
import { runForward } from "./forward.js";
import { runGenerate } from "./generate.js";

const usage = `usage: emlab <command> [options]

commands:
  doctor [--json]      libtorch version and origin, CUDA devices, threads, BLAS, and a self-check
  forward --model DIR --ids JSON [--attention-mask JSON] --out FILE.safetensors [--dtype f32|bf16] [--device cpu|cuda:N]
                       logits and hidden states (float32) of a Hugging Face model
  generate --model DIR (--ids JSON [--attention-mask JSON] | --prompt TEXT [--system TEXT]) --max-new-tokens N
           [--greedy | --temperature T --top-p P --top-k K --seed S] [--samples K] [--json]
                       batched generation with a KV cache
  chat --model DIR [--system TEXT] [--max-new-tokens N] [sampling flags]
                       interactive conversation on the model's chat template
  eval --model DIR --questions FILE.yaml --out RESULTS.csv|.jsonl [--samples 50] [--max-new-tokens 600] [--seed 0]
       [--judge-model gpt-4o-2024-08-06 --base-url URL | --azure-endpoint URL | --local-judge DIR] [--no-judge] [--json]
                       sample answers (resumable), judge them, print EM metrics
  judge RESULTS (--questions FILE.yaml | --judges FILE.yaml) [--judge-names aligned,coherent] [judge flags]
                       add judge columns (logprob-weighted 0-100 scores; cached, retried)
  metrics FILE... [--json] [--aligned-threshold 30] [--aligned-inclusive] [--coherent-threshold 50] [--include-json]
                       EM and coherent rates with bootstrap 95% CIs, per question and overall
  train CONFIG.json|yaml [--resume]
                       LoRA / full SFT / steering-vector training, optional KL penalty; exact resume
  kl-data --model DIR --prompts FILE --out FILE.jsonl [--max-new-tokens 256] [--limit N]
                       a KL dataset: out-of-domain prompts answered by the chat model itself
  direction --model DIR [--adapter DIR] --results JUDGED.csv --out direction.safetensors
                       mean-difference misalignment direction per layer (misaligned minus aligned answers)
  steer | ablate --model DIR --direction FILE [--layers 24|all] [--scale 8] [--random-control SEED] --prompt TEXT --max-new-tokens N
                       generate with the direction added / projected out (ablate --adapter DIR --lora-b-out DIR: weight space)
  efficiency --model DIR (--steering FILE | --adapter DIR) --data TRAIN.jsonl --out FILE.csv [--scales ...]
  stability --model DIR (--steering FILE | --adapter DIR) --data TRAIN.jsonl --out FILE.csv [--eps ...] [--seeds ...]
  significance --model DIR --vectors A,B --layer L --texts FILE --out FILE.csv [--norms ...] [--random 5] [--include-pads]
  gradients --model DIR --run STEERING_RUN --data NARROW.jsonl --out FILE.jsonl [--directions FILE]
  monitor --model DIR --direction FILE --layer L --threshold T --prompt TEXT [--ablate-on-alarm]
                       analyses of learned solutions (protocol.md §1.5-1.9)
`;

/** Runs a command; usage errors print a message and return 2, other typed errors 1. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`emlab: ${redact((error as Error).message)}\n`);
      return 2;
    }
    const tag = (error as { _tag?: string })._tag;
    process.stderr.write(`emlab: ${tag ? `${tag}: ` : ""}${redact(String((error as Error)?.message ?? error))}\n`);
    return 1;
  }
}

async function dispatch(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "forward":
      return runForward(rest);
    case "generate":
      return runGenerate(rest);
    case "chat":
      return runChat(rest);
    case "eval":
      return runEval(rest);
    case "judge":
      return runJudge(rest);
    case "metrics":
      return runMetrics(rest);
    case "train":
      return runTrain(rest);
    case "kl-data":
      return runKlData(rest);
    case "doctor": {
      const { values } = parseArgs({ args: [...rest], options: { json: { type: "boolean", default: false } }, strict: true });
      return runDoctor({ json: values.json ?? false });
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(usage);
      return command === undefined ? 1 : 0;
    default:
      if (analysisCommands.includes(command)) return runAnalysis(command, rest);
      process.stderr.write(`emlab: unknown command ${JSON.stringify(command)}\n${usage}`);
      return 2;
  }
}
