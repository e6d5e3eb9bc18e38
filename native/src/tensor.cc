// Tensor metadata, conversion (dtype/device), lifetime (dispose, live count) and host reads
// (bytes, item). bf16/f16 are widened to float32 on the way out.
#include "common.h"

#include <cstring>

namespace emlab {

static const OpTable tensorOps("tensor", {
  // setErrorFactory(fn(code, op, message, torchMessage) -> Error): how the addon builds its errors.
  EMLAB_OP("setErrorFactory", {
    if (!info[0].IsFunction()) throwType(info.Env(), op, 0, "a function");
    info.Env().SetInstanceData(new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>())));
    return info.Env().Undefined();
  }),
  EMLAB_OP("shape", { return intListToJs(info.Env(), unwrap(info[0], op, 0).sizes()); }),
  EMLAB_OP("dtype", { return Napi::Number::New(info.Env(), dtypeCode(unwrap(info[0], op, 0).scalar_type())); }),
  EMLAB_OP("device", { return Napi::String::New(info.Env(), deviceString(unwrap(info[0], op, 0).device())); }),
  EMLAB_OP("numel", { return Napi::Number::New(info.Env(), static_cast<double>(unwrap(info[0], op, 0).numel())); }),
  EMLAB_OP("dim", { return Napi::Number::New(info.Env(), static_cast<double>(unwrap(info[0], op, 0).dim())); }),
  EMLAB_OP("isContiguous", { return Napi::Boolean::New(info.Env(), unwrap(info[0], op, 0).is_contiguous()); }),
  // to(x, dtype|null, device|null, copy)
  EMLAB_OP("to", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    auto dtype = info[1].IsNull() || info[1].IsUndefined() ? x.scalar_type() : toDtype(info[1], op, 1);
    auto device = info[2].IsNull() || info[2].IsUndefined() ? x.device() : toDevice(info[2], op, 2);
    bool copy = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    return wrap(info.Env(), x.to(device, dtype, /*non_blocking=*/false, copy));
  }),
  EMLAB_OP("contiguous", { return wrap(info.Env(), unwrap(info[0], op, 0).contiguous()); }),
  EMLAB_OP("clone", { return wrap(info.Env(), unwrap(info[0], op, 0).clone()); }),
  // Same tensor, new handle (for keeping a tensor alive past its scope without copying).
  EMLAB_OP("share", { return wrap(info.Env(), unwrap(info[0], op, 0)); }),
  EMLAB_OP("dispose", { return Napi::Boolean::New(info.Env(), disposeHandle(info[0])); }),
  EMLAB_OP("isDisposed", { return Napi::Boolean::New(info.Env(), isDisposed(info[0])); }),
  EMLAB_OP("adoptByGc", { return adoptByGc(info[0]); }),
  EMLAB_OP("liveCount", { return Napi::Number::New(info.Env(), static_cast<double>(liveHandleCount())); }),
  // How often freed tensor memory was handed back to the kernel (see memory.cc).
  EMLAB_OP("hostTrimCount", { return Napi::Number::New(info.Env(), static_cast<double>(hostTrimCount())); }),
  // V8's count of external memory (what napi_adjust_external_memory reports; read by adjusting by 0).
  EMLAB_OP("externalMemory", {
    std::int64_t value = 0;
    napi_adjust_external_memory(info.Env(), 0, &value);
    return Napi::Number::New(info.Env(), static_cast<double>(value));
  }),
  // toBytes(x) -> ArrayBuffer with the contiguous CPU data; f16/bf16 widened to f32.
  EMLAB_OP("toBytes", {
    at::Tensor x = unwrap(info[0], op, 0).detach();
    if (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16) x = x.to(at::kFloat);
    x = x.to(at::kCPU).contiguous();
    auto bytes = static_cast<size_t>(x.numel()) * x.element_size();
    auto buffer = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes > 0) std::memcpy(buffer.Data(), x.data_ptr(), bytes);
    return buffer;
  }),
  // rawBytes(x) -> ArrayBuffer with the tensor's own dtype bytes (bf16/f16 not widened).
  EMLAB_OP("rawBytes", {
    at::Tensor x = unwrap(info[0], op, 0).detach().to(at::kCPU).contiguous();
    auto bytes = static_cast<size_t>(x.numel()) * x.element_size();
    auto buffer = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes > 0) std::memcpy(buffer.Data(), x.data_ptr(), bytes);
    return buffer;
  }),
  // item(x): number for floats and 32-bit ints, bigint for int64, boolean for bool.
  EMLAB_OP("item", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    at::Scalar s = x.item();
    if (x.scalar_type() == at::kBool) return Napi::Boolean::New(info.Env(), s.toBool());
    if (x.scalar_type() == at::kLong) return Napi::BigInt::New(info.Env(), s.toLong());
    if (c10::isIntegralType(x.scalar_type(), false)) return Napi::Number::New(info.Env(), static_cast<double>(s.toLong()));
    return Napi::Number::New(info.Env(), s.toDouble());
  }),
});

}  // namespace emlab
