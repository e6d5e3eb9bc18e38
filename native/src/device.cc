// Runtime facts and device control: libtorch version, threads, BLAS config, CUDA
// availability, synchronisation and caching-allocator statistics.
#include "common.h"

#include <torch/cuda.h>
#include <torch/version.h>

#ifdef EMLAB_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace emlab {

static const OpTable deviceOps("device", {
  EMLAB_CONSTANT("torchVersion", { return Napi::String::New(env, TORCH_VERSION); }),
#ifdef EMLAB_WITH_CUDA
  EMLAB_CONSTANT("builtWithCuda", { return Napi::Boolean::New(env, true); }),
#else
  EMLAB_CONSTANT("builtWithCuda", { return Napi::Boolean::New(env, false); }),
#endif
  EMLAB_OP("numThreads", { return Napi::Number::New(info.Env(), at::get_num_threads()); }),
  EMLAB_OP("setNumThreads", {
    at::set_num_threads(static_cast<int>(toInt(info[0], op, 0)));
    return info.Env().Undefined();
  }),
  // addonParallelThreads() -> how many distinct threads an at::parallel_for in this addon ran on. It is
  // a header template: built without -fopenmp against an OpenMP libtorch it silently runs on one thread.
  EMLAB_OP("addonParallelThreads", {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(std::max(1, at::get_num_threads())));
    at::parallel_for(0, 1 << 12, 1, [&](int64_t, int64_t) {
      const int id = at::get_thread_num();
      if (id >= 0 && id < static_cast<int>(seen.size())) seen[static_cast<size_t>(id)].store(1);
    });
    int count = 0;
    for (auto& s : seen) count += s.load();
    return Napi::Number::New(info.Env(), count);
  }),
  EMLAB_OP("parallelInfo", { return Napi::String::New(info.Env(), at::get_parallel_info()); }),
  EMLAB_OP("buildConfig", { return Napi::String::New(info.Env(), at::show_config()); }),
  EMLAB_OP("cudaIsAvailable", { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); }),
  EMLAB_OP("cudaDeviceCount", { return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count())); }),
  EMLAB_OP("cudaSynchronize", {
    torch::cuda::synchronize(toInt(info[0], op, 0));
    return info.Env().Undefined();
  }),
  // cudaMemory(device) -> [allocated, reserved, peakAllocated] bytes.
  EMLAB_OP("cudaMemory", {
    auto device = static_cast<c10::DeviceIndex>(toInt(info[0], op, 0));
#ifdef EMLAB_WITH_CUDA
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    constexpr auto all = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    auto out = Napi::Array::New(info.Env(), 3);
    out.Set(0u, Napi::Number::New(info.Env(), static_cast<double>(stats.allocated_bytes[all].current)));
    out.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(stats.reserved_bytes[all].current)));
    out.Set(2u, Napi::Number::New(info.Env(), static_cast<double>(stats.allocated_bytes[all].peak)));
    return out;
#else
    (void)device;
    TORCH_CHECK(false, "Torch not compiled with CUDA enabled (emlab was built against a CPU-only libtorch)");
#endif
  }),
  EMLAB_OP("cudaEmptyCache", {
#ifdef EMLAB_WITH_CUDA
    c10::cuda::CUDACachingAllocator::emptyCache();
#endif
    return info.Env().Undefined();
  }),
  EMLAB_OP("cudaResetPeak", {
    auto device = static_cast<c10::DeviceIndex>(toInt(info[0], op, 0));
#ifdef EMLAB_WITH_CUDA
    c10::cuda::CUDACachingAllocator::resetPeakStats(device);
#else
    (void)device;
#endif
    return info.Env().Undefined();
  }),
});

}  // namespace emlab
