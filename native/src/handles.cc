// Tensor handles: the per-thread slot table behind the JS handles, wrapping tensors into handles,
// reading them back (unwrap), disposal, GC adoption and the live-handle count. No op lives here.
#include "common.h"

#include <deque>

namespace emlab {

namespace {
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

// One N-API call: napi_get_value_external itself rejects non-externals.
void* dataOf(const Napi::Value& value, const char* op, int index) {
  void* data = nullptr;
  if (napi_get_value_external(value.Env(), value, &data) != napi_ok) throwType(value.Env(), op, index, "a tensor handle");
  return data;
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

}  // namespace emlab
