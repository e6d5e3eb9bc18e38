/**
 * The server's generation queue: requests wait in a bounded queue (a full queue refuses with 429) and
 * are taken in arrival order into batches of compatible requests (the same served model, so the same
 * adapter or steering vector is active), up to a number of rows; one batch decodes at a time. On CPU a
 * batch mixes requests with different seeds (each keeps its own generator state); on other devices
 * each request decodes alone (only the CPU generator's state can be saved and restored here).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type DecodedSample, type DecodeRequest, decodeBatch } from "./decode.js";
import type { ServedModels } from "./models.js";
import { ApiError } from "./protocol.js";

export interface EngineOptions {
  /** Requests waiting at most (not counting the batch being decoded). */
  maxQueue: number;
  /** Rows (prompts x n) one batch holds at most (a larger single request still runs alone). */
  maxBatchRows: number;
  /** How long the engine waits after the first request of a batch for others to join. */
  batchWaitMs: number;
}

interface Job {
  model: string;
  requests: DecodeRequest[];
  rows: number;
  cancelled: () => boolean;
  resolve: (samples: DecodedSample[][]) => void;
  reject: (error: unknown) => void;
}

export class Engine {
  private readonly queue: Job[] = [];
  private running: Promise<void> | null = null;
  private stopping = false;
  /** Batches decoded so far, with their request counts (for tests and logs). */
  readonly batches: number[] = [];

  constructor(
    private readonly models: ServedModels,
    private readonly options: EngineOptions,
  ) {}

  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Queues one HTTP request's prompts; resolves with their samples. A full queue (429) or a stopping engine
   * (503) throws at once, so a streaming response can still answer with that status. Decoding never starts
   * within this call (the first token comes after the caller has written its headers).
   */
  submit(model: string, requests: DecodeRequest[], cancelled: () => boolean): Promise<DecodedSample[][]> {
    if (this.stopping) throw new ApiError(503, "the server is shutting down");
    if (this.queue.length >= this.options.maxQueue)
      throw new ApiError(429, `the server's queue is full (${this.options.maxQueue} requests waiting); retry later`);
    return new Promise((resolve, reject) => {
      this.queue.push({ model, requests, rows: requests.reduce((n, r) => n + r.samples, 0), cancelled, resolve, reject });
      if (this.running === null) this.running = this.loop().finally(() => (this.running = null));
    });
  }

  private nextBatch(): Job[] {
    const first = this.queue.shift()!;
    const batch = [first];
    if (this.models.model.decoder.device !== "cpu") return batch;
    let rows = first.rows;
    for (let i = 0; i < this.queue.length;) {
      const job = this.queue[i]!;
      if (job.model === first.model && rows + job.rows <= this.options.maxBatchRows) {
        batch.push(job);
        rows += job.rows;
        this.queue.splice(i, 1);
      } else i++;
    }
    return batch;
  }

  /** Refuses what waits, cancels what decodes, and resolves when the engine is idle (before the model is freed). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const job of this.queue.splice(0)) job.reject(new ApiError(503, "the server is shutting down"));
    await this.running;
  }

  private async loop(): Promise<void> {
    while (this.queue.length > 0) {
      await sleep(this.options.batchWaitMs);
      if (this.queue.length === 0) break;
      const batch = this.nextBatch().filter((job) => {
        if (!job.cancelled() && !this.stopping) return true;
        job.reject(new ApiError(499, "the request was cancelled before it started"));
        return false;
      });
      if (batch.length === 0) continue;
      const model = batch[0]!.model;
      let release: (() => void) | null = null;
      try {
        release = this.models.activate(model);
        const samples = await decodeBatch(
          this.models.model.decoder,
          batch.flatMap((job) => job.requests.map((r) => ({ ...r, cancelled: () => this.stopping || (r.cancelled?.() ?? false) }))),
          { eosTokenIds: this.models.eosTokenIds, padTokenId: this.models.padTokenId },
        );
        this.batches.push(batch.length);
        let at = 0;
        for (const job of batch) {
          job.resolve(samples.slice(at, at + job.requests.length));
          at += job.requests.length;
        }
      } catch (error) {
        for (const job of batch) job.reject(error);
      } finally {
        release?.();
      }
    }
  }
}
