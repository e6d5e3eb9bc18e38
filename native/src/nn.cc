// Linear algebra and the fused library kernels models and training need: matmul, linear,
// einsum, softmax, losses, dropout, embedding, attention, sampling helpers.
#include "common.h"

#include <torch/version.h>

#include <cmath>

#define EMLAB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace emlab {
namespace {

// Reference attention for libtorch < 2.0 (and the GQA/scale cases older 2.x cannot express).
[[maybe_unused]] at::Tensor attentionFallback(const at::Tensor& q, at::Tensor k, at::Tensor v, const at::Tensor& mask, bool causal,
                             double scale, double dropout) {
  // q [batch, heads, q_pos, d_head]; k, v [batch, kv_heads, k_pos, d_head]
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
  const auto qLen = q.size(-2), kLen = k.size(-2);
  if (causal) {
    auto allowed = at::ones({qLen, kLen}, q.options().dtype(at::kBool)).tril();
    scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask.defined()) {
    if (mask.scalar_type() == at::kBool)
      scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
    else
      scores = scores + mask;
  }
  at::Tensor weights = at::softmax(scores, -1);
  if (dropout > 0) weights = at::dropout(weights, dropout, true);
  return at::matmul(weights, v);
}

// Expands kv heads to the query heads (grouped-query attention).
[[maybe_unused]] void expandKv(const at::Tensor& q, at::Tensor& k, at::Tensor& v) {
  const auto heads = q.size(-3), kvHeads = k.size(-3);
  if (heads == kvHeads) return;
  TORCH_CHECK_VALUE(kvHeads > 0 && heads % kvHeads == 0, "query heads (", heads, ") must be a multiple of kv heads (", kvHeads, ")");
  k = k.repeat_interleave(heads / kvHeads, -3);
  v = v.repeat_interleave(heads / kvHeads, -3);
}

at::Tensor attention(const at::Tensor& q, at::Tensor k, at::Tensor v, at::Tensor mask, bool causal,
                     c10::optional<double> scale, double dropout) {
  TORCH_CHECK_VALUE(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention expects q, k, v of shape [batch, heads, pos, d_head]");
  const double effectiveScale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
#if EMLAB_TORCH_AT_LEAST(2, 1)
  if (causal && mask.defined()) {
    // The fused kernel takes one of the two; fold the causal part into the mask.
    auto allowed = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).tril();
    if (mask.scalar_type() == at::kBool) {
      mask = mask.logical_and(allowed);
    } else {
      mask = mask.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
    }
    causal = false;
  }
#if EMLAB_TORCH_AT_LEAST(2, 5)
  const bool gqa = q.size(-3) != k.size(-3);
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, dropout,
                                          causal, effectiveScale, gqa);
#else
  expandKv(q, k, v);
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, dropout,
                                          causal, effectiveScale);
#endif
#else
  expandKv(q, k, v);
  return attentionFallback(q, k, v, mask, causal, effectiveScale, dropout);
#endif
}

}  // namespace

void registerNn(Napi::Env env, Napi::Object exports) {
  EMLAB_FN(exports, "matmul", { return wrap(info.Env(), at::matmul(unwrap(info[0], "matmul", 0), unwrap(info[1], "matmul", 1))); });
  EMLAB_FN(exports, "bmm", { return wrap(info.Env(), at::bmm(unwrap(info[0], "bmm", 0), unwrap(info[1], "bmm", 1))); });
  EMLAB_FN(exports, "outer", { return wrap(info.Env(), at::outer(unwrap(info[0], "outer", 0), unwrap(info[1], "outer", 1))); });
  // linear(x, weight [out, in], bias|null)
  EMLAB_FN(exports, "linear", {
    at::Tensor bias = unwrapOptional(info[2], "linear", 2);
    return wrap(info.Env(), at::linear(unwrap(info[0], "linear", 0), unwrap(info[1], "linear", 1),
                                       bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt));
  });
  EMLAB_FN(exports, "einsum", {
    return wrap(info.Env(), at::einsum(toString(info[0], "einsum", 0), unwrapList(info[1], "einsum", 1)));
  });
  EMLAB_FN(exports, "softmax", { return wrap(info.Env(), at::softmax(unwrap(info[0], "softmax", 0), toInt(info[1], "softmax", 1))); });
  EMLAB_FN(exports, "logSoftmax", {
    return wrap(info.Env(), at::log_softmax(unwrap(info[0], "logSoftmax", 0), toInt(info[1], "logSoftmax", 1)));
  });
  // crossEntropy(logits [N, C] or [N, C, ...], target, weight|null, reduction 0 none/1 mean/2 sum, ignoreIndex, labelSmoothing)
  EMLAB_FN(exports, "crossEntropy", {
    at::Tensor weight = unwrapOptional(info[2], "crossEntropy", 2);
    return wrap(info.Env(), at::cross_entropy_loss(unwrap(info[0], "crossEntropy", 0), unwrap(info[1], "crossEntropy", 1),
                                                   weight.defined() ? c10::optional<at::Tensor>(weight) : c10::nullopt,
                                                   toInt(info[3], "crossEntropy", 3), toInt(info[4], "crossEntropy", 4),
                                                   toDouble(info[5], "crossEntropy", 5)));
  });
  // klDiv(input (log-probs), target, reduction, logTarget): pointwise target * (log target - input).
  EMLAB_FN(exports, "klDiv", {
    return wrap(info.Env(), at::kl_div(unwrap(info[0], "klDiv", 0), unwrap(info[1], "klDiv", 1), toInt(info[2], "klDiv", 2),
                                       toBool(info[3], "klDiv", 3)));
  });
  EMLAB_FN(exports, "mseLoss", {
    return wrap(info.Env(), at::mse_loss(unwrap(info[0], "mseLoss", 0), unwrap(info[1], "mseLoss", 1), toInt(info[2], "mseLoss", 2)));
  });
  EMLAB_FN(exports, "dropout", {
    return wrap(info.Env(), at::dropout(unwrap(info[0], "dropout", 0), toDouble(info[1], "dropout", 1), toBool(info[2], "dropout", 2)));
  });
  // embedding(weight [vocab, d], ids)
  EMLAB_FN(exports, "embedding", {
    return wrap(info.Env(), at::embedding(unwrap(info[0], "embedding", 0), unwrap(info[1], "embedding", 1)));
  });
  EMLAB_FN(exports, "layerNorm", {
    at::Tensor weight = unwrapOptional(info[2], "layerNorm", 2), bias = unwrapOptional(info[3], "layerNorm", 3);
    return wrap(info.Env(), at::layer_norm(unwrap(info[0], "layerNorm", 0), toIntList(info[1], "layerNorm", 1),
                                           weight.defined() ? c10::optional<at::Tensor>(weight) : c10::nullopt,
                                           bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt,
                                           toDouble(info[4], "layerNorm", 4)));
  });
  // attention(q, k, v, mask|null, causal, scale|null, dropout): scaled dot-product attention with GQA.
  EMLAB_FN(exports, "attention", {
    return wrap(info.Env(), attention(unwrap(info[0], "attention", 0), unwrap(info[1], "attention", 1),
                                      unwrap(info[2], "attention", 2), unwrapOptional(info[3], "attention", 3),
                                      toBool(info[4], "attention", 4), toOptionalDouble(info[5], "attention", 5),
                                      toDouble(info[6], "attention", 6)));
  });
  // topk(x, k, dim, largest, sorted) -> [values, indices]
  EMLAB_FN(exports, "topk", {
    auto r = at::topk(unwrap(info[0], "topk", 0), toInt(info[1], "topk", 1), toInt(info[2], "topk", 2), toBool(info[3], "topk", 3),
                      toBool(info[4], "topk", 4));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
  // sort(x, dim, descending, stable) -> [values, indices]
  EMLAB_FN(exports, "sort", {
    auto r = at::sort(unwrap(info[0], "sort", 0), toBool(info[3], "sort", 3), toInt(info[1], "sort", 1), toBool(info[2], "sort", 2));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
  EMLAB_FN(exports, "multinomial", {
    return wrap(info.Env(), at::multinomial(unwrap(info[0], "multinomial", 0), toInt(info[1], "multinomial", 1),
                                            toBool(info[2], "multinomial", 2)));
  });
  EMLAB_FN(exports, "cumsum", { return wrap(info.Env(), at::cumsum(unwrap(info[0], "cumsum", 0), toInt(info[1], "cumsum", 1))); });
}

}  // namespace emlab
