// Module entry of the emlab addon: exports every op table the source files registered (ops.h) and
// sets libtorch's intra-op threads from the core count (Debian's libtorch 1.13 starts with one).
// A new op file needs no line here.
#include "common.h"

#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// Large CPU tensors (logits over a 150k vocabulary, activations) are above glibc's mmap threshold:
// each allocation is a fresh mmap whose pages the kernel zeroes on first touch, then unmapped on free.
// Serving them from the heap and not trimming it made a small training step ~2x faster here.
// EMLAB_MALLOC_TUNING=0 keeps glibc's defaults.
static void tuneAllocator() {
#if defined(__GLIBC__)
  const char* setting = std::getenv("EMLAB_MALLOC_TUNING");
  if (setting != nullptr && std::strcmp(setting, "0") == 0) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  tuneAllocator();
  try {
    unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0 && at::get_num_threads() < static_cast<int>(cores)) at::set_num_threads(static_cast<int>(cores));
  } catch (...) {
    // thread setup is an optimisation; never fail module load for it
  }
  emlab::exportRegisteredOps(env, exports);
  return exports;
}

NODE_API_MODULE(emlab, init)
