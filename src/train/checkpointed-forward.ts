/**
 * Per-layer gradient checkpointing, a wrapper the trainer applies around a decoder's forward pass: the
 * decoder's stages (prepare, embed, layer, head) run here with autograd recording only at the ends, and
 * each layer is recomputed during the backward pass. Trades one extra forward of every layer for not
 * keeping the layers' activations. The decoder itself knows nothing about it.
 */
import type { HookPoint } from "../hooks/points.js";
import { parseLayerPoint } from "../hooks/points.js";
import type { Decoder, ForwardOptions } from "../nn/decoder.js";
import { enableGrad, getRngState, keep, noGrad, setRngState, type Tensor, TensorScope, tidy } from "../tensor/index.js";

/** One checkpointed forward pass: `finish()` after `loss.backward()`, or `dispose()` to drop it. */
export interface CheckpointedPass {
  logits: Tensor;
  activations: Map<HookPoint, Tensor>;
  finish(): void;
  dispose(): void;
}

/**
 * Per-layer gradient checkpointing of `decoder` for training: the layers run without recording autograd (only
 * each layer's input is kept); `logits` is differentiable with respect to the last layer's output
 * and the head. After `loss.backward()`, `finish()` recomputes each layer from its saved input (the
 * CPU RNG restored, so dropout repeats) and back-propagates through it, last layer first, into
 * every trainable tensor (weights, adapters, steering vectors, embeddings). Hooks run again during
 * recomputation. `dispose()` frees the saved state without back-propagating.
 *
 * `capture` points come back in `activations`, usable in the loss: `embed` and `final_norm` are in
 * the graph; a layer's points are leaves whose gradient (from `loss.backward()`) `finish()` injects
 * when it recomputes that layer, so a loss on them gets the gradients of a plain forward (equal up to
 * the order in which float contributions are summed).
 */
export function checkpointedForward(
  decoder: Decoder,
  inputIds: Tensor,
  options: Omit<ForwardOptions, "cache" | "hiddenStates"> = {},
): CheckpointedPass {
  const scope = new TensorScope(null, true);
  const activations = new Map<HookPoint, Tensor>();
  // During recomputation the capture hooks collect the re-made activations of the layer being recomputed.
  let recomputed: Map<HookPoint, Tensor> | null = null;
  const captures = (options.capture ?? []).map((point) =>
    decoder.hooks.add(point, (x) => {
      if (recomputed !== null) recomputed.set(point, x);
      else activations.set(point, parseLayerPoint(point) === null ? x : x.detach().requiresGrad_());
    }),
  );
  const removeCaptures = () => {
    for (const handle of captures.splice(0)) handle.remove();
  };
  let saved;
  let logits: Tensor;
  try {
    saved = scope.run(() => {
      const context = decoder.prepare(inputIds, options);
      const embedded = decoder.embed(context.ids);
      const inputs: Tensor[] = [];
      const rng: Tensor[] = [];
      const boundary = noGrad(() => {
        let x = embedded.detach();
        for (let l = 0; l < decoder.spec.layers.length; l++) {
          inputs.push(x);
          rng.push(getRngState());
          x = decoder.layer(l, x, context);
        }
        return x.detach().requiresGrad_();
      });
      // Where a plain forward would leave the RNG; finish() returns it there after its replays.
      const rngAfter = getRngState();
      return { context, embedded, inputs, rng, boundary, rngAfter };
    });
    // The head's tensors (logits, a captured final_norm) belong to the caller's scope.
    logits = enableGrad(() => decoder.head(saved!.boundary, options.logits ?? "all").logits!);
  } catch (error) {
    removeCaptures();
    scope.close();
    throw error;
  }
  const state = saved;
  let done = false;
  const dispose = () => {
    if (done) return;
    done = true;
    removeCaptures();
    scope.close();
  };
  const finish = () => {
    if (done) throw new Error("checkpointedForward: finish() or dispose() already called");
    try {
      let grad = state.boundary.grad;
      if (grad === null) throw new Error("checkpointedForward: call backward() on a loss of the logits before finish()");
      grad = keep(grad);
      for (let l = decoder.spec.layers.length - 1; l >= 0; l--) {
        const next = tidy(() =>
          enableGrad(() => {
            const input = state.inputs[l]!.detach().requiresGrad_();
            setRngState(state.rng[l]!);
            const injected = [...activations].filter(([point, leaf]) => parseLayerPoint(point)?.layer === l && leaf.grad !== null);
            if (injected.length === 0) {
              decoder.layer(l, input, state.context).backward(grad!);
              return input.grad;
            }
            const again = new Map<HookPoint, Tensor>();
            recomputed = again;
            let output: Tensor;
            try {
              output = decoder.layer(l, input, state.context);
            } finally {
              recomputed = null;
            }
            // sum(out * g) back-propagates exactly g into out; each captured point gets its leaf's gradient.
            let objective = output.mul(grad!).sum();
            for (const [point, leaf] of injected) objective = objective.add(again.get(point)!.mul(leaf.grad!).sum());
            objective.backward();
            return input.grad;
          }),
        );
        grad.dispose();
        grad = next === null ? null : keep(next);
        if (grad === null) break;
      }
      if (grad !== null) {
        if (state.embedded.requiresGrad) enableGrad(() => state.embedded.backward(grad!));
        grad.dispose();
      }
      setRngState(state.rngAfter);
    } finally {
      dispose();
    }
  };
  return { logits, activations, finish, dispose };
}
