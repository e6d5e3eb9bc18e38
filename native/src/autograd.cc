// Autograd surface: requires_grad, backward, .grad, retain_grad, autograd.grad, grad mode
// and inference mode. The backward pass runs inside libtorch; nothing crosses into JS.
#include "common.h"

#include <memory>

namespace emlab {
namespace {
thread_local std::vector<std::unique_ptr<c10::InferenceMode>> inferenceGuards;
}

static const OpTable autogradOps("autograd", {
  EMLAB_OP("requiresGrad", { return Napi::Boolean::New(info.Env(), unwrap(info[0], op, 0).requires_grad()); }),
  // Like torch's requires_grad_: a non-leaf may only be asked to keep requiring grad.
  EMLAB_OP("setRequiresGrad", {
    at::Tensor& x = unwrap(info[0], op, 0);
    const bool value = toBool(info[1], op, 1);
    if (!x.is_leaf()) {
      TORCH_CHECK_VALUE(value, "you can only change requires_grad flags of leaf variables; use detach() for a non-differentiable copy");
      return info.Env().Undefined();
    }
    x.set_requires_grad(value);
    return info.Env().Undefined();
  }),
  // backward(x, grad|null, retainGraph, createGraph)
  EMLAB_OP("backward", {
    at::Tensor grad = unwrapOptional(info[1], op, 1);
    unwrap(info[0], op, 0).backward(grad, toBool(info[2], op, 2), toBool(info[3], op, 3));
    return info.Env().Undefined();
  }),
  EMLAB_OP("hasGrad", { return Napi::Boolean::New(info.Env(), unwrap(info[0], op, 0).grad().defined()); }),
  EMLAB_OP("grad", { return wrapOrNull(info.Env(), unwrap(info[0], op, 0).grad()); }),
  // setGrad(x, g|null): replaces (or clears) the accumulated gradient.
  EMLAB_OP("setGrad", {
    at::Tensor& x = unwrap(info[0], op, 0);
    x.mutable_grad() = unwrapOptional(info[1], op, 1);
    return info.Env().Undefined();
  }),
  EMLAB_OP("retainGrad", {
    unwrap(info[0], op, 0).retain_grad();
    return info.Env().Undefined();
  }),
  EMLAB_OP("isLeaf", { return Napi::Boolean::New(info.Env(), unwrap(info[0], op, 0).is_leaf()); }),
  EMLAB_OP("detach", { return wrap(info.Env(), unwrap(info[0], op, 0).detach()); }),
  // autogradGrad(outputs[], inputs[], gradOutputs[]|null, retainGraph|null, createGraph, allowUnused)
  EMLAB_OP("autogradGrad", {
    auto outputs = unwrapList(info[0], op, 0);
    auto inputs = unwrapList(info[1], op, 1);
    std::vector<at::Tensor> gradOutputs;
    if (!info[2].IsNull() && !info[2].IsUndefined()) gradOutputs = unwrapList(info[2], op, 2);
    c10::optional<bool> retain;
    if (info[3].IsBoolean()) retain = info[3].As<Napi::Boolean>().Value();
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, toBool(info[4], op, 4),
                                       toBool(info[5], op, 5));
    return wrapList(info.Env(), grads);
  }),
  EMLAB_OP("setGradEnabled", {
    bool previous = at::GradMode::is_enabled();
    at::GradMode::set_enabled(toBool(info[0], op, 0));
    return Napi::Boolean::New(info.Env(), previous);
  }),
  EMLAB_OP("isGradEnabled", { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }),
  EMLAB_OP("enterInferenceMode", {
    inferenceGuards.push_back(std::make_unique<c10::InferenceMode>(true));
    return Napi::Number::New(info.Env(), static_cast<double>(inferenceGuards.size()));
  }),
  // exitInferenceMode(depth): guards must be released in reverse order of entry.
  EMLAB_OP("exitInferenceMode", {
    auto depth = static_cast<std::size_t>(toInt(info[0], op, 0));
    TORCH_CHECK_VALUE(depth == inferenceGuards.size() && depth > 0, "inference-mode scopes must be closed in reverse order");
    inferenceGuards.pop_back();
    return info.Env().Undefined();
  }),
  EMLAB_OP("isInferenceMode", { return Napi::Boolean::New(info.Env(), c10::InferenceMode::is_enabled()); }),
});

}  // namespace emlab
