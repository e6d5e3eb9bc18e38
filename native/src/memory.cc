// Host-memory hygiene for freed tensors. addon.cc makes glibc serve large CPU tensors from its heap
// and never trim it (allocations reuse warm pages, much faster than a fresh mmap each time), so
// freed tensors stay in the process's RSS. Alone that grows without bound when tensor sizes vary
// (fragmentation: every batch of a new length carves new blocks). Here the bytes of CPU storages
// freed through handles are counted and, past a budget (EMLAB_RETAIN_MB, default 1024), the heap's
// free pages are returned to the kernel (malloc_trim), so RSS is bounded by live tensors plus the
// budget and no longer waits on V8's garbage collector. The budget trades RSS for speed: each trim makes
// the next allocations fault their pages in again. A forward pass of a Qwen2.5-0.5B shape at 4x256
// (~100 MB freed per layer) took 7.3-8.0 s with 256 MB (a trim every few layers) and 6.8-7.0 s with
// 1024 MB, at the same peak RSS within 60 MB; 2048 MB gained nothing more.
#include "common.h"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace emlab {
namespace {

constexpr std::int64_t kDefaultRetainMb = 1024;

std::int64_t retainBudget() {
  static const std::int64_t budget = [] {
    const char* setting = std::getenv("EMLAB_RETAIN_MB");
    if (setting == nullptr || *setting == '\0') return kDefaultRetainMb << 20;
    char* end = nullptr;
    const long long mb = std::strtoll(setting, &end, 10);
    if (end == setting || *end != '\0' || mb < 0) return kDefaultRetainMb << 20;
    return static_cast<std::int64_t>(mb) << 20;
  }();
  return budget;
}

thread_local std::int64_t freedSinceTrim = 0;
thread_local std::int64_t trimCount = 0;

}  // namespace

std::int64_t lastReferenceBytes(const at::Tensor& tensor) {
  if (!tensor.defined() || tensor.use_count() != 1 || !tensor.has_storage()) return 0;
  const c10::Storage& storage = tensor.storage();
  if (storage.use_count() != 1 || storage.device_type() != c10::DeviceType::CPU) return 0;
  return static_cast<std::int64_t>(storage.nbytes());
}

void noteFreedHostBytes(std::int64_t bytes) {
  if (bytes <= 0) return;
  freedSinceTrim += bytes;
  if (freedSinceTrim < retainBudget()) return;
  freedSinceTrim = 0;
  ++trimCount;
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

std::int64_t hostTrimCount() { return trimCount; }

}  // namespace emlab
