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

static const OpTable reductionOps("reduction", {
  EMLAB_CONSTANT("reduceOps", {
    auto names = Napi::Array::New(env, kReduceCount);
    for (int i = 0; i < kReduceCount; ++i) names.Set(static_cast<uint32_t>(i), Napi::String::New(env, kReduce[i].name));
    return names;
  }),
  // reduce(op, x, dims|null, keepdim); all/any with dims null reduce everything.
  EMLAB_OP("reduce", {
    int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
    if (code < 0 || code >= kReduceCount) throwType(info.Env(), op, 0, "a known reduction code");
    const char* name = kReduce[code].name;
    const at::Tensor& x = unwrap(info[1], name, 1);
    auto dims = dimsOrAll(info[2], x, name, 2);
    bool keepdim = toBool(info[3], name, 3);
    return wrap(info.Env(), kReduce[code].fn(x, dims, keepdim));
  }),
  EMLAB_OP("prod", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    auto dim = toOptionalInt(info[1], op, 1);
    return wrap(info.Env(), dim ? at::prod(x, *dim, toBool(info[2], op, 2)) : at::prod(x));
  }),
  // argmax/argmin(x, dim|null, keepdim)
  EMLAB_OP("argmax", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    return wrap(info.Env(), at::argmax(x, toOptionalInt(info[1], op, 1), toBool(info[2], op, 2)));
  }),
  EMLAB_OP("argmin", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    return wrap(info.Env(), at::argmin(x, toOptionalInt(info[1], op, 1), toBool(info[2], op, 2)));
  }),
  // maxDim/minDim(x, dim, keepdim) -> [values, indices]
  EMLAB_OP("maxDim", {
    auto result = at::max(unwrap(info[0], op, 0), toInt(info[1], op, 1), toBool(info[2], op, 2));
    return wrapList(info.Env(), {std::get<0>(result), std::get<1>(result)});
  }),
  EMLAB_OP("minDim", {
    auto result = at::min(unwrap(info[0], op, 0), toInt(info[1], op, 1), toBool(info[2], op, 2));
    return wrapList(info.Env(), {std::get<0>(result), std::get<1>(result)});
  }),
  // norm(x, p, dims|null, keepdim): vector p-norm (p = Infinity for max-abs).
  EMLAB_OP("norm", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    double p = toDouble(info[1], op, 1);
    auto dims = toOptionalIntList(info[2], op, 2);
    at::OptionalIntArrayRef dimRef = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), at::linalg_vector_norm(x, p, dimRef, toBool(info[3], op, 3), c10::nullopt));
  }),
  // var/std(x, dims|null, unbiased, keepdim)
  EMLAB_OP("var", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    auto dims = toOptionalIntList(info[1], op, 1);
    at::OptionalIntArrayRef dimRef = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), at::var(x, dimRef, toBool(info[2], op, 2), toBool(info[3], op, 3)));
  }),
  EMLAB_OP("std", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    auto dims = toOptionalIntList(info[1], op, 1);
    at::OptionalIntArrayRef dimRef = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), at::std(x, dimRef, toBool(info[2], op, 2), toBool(info[3], op, 3)));
  }),
});

}  // namespace emlab
