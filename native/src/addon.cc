// Module entry of the emlab addon: registers every op group and sets libtorch's intra-op
// threads from the core count (Debian's libtorch 1.13 starts with one).
#include "common.h"

#include <thread>

namespace emlab {
void registerCreation(Napi::Env, Napi::Object);
void registerTensor(Napi::Env, Napi::Object);
void registerElementwise(Napi::Env, Napi::Object);
void registerReduction(Napi::Env, Napi::Object);
void registerShape(Napi::Env, Napi::Object);
void registerNn(Napi::Env, Napi::Object);
void registerAutograd(Napi::Env, Napi::Object);
void registerOptim(Napi::Env, Napi::Object);
void registerDevice(Napi::Env, Napi::Object);
void registerFiles(Napi::Env, Napi::Object);
void registerBench(Napi::Env, Napi::Object);
}  // namespace emlab

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  try {
    unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0 && at::get_num_threads() < static_cast<int>(cores)) at::set_num_threads(static_cast<int>(cores));
  } catch (...) {
    // thread setup is an optimisation; never fail module load for it
  }
  emlab::registerCreation(env, exports);
  emlab::registerTensor(env, exports);
  emlab::registerElementwise(env, exports);
  emlab::registerReduction(env, exports);
  emlab::registerShape(env, exports);
  emlab::registerNn(env, exports);
  emlab::registerAutograd(env, exports);
  emlab::registerOptim(env, exports);
  emlab::registerDevice(env, exports);
  emlab::registerFiles(env, exports);
  emlab::registerBench(env, exports);
  return exports;
}

NODE_API_MODULE(emlab, init)
