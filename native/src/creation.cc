// Tensor creation: from host bytes, scalars and the factory functions (zeros, randn, ...).
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>

#include <mutex>

#include <cstring>

namespace emlab {
namespace {

at::TensorOptions options(const Napi::CallbackInfo& info, int dtypeIndex, int deviceIndex, const char* op) {
  return at::TensorOptions().dtype(toDtype(info[dtypeIndex], op, dtypeIndex)).device(toDevice(info[deviceIndex], op, deviceIndex));
}

// Copies `bytes` (an ArrayBuffer or any ArrayBufferView) into a new CPU tensor, then moves it.
Napi::Value fromBytes(const Napi::CallbackInfo& info, const char* op) {
  Napi::Value source = info[0];
  const uint8_t* data = nullptr;
  size_t length = 0;
  if (source.IsTypedArray()) {
    auto view = source.As<Napi::TypedArray>();
    data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    length = view.ByteLength();
  } else if (source.IsDataView()) {
    auto view = source.As<Napi::DataView>();
    data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    length = view.ByteLength();
  } else if (source.IsArrayBuffer()) {
    auto buffer = source.As<Napi::ArrayBuffer>();
    data = static_cast<const uint8_t*>(buffer.Data());
    length = buffer.ByteLength();
  } else {
    throwType(info.Env(), op, 0, "an ArrayBuffer or typed array");
  }
  auto dtype = toDtype(info[1], op, 1);
  auto shape = toIntList(info[2], op, 2);
  auto device = toDevice(info[3], op, 3);
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t expected = static_cast<size_t>(out.numel()) * out.element_size();
  if (expected != length) {
    TORCH_CHECK_VALUE(false, "byte length ", length, " does not match shape ", out.sizes(), " of ", dtype, " (",
                      expected, " bytes)");
  }
  if (length > 0) std::memcpy(out.data_ptr(), data, length);
  if (!device.is_cpu()) out = out.to(device);
  return wrap(info.Env(), out);
}

}  // namespace

static const OpTable creationOps("creation", {
  EMLAB_OP("fromBytes", { return fromBytes(info, op); }),
  EMLAB_OP("scalarTensor", {
    return wrap(info.Env(), at::scalar_tensor(toScalar(info[0], op, 0), options(info, 1, 2, op)));
  }),
  EMLAB_OP("zeros", { return wrap(info.Env(), at::zeros(toIntList(info[0], op, 0), options(info, 1, 2, op))); }),
  EMLAB_OP("ones", { return wrap(info.Env(), at::ones(toIntList(info[0], op, 0), options(info, 1, 2, op))); }),
  EMLAB_OP("empty", { return wrap(info.Env(), at::empty(toIntList(info[0], op, 0), options(info, 1, 2, op))); }),
  EMLAB_OP("full", {
    return wrap(info.Env(), at::full(toIntList(info[0], op, 0), toScalar(info[1], op, 1), options(info, 2, 3, op)));
  }),
  EMLAB_OP("arange", {
    return wrap(info.Env(), at::arange(toScalar(info[0], op, 0), toScalar(info[1], op, 1),
                                       toScalar(info[2], op, 2), options(info, 3, 4, op)));
  }),
  EMLAB_OP("linspace", {
    return wrap(info.Env(), at::linspace(toScalar(info[0], op, 0), toScalar(info[1], op, 1),
                                         toInt(info[2], op, 2), options(info, 3, 4, op)));
  }),
  EMLAB_OP("randn", { return wrap(info.Env(), at::randn(toIntList(info[0], op, 0), options(info, 1, 2, op))); }),
  EMLAB_OP("rand", { return wrap(info.Env(), at::rand(toIntList(info[0], op, 0), options(info, 1, 2, op))); }),
  EMLAB_OP("randint", {
    return wrap(info.Env(), at::randint(toInt(info[0], op, 0), toInt(info[1], op, 1),
                                        toIntList(info[2], op, 2), options(info, 3, 4, op)));
  }),
  EMLAB_OP("eye", {
    return wrap(info.Env(), at::eye(toInt(info[0], op, 0), toInt(info[1], op, 1), options(info, 2, 3, op)));
  }),
  EMLAB_OP("zerosLike", { return wrap(info.Env(), at::zeros_like(unwrap(info[0], op, 0))); }),
  EMLAB_OP("onesLike", { return wrap(info.Env(), at::ones_like(unwrap(info[0], op, 0))); }),
  EMLAB_OP("randnLike", { return wrap(info.Env(), at::randn_like(unwrap(info[0], op, 0))); }),
  // CPU generator state as a uint8 tensor (for exact resume), and its restoration.
  EMLAB_OP("getRngState", {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    return wrap(info.Env(), generator.get_state());
  }),
  EMLAB_OP("setRngState", {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(unwrap(info[0], op, 0));
    return info.Env().Undefined();
  }),
  EMLAB_OP("manualSeed", {
    torch::manual_seed(static_cast<uint64_t>(toInt(info[0], op, 0)));
    return info.Env().Undefined();
  }),
});

}  // namespace emlab
