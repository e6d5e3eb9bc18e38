// Tensor handles: how a libtorch tensor crosses into JS and back. A handle is a JS External naming a
// slot of a per-thread table (see handles.cc); disposal is explicit, the GC is only a safety net.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace emlab {

// Number of live handles on this thread (created and not yet disposed or collected).
std::int64_t liveHandleCount();
// A new handle on the same slot, with a GC finalizer (for tensors leaving their scope). Its storage
// bytes are reported to V8 as external memory until it is released, so V8 collects it on time.
Napi::Value adoptByGc(const Napi::Value& value);

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

// memory.cc: bytes a CPU storage frees when this (last) reference goes; counting freed bytes and
// returning the allocator's free pages to the kernel past a budget; how often that happened.
std::int64_t lastReferenceBytes(const at::Tensor& tensor);
void noteFreedHostBytes(std::int64_t bytes);
std::int64_t hostTrimCount();

}  // namespace emlab
