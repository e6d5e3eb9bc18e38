// Fused multi-tensor optimizer steps (AdamW, SGD) and gradient clipping, bound as ops:
// the optimizer state lives in TS as tensors; one native call updates every parameter.
#include "common.h"

#include <torch/version.h>

#include <cmath>

#define EMLAB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace emlab {

static const OpTable optimOps("optim", {
  // adamwStep(params[], expAvg[], expAvgSq[], step, lr, beta1, beta2, eps, weightDecay, maximize)
  // Same arithmetic as torch.optim.AdamW (single-tensor path). Params without grad are skipped.
  EMLAB_OP("adamwStep", {
    auto params = unwrapList(info[0], op, 0);
    auto expAvg = unwrapList(info[1], op, 1);
    auto expAvgSq = unwrapList(info[2], op, 2);
    TORCH_CHECK_VALUE(params.size() == expAvg.size() && params.size() == expAvgSq.size(), "state lists must match params");
    const double step = toDouble(info[3], op, 3), lr = toDouble(info[4], op, 4), beta1 = toDouble(info[5], op, 5),
                 beta2 = toDouble(info[6], op, 6), eps = toDouble(info[7], op, 7), weightDecay = toDouble(info[8], op, 8);
    const bool maximize = toBool(info[9], op, 9);
    at::NoGradGuard noGrad;
#if EMLAB_TORCH_AT_LEAST(2, 4)
    // libtorch >= 2.4: one fused kernel (CPU and CUDA) updates every parameter when all share one
    // floating dtype and device; the same arithmetic as the loop below. Steps are read, not advanced.
    {
      std::vector<at::Tensor> ps, gs, ms, vs;
      bool uniform = true;
      for (std::size_t i = 0; i < params.size(); ++i) {
        at::Tensor grad = params[i].grad();
        if (!grad.defined()) continue;
        if (!ps.empty() && (params[i].device() != ps[0].device() || params[i].scalar_type() != ps[0].scalar_type())) uniform = false;
        if (grad.scalar_type() != params[i].scalar_type() || expAvg[i].scalar_type() != params[i].scalar_type() ||
            expAvgSq[i].scalar_type() != params[i].scalar_type() || grad.is_sparse())
          uniform = false;
        ps.push_back(params[i]);
        gs.push_back(grad);
        ms.push_back(expAvg[i]);
        vs.push_back(expAvgSq[i]);
      }
      if (ps.empty()) return info.Env().Undefined();
      const bool floating = ps[0].scalar_type() == at::kFloat || ps[0].scalar_type() == at::kDouble ||
                            ps[0].scalar_type() == at::kHalf || ps[0].scalar_type() == at::kBFloat16;
      if (uniform && floating) {
        at::Tensor stepTensor = at::full({}, step, ps[0].options().dtype(at::kFloat));
        std::vector<at::Tensor> steps(ps.size(), stepTensor);
        at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weightDecay, eps, false, maximize);
        return info.Env().Undefined();
      }
    }
#endif
    const double biasCorrection1 = 1 - std::pow(beta1, step);
    const double biasCorrection2Sqrt = std::sqrt(1 - std::pow(beta2, step));
    const double stepSize = lr / biasCorrection1;
    for (std::size_t i = 0; i < params.size(); ++i) {
      at::Tensor& param = params[i];
      at::Tensor grad = param.grad();
      if (!grad.defined()) continue;
      if (maximize) grad = grad.neg();
      param.mul_(1 - lr * weightDecay);
      expAvg[i].lerp_(grad, 1 - beta1);
      expAvgSq[i].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      at::Tensor denom = (expAvgSq[i].sqrt() / biasCorrection2Sqrt).add_(eps);
      param.addcdiv_(expAvg[i], denom, -stepSize);
    }
    return info.Env().Undefined();
  }),
  // sgdStep(params[], buffers[] (null entries allowed), lr, momentum, dampening, weightDecay, nesterov, maximize)
  // Returns an array with a new handle where a momentum buffer was created, null elsewhere.
  EMLAB_OP("sgdStep", {
    auto params = unwrapList(info[0], op, 0);
    auto buffers = unwrapList(info[1], op, 1);
    TORCH_CHECK_VALUE(params.size() == buffers.size(), "buffer list must match params");
    const double lr = toDouble(info[2], op, 2), momentum = toDouble(info[3], op, 3), dampening = toDouble(info[4], op, 4),
                 weightDecay = toDouble(info[5], op, 5);
    const bool nesterov = toBool(info[6], op, 6), maximize = toBool(info[7], op, 7);
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> created(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      at::Tensor& param = params[i];
      at::Tensor d = param.grad();
      if (!d.defined()) continue;
      if (maximize) d = d.neg();
      if (weightDecay != 0) d = d.add(param, weightDecay);
      if (momentum != 0) {
        at::Tensor buffer = buffers[i];
        if (!buffer.defined()) {
          buffer = d.clone().detach();
          created[i] = buffer;
        } else {
          buffer.mul_(momentum).add_(d, 1 - dampening);
        }
        d = nesterov ? d.add(buffer, momentum) : buffer;
      }
      param.add_(d, -lr);
    }
    return wrapList(info.Env(), created);
  }),
  // clipGradNorm(params[], maxNorm, normType) -> total norm before clipping (like torch.nn.utils.clip_grad_norm_).
  EMLAB_OP("clipGradNorm", {
    auto params = unwrapList(info[0], op, 0);
    const double maxNorm = toDouble(info[1], op, 1), normType = toDouble(info[2], op, 2);
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> grads, norms;
    for (auto& p : params)
      if (p.grad().defined()) grads.push_back(p.grad());
    if (grads.empty()) return Napi::Number::New(info.Env(), 0.0);
    for (auto& g : grads) norms.push_back(at::linalg_vector_norm(g, normType, c10::nullopt, false, c10::nullopt));
    at::Tensor stacked = at::stack(norms);
    at::Tensor total = std::isinf(normType) ? stacked.amax() : at::linalg_vector_norm(stacked, normType, c10::nullopt, false, c10::nullopt);
    at::Tensor coefficient = at::clamp(maxNorm / (total + 1e-6), c10::nullopt, 1.0);
    for (auto& g : grads) g.mul_(coefficient.to(g.device()));
    return Napi::Number::New(info.Env(), total.item<double>());
  }),
});

}  // namespace emlab
