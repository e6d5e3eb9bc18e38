// Error classification and the guard every op runs under: nothing thrown by libtorch or the
// standard library escapes into N-API (an escaping C++ exception aborts Node).
#pragma once

#include <napi.h>

#include <string>

namespace emlab {

// "op: argument i", the prefix of argument errors.
std::string argName(const char* op, int index);
// The JS error for `code` (TYPE, DISPOSED, INVALID_ARGUMENT, OUT_OF_MEMORY, DEVICE_UNAVAILABLE,
// NOT_IMPLEMENTED, INTERNAL), built by the factory the TS loader registered (setErrorFactory) when
// there is one, else a plain Error carrying op / code / torchMessage.
Napi::Error makeError(Napi::Env env, const char* code, const char* op, const std::string& message, const std::string& torchMessage);

[[noreturn]] void throwType(Napi::Env env, const char* op, int index, const char* expected);

// Converts the exception in flight (called from a catch block) into a JS error carrying `op`, a
// `code` and the libtorch message, and throws it as a Napi::Error.
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

}  // namespace emlab
