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

static const OpTable nnOps("nn", {
  EMLAB_OP("matmul", { return wrap(info.Env(), at::matmul(unwrap(info[0], op, 0), unwrap(info[1], op, 1))); }),
  EMLAB_OP("bmm", { return wrap(info.Env(), at::bmm(unwrap(info[0], op, 0), unwrap(info[1], op, 1))); }),
  EMLAB_OP("outer", { return wrap(info.Env(), at::outer(unwrap(info[0], op, 0), unwrap(info[1], op, 1))); }),
  // linear(x, weight [out, in], bias|null)
  EMLAB_OP("linear", {
    at::Tensor bias = unwrapOptional(info[2], op, 2);
    return wrap(info.Env(), at::linear(unwrap(info[0], op, 0), unwrap(info[1], op, 1),
                                       bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt));
  }),
  EMLAB_OP("einsum", {
    return wrap(info.Env(), at::einsum(toString(info[0], op, 0), unwrapList(info[1], op, 1)));
  }),
  EMLAB_OP("softmax", { return wrap(info.Env(), at::softmax(unwrap(info[0], op, 0), toInt(info[1], op, 1))); }),
  EMLAB_OP("logSoftmax", {
    return wrap(info.Env(), at::log_softmax(unwrap(info[0], op, 0), toInt(info[1], op, 1)));
  }),
  // crossEntropy(logits [N, C] or [N, C, ...], target, weight|null, reduction 0 none/1 mean/2 sum, ignoreIndex, labelSmoothing)
  EMLAB_OP("crossEntropy", {
    at::Tensor weight = unwrapOptional(info[2], op, 2);
    return wrap(info.Env(), at::cross_entropy_loss(unwrap(info[0], op, 0), unwrap(info[1], op, 1),
                                                   weight.defined() ? c10::optional<at::Tensor>(weight) : c10::nullopt,
                                                   toInt(info[3], op, 3), toInt(info[4], op, 4),
                                                   toDouble(info[5], op, 5)));
  }),
  // klDiv(input (log-probs), target, reduction, logTarget): pointwise target * (log target - input).
  EMLAB_OP("klDiv", {
    return wrap(info.Env(), at::kl_div(unwrap(info[0], op, 0), unwrap(info[1], op, 1), toInt(info[2], op, 2),
                                       toBool(info[3], op, 3)));
  }),
  EMLAB_OP("mseLoss", {
    return wrap(info.Env(), at::mse_loss(unwrap(info[0], op, 0), unwrap(info[1], op, 1), toInt(info[2], op, 2)));
  }),
  EMLAB_OP("dropout", {
    return wrap(info.Env(), at::dropout(unwrap(info[0], op, 0), toDouble(info[1], op, 1), toBool(info[2], op, 2)));
  }),
  // embedding(weight [vocab, d], ids)
  EMLAB_OP("embedding", {
    return wrap(info.Env(), at::embedding(unwrap(info[0], op, 0), unwrap(info[1], op, 1)));
  }),
  EMLAB_OP("layerNorm", {
    at::Tensor weight = unwrapOptional(info[2], op, 2), bias = unwrapOptional(info[3], op, 3);
    return wrap(info.Env(), at::layer_norm(unwrap(info[0], op, 0), toIntList(info[1], op, 1),
                                           weight.defined() ? c10::optional<at::Tensor>(weight) : c10::nullopt,
                                           bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt,
                                           toDouble(info[4], op, 4)));
  }),
  // attention(q, k, v, mask|null, causal, scale|null, dropout): scaled dot-product attention with GQA.
  EMLAB_OP("attention", {
    return wrap(info.Env(), attention(unwrap(info[0], op, 0), unwrap(info[1], op, 1),
                                      unwrap(info[2], op, 2), unwrapOptional(info[3], op, 3),
                                      toBool(info[4], op, 4), toOptionalDouble(info[5], op, 5),
                                      toDouble(info[6], op, 6)));
  }),
  // topk(x, k, dim, largest, sorted) -> [values, indices]
  EMLAB_OP("topk", {
    auto r = at::topk(unwrap(info[0], op, 0), toInt(info[1], op, 1), toInt(info[2], op, 2), toBool(info[3], op, 3),
                      toBool(info[4], op, 4));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  }),
  // sort(x, dim, descending, stable) -> [values, indices]
  EMLAB_OP("sort", {
    auto r = at::sort(unwrap(info[0], op, 0), toBool(info[3], op, 3), toInt(info[1], op, 1), toBool(info[2], op, 2));
    return wrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  }),
  EMLAB_OP("multinomial", {
    return wrap(info.Env(), at::multinomial(unwrap(info[0], op, 0), toInt(info[1], op, 1),
                                            toBool(info[2], op, 2)));
  }),
  EMLAB_OP("cumsum", { return wrap(info.Env(), at::cumsum(unwrap(info[0], op, 0), toInt(info[1], op, 1))); }),
});

}  // namespace emlab
