// Reductions along dims (sum, mean, amax, amin, logsumexp, norm, var, ...) and arg-reductions.
#include "common.h"

#include <algorithm>

namespace emlab {
namespace {

std::vector<std::int64_t> allDims(const at::Tensor& x) {
  std::vector<std::int64_t> dims(x.dim());
  for (std::int64_t i = 0; i < x.dim(); ++i) dims[i] = i;
  return dims;
}

// dims null = all dims.
std::vector<std::int64_t> dimsOrAll(const Napi::Value& value, const at::Tensor& x, const char* op, int index) {
  auto dims = toOptionalIntList(value, op, index);
  return dims ? *dims : allDims(x);
}

using Reduce = at::Tensor (*)(const at::Tensor&, at::IntArrayRef, bool);
struct ReduceEntry { const char* name; Reduce fn; };

const ReduceEntry kReduce[] = {
    {"sum", [](const at::Tensor& x, at::IntArrayRef d, bool k) { return at::sum(x, d, k); }},
    {"mean", [](const at::Tensor& x, at::IntArrayRef d, bool k) { return at::mean(x, d, k); }},
    {"amax", [](const at::Tensor& x, at::IntArrayRef d, bool k) { return at::amax(x, d, k); }},
    {"amin", [](const at::Tensor& x, at::IntArrayRef d, bool k) { return at::amin(x, d, k); }},
    {"logsumexp", [](const at::Tensor& x, at::IntArrayRef d, bool k) { return at::logsumexp(x, d, k); }},
    {"all", [](const at::Tensor& x, at::IntArrayRef d, bool k) {
       at::Tensor out = x;
       std::vector<std::int64_t> sorted(d.begin(), d.end());
       std::sort(sorted.rbegin(), sorted.rend());
       for (auto dim : sorted) out = at::all(out, dim, k);
       return d.empty() ? at::all(x) : out;
     }},
    {"any", [](const at::Tensor& x, at::IntArrayRef d, bool k) {
       at::Tensor out = x;
       std::vector<std::int64_t> sorted(d.begin(), d.end());
       std::sort(sorted.rbegin(), sorted.rend());
       for (auto dim : sorted) out = at::any(out, dim, k);
       return d.empty() ? at::any(x) : out;
     }},
};
constexpr int kReduceCount = sizeof(kReduce) / sizeof(kReduce[0]);

}  // namespace

void registerReduction(Napi::Env env, Napi::Object exports) {
  auto names = Napi::Array::New(env, kReduceCount);
  for (int i = 0; i < kReduceCount; ++i) names.Set(static_cast<uint32_t>(i), Napi::String::New(env, kReduce[i].name));
  exports.Set("reduceOps", names);
  // reduce(op, x, dims|null, keepdim); all/any with dims null reduce everything.
  EMLAB_FN(exports, "reduce", {
    int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    if (code < 0 || code >= kReduceCount) throwType(info.Env(), "reduce", 0, "a known reduction code");
    const char* name = kReduce[code].name;
    const at::Tensor& x = unwrap(info[1], name, 1);
    auto dims = dimsOrAll(info[2], x, name, 2);
    bool keepdim = toBool(info[3], name, 3);
    return wrap(info.Env(), kReduce[code].fn(x, dims, keepdim));
  });
  EMLAB_FN(exports, "prod", {
    const at::Tensor& x = unwrap(info[0], "prod", 0);
    auto dim = toOptionalInt(info[1], "prod", 1);
    return wrap(info.Env(), dim ? at::prod(x, *dim, toBool(info[2], "prod", 2)) : at::prod(x));
  });
  // argmax/argmin(x, dim|null, keepdim)
  EMLAB_FN(exports, "argmax", {
    const at::Tensor& x = unwrap(info[0], "argmax", 0);
    return wrap(info.Env(), at::argmax(x, toOptionalInt(info[1], "argmax", 1), toBool(info[2], "argmax", 2)));
  });
  EMLAB_FN(exports, "argmin", {
    const at::Tensor& x = unwrap(info[0], "argmin", 0);
    return wrap(info.Env(), at::argmin(x, toOptionalInt(info[1], "argmin", 1), toBool(info[2], "argmin", 2)));
  });
  // maxDim/minDim(x, dim, keepdim) -> [values, indices]
  EMLAB_FN(exports, "maxDim", {
    auto result = at::max(unwrap(info[0], "maxDim", 0), toInt(info[1], "maxDim", 1), toBool(info[2], "maxDim", 2));
    return wrapList(info.Env(), {std::get<0>(result), std::get<1>(result)});
  });
  EMLAB_FN(exports, "minDim", {
    auto result = at::min(unwrap(info[0], "minDim", 0), toInt(info[1], "minDim", 1), toBool(info[2], "minDim", 2));
    return wrapList(info.Env(), {std::get<0>(result), std::get<1>(result)});
  });
  // norm(x, p, dims|null, keepdim): vector p-norm (p = Infinity for max-abs).
  EMLAB_FN(exports, "norm", {
    const at::Tensor& x = unwrap(info[0], "norm", 0);
    double p = toDouble(info[1], "norm", 1);
    auto dims = toOptionalIntList(info[2], "norm", 2);
    at::OptionalIntArrayRef dimRef = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), at::linalg_vector_norm(x, p, dimRef, toBool(info[3], "norm", 3), c10::nullopt));
  });
  // var/std(x, dims|null, unbiased, keepdim)
  EMLAB_FN(exports, "var", {
    const at::Tensor& x = unwrap(info[0], "var", 0);
    auto dims = toOptionalIntList(info[1], "var", 1);
    at::OptionalIntArrayRef dimRef = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), at::var(x, dimRef, toBool(info[2], "var", 2), toBool(info[3], "var", 3)));
  });
  EMLAB_FN(exports, "std", {
    const at::Tensor& x = unwrap(info[0], "std", 0);
    auto dims = toOptionalIntList(info[1], "std", 1);
    at::OptionalIntArrayRef dimRef = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), at::std(x, dimRef, toBool(info[2], "std", 2), toBool(info[3], "std", 3)));
  });
}

}  // namespace emlab
