// One rank of the collective tests (test/distributed/process-group.test.ts), run as a real process on
// the compiled library (dist/). argv: MODE; env: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
// Prints one JSON line with what it observed; the test compares it with values it computes itself.
import { ProcessGroup, processGroupOptionsFromEnv } from "../../dist/distributed/process-group.js";
import { tensor } from "../../dist/tensor/index.js";

const mode = process.argv[2];
const options = { ...processGroupOptionsFromEnv(), timeoutMs: Number(process.env.TEST_TIMEOUT_MS ?? 20000) };
const report = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

let group;
try {
  group = ProcessGroup.create(options);
} catch (error) {
  report({ error: error._tag ?? String(error), reason: error.reason, message: error.message });
  process.exit(3);
}
const rank = group.rank;
if (mode === "collectives") {
  const summed = tensor([rank + 1, 10 * (rank + 1), -0.5 * rank], { dtype: "f32" });
  group.allreduce(summed, "sum");
  const averaged = tensor([rank + 1, 2 * rank], { dtype: "f64" });
  group.allreduce(averaged, "avg");
  const maxed = tensor([rank, 5 - 3 * rank], { dtype: "i64" });
  group.allreduce(maxed, "max");
  const broadcast = tensor([100 + rank, 200 + rank], { dtype: "f32" });
  group.broadcast(broadcast, 1);
  group.barrier();
  report({ rank, summed: Array.from(summed.toArray()), averaged: Array.from(averaged.toArray()), maxed: Array.from(maxed.toArray(), Number), broadcast: Array.from(broadcast.toArray()) });
  group.destroy();
} else if (mode === "peer-dies") {
  // Rank 1 dies (SIGKILL, no clean shutdown) after the rendezvous; rank 0 then waits in an allreduce.
  group.barrier();
  if (rank === 1) process.kill(process.pid, "SIGKILL");
  const started = Date.now();
  try {
    for (let i = 0; i < 50; i++) group.allreduce(tensor([1, 2, 3], { dtype: "f32" }), "sum");
    report({ rank, error: null });
  } catch (error) {
    report({ rank, error: error._tag ?? String(error), reason: error.reason, message: error.message, elapsedMs: Date.now() - started });
  }
  group.destroy();
}
