// Autograd surface: requires_grad, backward, .grad, retain_grad, autograd.grad, grad mode
// and inference mode. The backward pass runs inside libtorch; nothing crosses into JS.
#include "common.h"

#include <memory>

namespace emlab {
namespace {
thread_local std::vector<std::unique_ptr<c10::InferenceMode>> inferenceGuards;
}

void registerAutograd(Napi::Env env, Napi::Object exports) {
  EMLAB_FN(exports, "requiresGrad", { return Napi::Boolean::New(info.Env(), unwrap(info[0], "requiresGrad", 0).requires_grad()); });
  // Like torch's requires_grad_: a non-leaf may only be asked to keep requiring grad.
  EMLAB_FN(exports, "setRequiresGrad", {
    at::Tensor& x = unwrap(info[0], "setRequiresGrad", 0);
    const bool value = toBool(info[1], "setRequiresGrad", 1);
    if (!x.is_leaf()) {
      TORCH_CHECK_VALUE(value, "you can only change requires_grad flags of leaf variables; use detach() for a non-differentiable copy");
      return info.Env().Undefined();
    }
    x.set_requires_grad(value);
    return info.Env().Undefined();
  });
  // backward(x, grad|null, retainGraph, createGraph)
  EMLAB_FN(exports, "backward", {
    at::Tensor grad = unwrapOptional(info[1], "backward", 1);
    unwrap(info[0], "backward", 0).backward(grad, toBool(info[2], "backward", 2), toBool(info[3], "backward", 3));
    return info.Env().Undefined();
  });
  EMLAB_FN(exports, "hasGrad", { return Napi::Boolean::New(info.Env(), unwrap(info[0], "hasGrad", 0).grad().defined()); });
  EMLAB_FN(exports, "grad", { return wrapOrNull(info.Env(), unwrap(info[0], "grad", 0).grad()); });
  // setGrad(x, g|null): replaces (or clears) the accumulated gradient.
  EMLAB_FN(exports, "setGrad", {
    at::Tensor& x = unwrap(info[0], "setGrad", 0);
    x.mutable_grad() = unwrapOptional(info[1], "setGrad", 1);
    return info.Env().Undefined();
  });
  EMLAB_FN(exports, "retainGrad", {
    unwrap(info[0], "retainGrad", 0).retain_grad();
    return info.Env().Undefined();
  });
  EMLAB_FN(exports, "isLeaf", { return Napi::Boolean::New(info.Env(), unwrap(info[0], "isLeaf", 0).is_leaf()); });
  EMLAB_FN(exports, "detach", { return wrap(info.Env(), unwrap(info[0], "detach", 0).detach()); });
  // autogradGrad(outputs[], inputs[], gradOutputs[]|null, retainGraph|null, createGraph, allowUnused)
  EMLAB_FN(exports, "autogradGrad", {
    auto outputs = unwrapList(info[0], "autogradGrad", 0);
    auto inputs = unwrapList(info[1], "autogradGrad", 1);
    std::vector<at::Tensor> gradOutputs;
    if (!info[2].IsNull() && !info[2].IsUndefined()) gradOutputs = unwrapList(info[2], "autogradGrad", 2);
    c10::optional<bool> retain;
    if (info[3].IsBoolean()) retain = info[3].As<Napi::Boolean>().Value();
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, toBool(info[4], "autogradGrad", 4),
                                       toBool(info[5], "autogradGrad", 5));
    return wrapList(info.Env(), grads);
  });
  EMLAB_FN(exports, "setGradEnabled", {
    bool previous = at::GradMode::is_enabled();
    at::GradMode::set_enabled(toBool(info[0], "setGradEnabled", 0));
    return Napi::Boolean::New(info.Env(), previous);
  });
  EMLAB_FN(exports, "isGradEnabled", { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); });
  EMLAB_FN(exports, "enterInferenceMode", {
    inferenceGuards.push_back(std::make_unique<c10::InferenceMode>(true));
    return Napi::Number::New(info.Env(), static_cast<double>(inferenceGuards.size()));
  });
  // exitInferenceMode(depth): guards must be released in reverse order of entry.
  EMLAB_FN(exports, "exitInferenceMode", {
    auto depth = static_cast<std::size_t>(toInt(info[0], "exitInferenceMode", 0));
    TORCH_CHECK_VALUE(depth == inferenceGuards.size() && depth > 0, "inference-mode scopes must be closed in reverse order");
    inferenceGuards.pop_back();
    return info.Env().Undefined();
  });
  EMLAB_FN(exports, "isInferenceMode", { return Napi::Boolean::New(info.Env(), c10::InferenceMode::is_enabled()); });
}

}  // namespace emlab
