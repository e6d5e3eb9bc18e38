// c10d process groups for data-parallel training: a TCPStore rendezvous (rank 0 hosts it), a Gloo
// backend for CPU tensors and, in builds against a CUDA libtorch with NCCL headers, an NCCL backend
// for CUDA tensors; in-place allreduce (sum / avg / max), broadcast, barrier and destroy. No training
// logic here (sharding and gradient buckets live in src/train/data-parallel/). Every collective
// waits for its work; a dead peer or a timeout surfaces as a JS error naming the op (classified in TS).
#include "common.h"

#include <torch/version.h>

#include <chrono>
#include <memory>

// Gloo's headers are not shipped by pip's torch wheel nor by Debian's libtorch-dev (Debian: libgloo-dev);
// CMake defines EMLAB_WITH_GLOO only where they were found.
#if defined(EMLAB_WITH_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(EMLAB_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#if defined(EMLAB_WITH_GLOO) || defined(EMLAB_WITH_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#define EMLAB_WITH_C10D 1
#endif

namespace emlab {

#if defined(EMLAB_WITH_C10D)
// libtorch 2.x split the collective implementations (Backend) from the ProcessGroup front; 1.13's
// ProcessGroupGloo is itself a ProcessGroup. Both expose the same collective calls.
#if TORCH_VERSION_MAJOR >= 2
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<CollectiveBackend> backend;
  int rank = 0;
  int worldSize = 1;
  std::chrono::milliseconds timeout{0};
};

void deleteGroup(Napi::Env, Group* group) { delete group; }

Group* groupOf(const Napi::Value& value, const char* op) {
  if (!value.IsExternal()) throwType(value.Env(), op, 0, "a process group handle");
  auto* group = value.As<Napi::External<Group>>().Data();
  if (group == nullptr || !group->backend) throw Napi::Error::New(value.Env(), std::string(op) + ": the process group was destroyed");
  return group;
}

// Waits for a collective; a false return (timeout without an exception) becomes an error too.
template <typename WorkPtr>
void waitFor(const WorkPtr& work, const Group& group, const char* op) {
  if (!work->wait(group.timeout)) TORCH_CHECK(false, op, ": timed out after ", group.timeout.count(), " ms");
}

c10d::ReduceOp reduceOpOf(const std::string& name, const char* op) {
  if (name == "sum" || name == "avg") return c10d::ReduceOp::SUM;
  if (name == "max") return c10d::ReduceOp::MAX;
  if (name == "min") return c10d::ReduceOp::MIN;
  TORCH_CHECK(false, op, ": unknown reduce op '", name, "' (sum, avg, max, min)");
}

}  // namespace
#endif

static const OpTable distributedOps("distributed", {
  // The backends this build compiled.
  EMLAB_CONSTANT("distributedBackends", {
    auto backends = Napi::Array::New(env);
    uint32_t count = 0;
#if defined(EMLAB_WITH_GLOO)
    backends.Set(count++, Napi::String::New(env, "gloo"));
#endif
#if defined(EMLAB_WITH_NCCL)
    backends.Set(count++, Napi::String::New(env, "nccl"));
#endif
    (void)count;
    return backends;
  }),

  // distCreate(backend, storeHost, storePort, rank, worldSize, timeoutMs, deviceHost|null) -> handle.
  // Rank 0 listens on storePort (0 is not allowed: every rank must know the port); the others connect.
  // deviceHost: the address Gloo binds to on this machine (null: the host name's address).
  EMLAB_OP("distCreate", {
    std::string backend = toString(info[0], op, 0);
    std::string host = toString(info[1], op, 1);
    auto port = toInt(info[2], op, 2);
    auto rank = toInt(info[3], op, 3);
    auto worldSize = toInt(info[4], op, 4);
    auto timeoutMs = toInt(info[5], op, 5);
    std::string deviceHost = info[6].IsString() ? info[6].As<Napi::String>().Utf8Value() : std::string();
    TORCH_CHECK(port > 0 && port < 65536, op, ": port must be in 1..65535, got ", port);
    TORCH_CHECK(worldSize >= 1 && rank >= 0 && rank < worldSize, op, ": rank ", rank, " outside world size ", worldSize);
    TORCH_CHECK(timeoutMs > 0, op, ": timeout must be positive");
#if defined(EMLAB_WITH_C10D)
    auto group = std::make_unique<Group>();
    group->rank = static_cast<int>(rank);
    group->worldSize = static_cast<int>(worldSize);
    group->timeout = std::chrono::milliseconds(timeoutMs);
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<std::uint16_t>(port);
    storeOptions.isServer = rank == 0;
    storeOptions.numWorkers = static_cast<std::size_t>(worldSize);
    storeOptions.waitWorkers = true;
    storeOptions.timeout = group->timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(host, storeOptions);
    if (backend == "gloo") {
#if defined(EMLAB_WITH_GLOO)
      auto options = c10d::ProcessGroupGloo::Options::create(group->timeout);
#if TORCH_VERSION_MAJOR >= 2
      options->devices.push_back(deviceHost.empty() ? c10d::ProcessGroupGloo::createDefaultDevice(false)
                                                    : c10d::ProcessGroupGloo::createDeviceForHostname(deviceHost, false));
#else
      options->devices.push_back(deviceHost.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                                    : c10d::ProcessGroupGloo::createDeviceForHostname(deviceHost));
#endif
      group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, group->rank, group->worldSize, options);
#else
      TORCH_CHECK(false, op, ": this emlab build has no Gloo backend (Gloo headers were not found at build time; Debian: apt-get install libgloo-dev, then rebuild)");
#endif
    } else if (backend == "nccl") {
#if defined(EMLAB_WITH_NCCL)
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = group->timeout;
      group->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(group->store, group->rank, group->worldSize, options);
#else
      TORCH_CHECK(false, op, ": this emlab build has no NCCL backend (it needs a CUDA libtorch 2.x and nccl.h at build time)");
#endif
    } else {
      TORCH_CHECK(false, op, ": unknown backend '", backend, "' (gloo, nccl)");
    }
    return Napi::External<Group>::New(info.Env(), group.release(), deleteGroup);
#else
    (void)deviceHost;
    TORCH_CHECK(false, op, ": this emlab build has no c10d backend (Gloo headers were not found at build time; Debian: apt-get install libgloo-dev, then rebuild)");
#endif
  }),

  // distAllreduce(handle, tensor, op): in place over every rank; "avg" divides the sum by the world size.
  EMLAB_OP("distAllreduce", {
#if defined(EMLAB_WITH_C10D)
    Group* group = groupOf(info[0], op);
    at::Tensor& tensor = unwrap(info[1], op, 1);
    std::string reduce = toString(info[2], op, 2);
    TORCH_CHECK(tensor.is_contiguous(), op, ": the tensor must be contiguous");
    std::vector<at::Tensor> tensors{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = reduceOpOf(reduce, op);
    options.timeout = group->timeout;
    waitFor(group->backend->allreduce(tensors, options), *group, op);
    if (reduce == "avg") {
      c10::InferenceMode guard;  // never record the in-place division in autograd
      tensor.div_(group->worldSize);
    }
    return info.Env().Undefined();
#else
    TORCH_CHECK(false, op, ": this emlab build has no c10d backend");
#endif
  }),

  // distBroadcast(handle, tensor, root): in place; every rank receives root's values.
  EMLAB_OP("distBroadcast", {
#if defined(EMLAB_WITH_C10D)
    Group* group = groupOf(info[0], op);
    at::Tensor& tensor = unwrap(info[1], op, 1);
    auto root = toInt(info[2], op, 2);
    TORCH_CHECK(root >= 0 && root < group->worldSize, op, ": root ", root, " outside world size ", group->worldSize);
    TORCH_CHECK(tensor.is_contiguous(), op, ": the tensor must be contiguous");
    std::vector<at::Tensor> tensors{tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = group->timeout;
    waitFor(group->backend->broadcast(tensors, options), *group, op);
    return info.Env().Undefined();
#else
    TORCH_CHECK(false, op, ": this emlab build has no c10d backend");
#endif
  }),

  EMLAB_OP("distBarrier", {
#if defined(EMLAB_WITH_C10D)
    Group* group = groupOf(info[0], op);
    c10d::BarrierOptions options;
    options.timeout = group->timeout;
    waitFor(group->backend->barrier(options), *group, op);
    return info.Env().Undefined();
#else
    TORCH_CHECK(false, op, ": this emlab build has no c10d backend");
#endif
  }),

  // distDestroy(handle): releases the backend and the store (idempotent); later calls on it fail.
  EMLAB_OP("distDestroy", {
#if defined(EMLAB_WITH_C10D)
    if (!info[0].IsExternal()) throwType(info.Env(), op, 0, "a process group handle");
    auto* group = info[0].As<Napi::External<Group>>().Data();
    if (group != nullptr) {
#if defined(EMLAB_WITH_NCCL) && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 4)
      // NCCL wants an explicit shutdown (its watchdog thread, communicators) before the last reference goes.
      if (auto* nccl = dynamic_cast<c10d::ProcessGroupNCCL*>(group->backend.get())) nccl->shutdown();
#endif
      group->backend.reset();
      group->store.reset();
    }
#endif
    return info.Env().Undefined();
  }),
});

}  // namespace emlab
