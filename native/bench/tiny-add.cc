// Benchmark-only addon (emlab_bench.node, not part of the production emlab.node): the same tiny op
// as bench/ops.ts times through emlab, run in a C++ loop with no JS in between, so the benchmark can
// report emlab's per-call overhead honestly. Built by `npm run build:native:bench`
// (CMake option EMLAB_BENCH); loaded only by src/native/bench-addon.ts.
#include <napi.h>
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <exception>

namespace {

// benchTinyAdd(iterations, requiresGrad) -> microseconds per at::add of two 4-element f32 tensors.
Napi::Value benchTinyAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsBoolean()) {
    throw Napi::TypeError::New(env, "benchTinyAdd(iterations: number, requiresGrad: boolean)");
  }
  const auto iterations = static_cast<std::int64_t>(info[0].As<Napi::Number>().Int64Value());
  if (iterations <= 0) throw Napi::RangeError::New(env, "benchTinyAdd: iterations must be positive");
  const bool requiresGrad = info[1].As<Napi::Boolean>().Value();
  try {
    at::Tensor a = at::tensor({1.0f, 2.0f, 3.0f, 4.0f});
    at::Tensor b = at::ones({4});
    if (requiresGrad) a.set_requires_grad(true);
    for (int i = 0; i < 1000; ++i) at::add(a, b);
    auto start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < iterations; ++i) at::add(a, b);
    std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
    return Napi::Number::New(env, elapsed.count() / static_cast<double>(iterations));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("benchTinyAdd: ") + e.what());
  }
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("benchTinyAdd", Napi::Function::New(env, benchTinyAdd, "benchTinyAdd"));
  return exports;
}

}  // namespace

NODE_API_MODULE(emlab_bench, init)
