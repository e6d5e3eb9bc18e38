// Baseline for the ops benchmark: the same tiny op run in a C++ loop, with no JS in between,
// so bench/ops.ts can report emlab's per-call overhead honestly.
#include "common.h"

#include <chrono>

namespace emlab {

void registerBench(Napi::Env env, Napi::Object exports) {
  // benchTinyAdd(iterations, requiresGrad) -> microseconds per at::add of two 4-element f32 tensors.
  EMLAB_FN(exports, "benchTinyAdd", {
    const auto iterations = toInt(info[0], "benchTinyAdd", 0);
    const bool requiresGrad = toBool(info[1], "benchTinyAdd", 1);
    at::Tensor a = at::tensor({1.0f, 2.0f, 3.0f, 4.0f});
    at::Tensor b = at::ones({4});
    if (requiresGrad) a.set_requires_grad(true);
    for (int i = 0; i < 1000; ++i) at::add(a, b);
    auto start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < iterations; ++i) at::add(a, b);
    std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
    return Napi::Number::New(info.Env(), elapsed.count() / static_cast<double>(iterations));
  });
}

}  // namespace emlab
