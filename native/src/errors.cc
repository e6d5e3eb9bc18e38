// Error classification: every exception from libtorch or the standard library becomes a JS error
// with the op name, a code (INVALID_ARGUMENT, OUT_OF_MEMORY, DEVICE_UNAVAILABLE, NOT_IMPLEMENTED,
// INTERNAL, and TYPE / DISPOSED for bad arguments) and libtorch's message, built through the error
// factory the TS loader registers (setErrorFactory).
#include "common.h"

namespace emlab {

std::string argName(const char* op, int index) {
  return std::string(op) + ": argument " + std::to_string(index);
}

// Builds the JS error for `code` through the factory registered by the TS layer
// (setErrorFactory), so typed error classes come straight out of the addon.
Napi::Error makeError(Napi::Env env, const char* code, const char* op, const std::string& message,
                      const std::string& torchMessage) {
  std::string full = std::string(op) + ": " + message;
  auto* factory = env.GetInstanceData<Napi::FunctionReference>();
  if (factory != nullptr && !factory->IsEmpty()) {
    Napi::Value made = factory->Call({Napi::String::New(env, code), Napi::String::New(env, op), Napi::String::New(env, full),
                                      Napi::String::New(env, torchMessage)});
    if (made.IsObject()) return Napi::Error(env, made);
  }
  auto error = std::string(code) == "TYPE" ? Napi::TypeError::New(env, full) : Napi::Error::New(env, full);
  error.Set("op", Napi::String::New(env, op));
  error.Set("code", Napi::String::New(env, code));
  error.Set("torchMessage", Napi::String::New(env, torchMessage));
  return error;
}

void throwType(Napi::Env env, const char* op, int index, const char* expected) {
  throw makeError(env, "TYPE", op, argName(op, index) + " must be " + expected, "");
}

namespace {
const char* classify(const std::string& message) {
  auto has = [&](const char* needle) { return message.find(needle) != std::string::npos; };
  if (has("out of memory") || has("DefaultCPUAllocator: can't allocate")) return "OUT_OF_MEMORY";
  if (has("not compiled with CUDA") || has("Torch not compiled") || has("no CUDA GPUs") || has("CUDA driver") ||
      has("Found no NVIDIA driver") ||
      has("invalid device ordinal") || has("CUDA error: invalid device") || (has("Could not run") && has("CUDA")))
    return "DEVICE_UNAVAILABLE";
  if (has("INTERNAL ASSERT FAILED")) return "INTERNAL";
  return "INVALID_ARGUMENT";
}

Napi::Error torchError(Napi::Env env, const char* op, const std::string& message, const char* code) {
  return makeError(env, code, op, message, message);
}
}  // namespace

void rethrowAsJs(Napi::Env env, const char* op) {
  try {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    throw torchError(env, op, e.what_without_backtrace(), "OUT_OF_MEMORY");
  } catch (const c10::NotImplementedError& e) {
    std::string message = e.what_without_backtrace();
    const char* code = classify(message);
    throw torchError(env, op, message, std::string(code) == "INVALID_ARGUMENT" ? "NOT_IMPLEMENTED" : code);
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    throw torchError(env, op, message, classify(message));
  } catch (const std::bad_alloc&) {
    throw torchError(env, op, "host allocation failed (std::bad_alloc)", "OUT_OF_MEMORY");
  } catch (const std::exception& e) {
    std::string message = e.what();
    // Some user-facing checks in libtorch throw std::runtime_error rather than c10::Error.
    throw torchError(env, op, message, classify(message));
  } catch (...) {
    throw torchError(env, op, "unknown C++ exception", "INTERNAL");
  }
}

}  // namespace emlab
