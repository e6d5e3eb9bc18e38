// Implementation of the shared plumbing: handles, argument conversion, error guard.
#include "common.h"

#include <cmath>
#include <cstring>
#include <deque>

namespace emlab {

namespace {
Napi::Error makeError(Napi::Env env, const char* code, const char* op, const std::string& message,
                      const std::string& torchMessage);

// Handles are JS Externals whose pointer value encodes (generation << 32 | slot index) into a
// per-thread slot table; nothing is heap-allocated per handle. A disposed slot bumps its generation,
// so a stale handle is detected (DISPOSED) instead of reaching a tensor that reused the slot.
// New handles have no GC finalizer (V8 weak handles cost more than the op itself): the TS layer
// frees them through scopes or dispose(), and calls adoptByGc for the ones that outlive that.
struct Slot {
  at::Tensor tensor;
  std::uint32_t generation = 1;
  bool gcOwned = false;  // a handle with a GC finalizer exists for this slot (at most one may)
  std::int64_t externalBytes = 0;  // reported to V8 (napi_adjust_external_memory) while gcOwned
};
#define EMLAB_TLS thread_local __attribute__((tls_model("initial-exec")))
EMLAB_TLS std::deque<Slot> slots;  // deque: references stay valid while the table grows
EMLAB_TLS std::vector<std::uint32_t> freeSlots;
EMLAB_TLS std::int64_t liveSlots = 0;

inline void* encode(std::uint32_t index, std::uint32_t generation) {
  return reinterpret_cast<void*>((static_cast<std::uint64_t>(generation) << 32) | index);
}

inline Slot* slotOf(void* data) {
  const auto bits = reinterpret_cast<std::uint64_t>(data);
  const auto index = static_cast<std::uint32_t>(bits & 0xffffffffu);
  const auto generation = static_cast<std::uint32_t>(bits >> 32);
  if (index >= slots.size()) return nullptr;
  Slot& slot = slots[index];
  return slot.generation == generation && slot.tensor.defined() ? &slot : nullptr;
}

bool release(napi_env env, void* data) {
  Slot* slot = slotOf(data);
  if (slot == nullptr) return false;
  const std::int64_t freed = lastReferenceBytes(slot->tensor);
  slot->tensor.reset();
  if (slot->externalBytes != 0) {
    std::int64_t ignored = 0;
    napi_adjust_external_memory(env, -slot->externalBytes, &ignored);
    slot->externalBytes = 0;
  }
  slot->gcOwned = false;
  slot->generation = slot->generation == 0xffffffffu ? 1 : slot->generation + 1;
  const auto index = static_cast<std::uint32_t>(reinterpret_cast<std::uint64_t>(data) & 0xffffffffu);
  freeSlots.push_back(index);
  --liveSlots;
  noteFreedHostBytes(freed);
  return true;
}

void finalizeHandle(napi_env env, void* data, void*) { release(env, data); }

Napi::Value makeHandle(Napi::Env env, void* data, bool withFinalizer) {
  napi_value result;
  napi_status status = napi_create_external(env, data, withFinalizer ? finalizeHandle : nullptr, nullptr, &result);
  NAPI_THROW_IF_FAILED(env, status, Napi::Value());
  return Napi::Value(env, result);
}

void* dataOf(const Napi::Value& value, const char* op, int index);

std::string argName(const char* op, int index) {
  return std::string(op) + ": argument " + std::to_string(index);
}
}  // namespace

std::int64_t liveHandleCount() { return liveSlots; }

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  std::uint32_t index;
  if (!freeSlots.empty()) {
    index = freeSlots.back();
    freeSlots.pop_back();
  } else {
    index = static_cast<std::uint32_t>(slots.size());
    slots.emplace_back();
  }
  Slot& slot = slots[index];
  slot.tensor = std::move(tensor);
  slot.gcOwned = false;
  ++liveSlots;
  return makeHandle(env, encode(index, slot.generation), false);
}

Napi::Value adoptByGc(const Napi::Value& value) {
  void* data = dataOf(value, "adoptByGc", 0);
  Slot* slot = slotOf(data);
  if (slot == nullptr || slot->gcOwned) return value;
  Napi::Value handle = makeHandle(value.Env(), data, true);
  slot->gcOwned = true;
  if (slot->tensor.has_storage()) {
    const auto bytes = static_cast<std::int64_t>(slot->tensor.storage().nbytes());
    std::int64_t ignored = 0;
    if (bytes > 0 && napi_adjust_external_memory(value.Env(), bytes, &ignored) == napi_ok) slot->externalBytes = bytes;
  }
  return handle;
}

Napi::Value wrapOrNull(Napi::Env env, const at::Tensor& tensor) {
  if (!tensor.defined()) return env.Null();
  return wrap(env, tensor);
}

Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  auto array = Napi::Array::New(env, tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) array.Set(static_cast<uint32_t>(i), wrapOrNull(env, tensors[i]));
  return array;
}

namespace {
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

}  // namespace

void throwType(Napi::Env env, const char* op, int index, const char* expected) {
  throw makeError(env, "TYPE", op, argName(op, index) + " must be " + expected, "");
}

namespace {
// One N-API call: napi_get_value_external itself rejects non-externals.
void* dataOf(const Napi::Value& value, const char* op, int index) {
  void* data = nullptr;
  if (napi_get_value_external(value.Env(), value, &data) != napi_ok) throwType(value.Env(), op, index, "a tensor handle");
  return data;
}
}  // namespace

at::Tensor& unwrap(const Napi::Value& value, const char* op, int index) {
  Slot* slot = slotOf(dataOf(value, op, index));
  if (slot == nullptr) throw makeError(value.Env(), "DISPOSED", op, argName(op, index) + " is a disposed tensor", "");
  return slot->tensor;
}

at::Tensor unwrapOptional(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return at::Tensor();
  return unwrap(value, op, index);
}

std::vector<at::Tensor> unwrapList(const Napi::Value& value, const char* op, int index) {
  if (!value.IsArray()) throwType(value.Env(), op, index, "an array of tensor handles");
  auto array = value.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) out.push_back(unwrapOptional(array.Get(i), op, index));
  return out;
}

bool disposeHandle(const Napi::Value& value) { return release(value.Env(), dataOf(value, "dispose", 0)); }

bool isDisposed(const Napi::Value& value) { return slotOf(dataOf(value, "isDisposed", 0)) == nullptr; }

// Dtype codes shared with src/native/dtype.ts.
static const at::ScalarType kDtypes[] = {at::kFloat, at::kHalf,  at::kBFloat16, at::kDouble, at::kLong,
                                         at::kInt,   at::kByte,  at::kBool,     at::kChar,   at::kShort};
static constexpr int kDtypeCount = sizeof(kDtypes) / sizeof(kDtypes[0]);

at::ScalarType toDtype(const Napi::Value& value, const char* op, int index) {
  if (!value.IsNumber()) throwType(value.Env(), op, index, "a dtype code");
  int code = value.As<Napi::Number>().Int32Value();
  if (code < 0 || code >= kDtypeCount) throwType(value.Env(), op, index, "a known dtype code");
  return kDtypes[code];
}

int dtypeCode(at::ScalarType type) {
  for (int i = 0; i < kDtypeCount; ++i)
    if (kDtypes[i] == type) return i;
  return -1;
}

c10::Device toDevice(const Napi::Value& value, const char* op, int index) {
  if (!value.IsString()) throwType(value.Env(), op, index, "a device string such as \"cpu\" or \"cuda:0\"");
  return c10::Device(value.As<Napi::String>().Utf8Value());
}

std::string deviceString(const c10::Device& device) {
  if (device.is_cpu()) return "cpu";
  return device.str().find(':') == std::string::npos ? device.str() + ":" + std::to_string(std::max<int>(0, device.index()))
                                                       : device.str();
}

std::int64_t toInt(const Napi::Value& value, const char* op, int index) {
  double d = 0;
  if (napi_get_value_double(value.Env(), value, &d) == napi_ok) {
    if (std::floor(d) != d || !std::isfinite(d)) throwType(value.Env(), op, index, "an integer");
    // Converting a double outside int64's range is undefined behaviour: refuse it instead.
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) throwType(value.Env(), op, index, "an integer within the int64 range");
    return static_cast<std::int64_t>(d);
  }
  if (value.IsBigInt()) {
    bool lossless = true;
    const std::int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throwType(value.Env(), op, index, "an integer within the int64 range");
    return result;
  }
  throwType(value.Env(), op, index, "an integer");
}

c10::optional<std::int64_t> toOptionalInt(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return c10::nullopt;
  return toInt(value, op, index);
}

std::vector<std::int64_t> toIntList(const Napi::Value& value, const char* op, int index) {
  if (!value.IsArray()) throwType(value.Env(), op, index, "an array of integers");
  auto array = value.As<Napi::Array>();
  std::vector<std::int64_t> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) out[i] = toInt(array.Get(i), op, index);
  return out;
}

c10::optional<std::vector<std::int64_t>> toOptionalIntList(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return c10::nullopt;
  return toIntList(value, op, index);
}

double toDouble(const Napi::Value& value, const char* op, int index) {
  if (!value.IsNumber()) throwType(value.Env(), op, index, "a number");
  return value.As<Napi::Number>().DoubleValue();
}

c10::optional<double> toOptionalDouble(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return c10::nullopt;
  return toDouble(value, op, index);
}

bool toBool(const Napi::Value& value, const char* op, int index) {
  bool result = false;
  if (napi_get_value_bool(value.Env(), value, &result) != napi_ok) throwType(value.Env(), op, index, "a boolean");
  return result;
}

std::string toString(const Napi::Value& value, const char* op, int index) {
  if (!value.IsString()) throwType(value.Env(), op, index, "a string");
  return value.As<Napi::String>().Utf8Value();
}

at::Scalar toScalar(const Napi::Value& value, const char* op, int index) {
  if (value.IsNumber()) {
    double d = value.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0)
      return at::Scalar(static_cast<int64_t>(d));
    return at::Scalar(d);
  }
  if (value.IsBoolean()) return at::Scalar(value.As<Napi::Boolean>().Value());
  if (value.IsBigInt()) {
    bool lossless = true;
    const std::int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throwType(value.Env(), op, index, "a bigint within the int64 range");
    return at::Scalar(result);
  }
  throwType(value.Env(), op, index, "a number, bigint or boolean");
}

Napi::Value intListToJs(Napi::Env env, c10::IntArrayRef values) {
  auto array = Napi::Array::New(env, values.size());
  for (std::size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(values[i])));
  return array;
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
