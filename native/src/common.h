// Shared plumbing of the emlab addon: the tensor handle, argument conversion and the
// error guard that turns every libtorch exception into a JS error. No op lives here.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace emlab {

// Number of live handles on this thread (created and not yet disposed or collected).
std::int64_t liveHandleCount();
// A new handle on the same slot, with a GC finalizer (for tensors leaving their scope). Its storage
// bytes are reported to V8 as external memory until it is released, so V8 collects it on time.
Napi::Value adoptByGc(const Napi::Value& value);
// memory.cc: bytes a CPU storage frees when this (last) reference goes; counting freed bytes and
// returning the allocator's free pages to the kernel past a budget; how often that happened.
std::int64_t lastReferenceBytes(const at::Tensor& tensor);
void noteFreedHostBytes(std::int64_t bytes);
std::int64_t hostTrimCount();

// Wraps a tensor into a new JS handle (undefined tensors become null).
Napi::Value wrap(Napi::Env env, at::Tensor tensor);
// Wraps an optional tensor: undefined tensors become null.
Napi::Value wrapOrNull(Napi::Env env, const at::Tensor& tensor);
// Wraps a list of tensors into a JS array of handles.
Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors);
// Reads the tensor of a handle; TypeError when not a handle, Error when disposed.
at::Tensor& unwrap(const Napi::Value& value, const char* op, int index);
// Null/undefined gives an undefined tensor.
at::Tensor unwrapOptional(const Napi::Value& value, const char* op, int index);
std::vector<at::Tensor> unwrapList(const Napi::Value& value, const char* op, int index);
// Disposes a handle; returns false when it was already disposed.
bool disposeHandle(const Napi::Value& value);
bool isDisposed(const Napi::Value& value);

// Argument conversion; each throws a TypeError naming op and argument index.
at::ScalarType toDtype(const Napi::Value& value, const char* op, int index);
int dtypeCode(at::ScalarType type);
c10::Device toDevice(const Napi::Value& value, const char* op, int index);
std::string deviceString(const c10::Device& device);
std::vector<std::int64_t> toIntList(const Napi::Value& value, const char* op, int index);
c10::optional<std::vector<std::int64_t>> toOptionalIntList(const Napi::Value& value, const char* op, int index);
std::int64_t toInt(const Napi::Value& value, const char* op, int index);
c10::optional<std::int64_t> toOptionalInt(const Napi::Value& value, const char* op, int index);
double toDouble(const Napi::Value& value, const char* op, int index);
c10::optional<double> toOptionalDouble(const Napi::Value& value, const char* op, int index);
bool toBool(const Napi::Value& value, const char* op, int index);
std::string toString(const Napi::Value& value, const char* op, int index);
// JS number (integral -> int64 scalar, else double), bigint or boolean.
at::Scalar toScalar(const Napi::Value& value, const char* op, int index);
Napi::Value intListToJs(Napi::Env env, c10::IntArrayRef values);

[[noreturn]] void throwType(Napi::Env env, const char* op, int index, const char* expected);

// Converts the exception in flight (called from a catch block) into a JS error carrying `op`, a
// `code` (INVALID_ARGUMENT, OUT_OF_MEMORY, DEVICE_UNAVAILABLE, NOT_IMPLEMENTED, INTERNAL) and the
// libtorch message, and throws it as a Napi::Error.
[[noreturn]] void rethrowAsJs(Napi::Env env, const char* op);

// Runs `body`; nothing thrown by libtorch or the standard library escapes into N-API. A template
// (not std::function) so the happy path is a direct, inlinable call.
template <typename Body>
inline Napi::Value guard(const Napi::CallbackInfo& info, const char* op, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;  // already a JS error (TypeError, disposed use); node-addon-api rethrows it into JS
  } catch (...) {
    rethrowAsJs(info.Env(), op);
  }
}

using Registrar = void (*)(Napi::Env, Napi::Object);

// Registers a guarded function under `name`.
#define EMLAB_FN(exports, name, ...)                                                              \
  (exports).Set(name, Napi::Function::New(                                                         \
                          (exports).Env(),                                                         \
                          [](const Napi::CallbackInfo& info) -> Napi::Value {                      \
                            return ::emlab::guard(info, name, [&]() -> Napi::Value { __VA_ARGS__ });      \
                          },                                                                       \
                          name))

}  // namespace emlab
