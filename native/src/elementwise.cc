// Elementwise ops: unary, binary (tensor or scalar operand, broadcasting), where, clamp,
// masked_fill and the in-place variants training needs. Op tables are exported by name so
// the TS side derives its op codes from here (one source of truth).
#include "common.h"

#include <cstring>

namespace emlab {
namespace {

using Unary = at::Tensor (*)(const at::Tensor&);
using Binary = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

struct UnaryEntry { const char* name; Unary fn; };
struct BinaryEntry { const char* name; Binary fn; };

const UnaryEntry kUnary[] = {
    {"neg", [](const at::Tensor& x) { return at::neg(x); }},
    {"exp", [](const at::Tensor& x) { return at::exp(x); }},
    {"log", [](const at::Tensor& x) { return at::log(x); }},
    {"sqrt", [](const at::Tensor& x) { return at::sqrt(x); }},
    {"rsqrt", [](const at::Tensor& x) { return at::rsqrt(x); }},
    {"abs", [](const at::Tensor& x) { return at::abs(x); }},
    {"tanh", [](const at::Tensor& x) { return at::tanh(x); }},
    {"sigmoid", [](const at::Tensor& x) { return at::sigmoid(x); }},
    {"silu", [](const at::Tensor& x) { return at::silu(x); }},
    {"relu", [](const at::Tensor& x) { return at::relu(x); }},
    {"sin", [](const at::Tensor& x) { return at::sin(x); }},
    {"cos", [](const at::Tensor& x) { return at::cos(x); }},
    {"gelu", [](const at::Tensor& x) { return at::gelu(x, "none"); }},
    {"geluTanh", [](const at::Tensor& x) { return at::gelu(x, "tanh"); }},
    {"logicalNot", [](const at::Tensor& x) { return at::logical_not(x); }},
    {"floor", [](const at::Tensor& x) { return at::floor(x); }},
    {"ceil", [](const at::Tensor& x) { return at::ceil(x); }},
    {"round", [](const at::Tensor& x) { return at::round(x); }},
    {"sign", [](const at::Tensor& x) { return at::sign(x); }},
    {"reciprocal", [](const at::Tensor& x) { return at::reciprocal(x); }},
    {"log1p", [](const at::Tensor& x) { return at::log1p(x); }},
    {"expm1", [](const at::Tensor& x) { return at::expm1(x); }},
    {"square", [](const at::Tensor& x) { return at::square(x); }},
    {"erf", [](const at::Tensor& x) { return at::erf(x); }},
    {"isnan", [](const at::Tensor& x) { return at::isnan(x); }},
    {"isfinite", [](const at::Tensor& x) { return at::isfinite(x); }},
};

const BinaryEntry kBinary[] = {
    {"add", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }},
    {"sub", [](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }},
    {"mul", [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }},
    {"div", [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b); }},
    {"pow", [](const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b); }},
    {"maximum", [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }},
    {"minimum", [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }},
    {"eq", [](const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }},
    {"ne", [](const at::Tensor& a, const at::Tensor& b) { return at::ne(a, b); }},
    {"lt", [](const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }},
    {"le", [](const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }},
    {"gt", [](const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }},
    {"ge", [](const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }},
    {"logicalAnd", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }},
    {"logicalOr", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }},
    {"logicalXor", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }},
    {"remainder", [](const at::Tensor& a, const at::Tensor& b) { return at::remainder(a, b); }},
    {"floorDivide", [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b, "floor"); }},
    {"atan2", [](const at::Tensor& a, const at::Tensor& b) { return at::atan2(a, b); }},
};

// Scalar right-hand sides take libtorch's Scalar overloads where they exist (faster kernels and
// the same autograd formulas as Python, e.g. pow(x, 2)); null = fall back to a wrapped number.
using BinaryScalar = at::Tensor (*)(const at::Tensor&, const at::Scalar&);
const BinaryScalar kBinaryScalar[] = {
    [](const at::Tensor& a, const at::Scalar& s) { return at::add(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::sub(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::mul(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::div(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::pow(a, s); },
    nullptr,  // maximum
    nullptr,  // minimum
    [](const at::Tensor& a, const at::Scalar& s) { return at::eq(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::ne(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::lt(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::le(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::gt(a, s); },
    [](const at::Tensor& a, const at::Scalar& s) { return at::ge(a, s); },
    nullptr,  // logicalAnd
    nullptr,  // logicalOr
    nullptr,  // logicalXor
    [](const at::Tensor& a, const at::Scalar& s) { return at::remainder(a, s); },
    nullptr,  // floorDivide
    nullptr,  // atan2
};
// Reversed scalar forms s (op) a with a Scalar overload.
at::Tensor reversedScalar(const char* name, const at::Scalar& s, const at::Tensor& a) {
  if (std::strcmp(name, "sub") == 0) return at::rsub(a, s);
  if (std::strcmp(name, "pow") == 0) return at::pow(s, a);
  return at::Tensor();
}

constexpr int kUnaryCount = sizeof(kUnary) / sizeof(kUnary[0]);
constexpr int kBinaryCount = sizeof(kBinary) / sizeof(kBinary[0]);
static_assert(sizeof(kBinaryScalar) / sizeof(kBinaryScalar[0]) == kBinaryCount, "one scalar entry per binary op");

template <typename Entry, int N>
Napi::Value names(Napi::Env env, const Entry (&table)[N]) {
  auto array = Napi::Array::New(env, N);
  for (int i = 0; i < N; ++i) array.Set(static_cast<uint32_t>(i), Napi::String::New(env, table[i].name));
  return array;
}

int opCode(const Napi::Value& value, int count, const char* op) {
  int32_t code = -1;
  if (napi_get_value_int32(value.Env(), value, &code) != napi_ok || code < 0 || code >= count) {
    throwType(value.Env(), op, 0, "a known op code");
  }
  return code;
}

bool isHandle(const Napi::Value& value) {
  napi_valuetype type;
  return napi_typeof(value.Env(), value, &type) == napi_ok && type == napi_external;
}

}  // namespace

// A JS scalar as a 0-dim "wrapped number" tensor: it takes part in type promotion like a
// Python scalar (int tensor * 2 stays int, float16 tensor + 1.5 stays float16).
at::Tensor scalarOperand(const Napi::Value& value, const char* op, int index) {
  at::Tensor t = c10::scalar_to_tensor(toScalar(value, op, index));
  t.unsafeGetTensorImpl()->set_wrapped_number(true);
  return t;
}

// A tensor handle or a JS scalar.
at::Tensor operand(const Napi::Value& value, const char* op, int index) {
  if (value.IsExternal()) return unwrap(value, op, index);
  return scalarOperand(value, op, index);
}

static const OpTable elementwiseOps("elementwise", {
  EMLAB_CONSTANT("unaryOps", { return names(env, kUnary); }),
  EMLAB_CONSTANT("binaryOps", { return names(env, kBinary); }),
  EMLAB_OP("unary", {
    int code = opCode(info[0], kUnaryCount, op);
    return wrap(info.Env(), kUnary[code].fn(unwrap(info[1], kUnary[code].name, 1)));
  }),
  // binary(op, a, b, reversed): b may be a tensor handle or a scalar; reversed computes op(b, a).
  EMLAB_OP("binary", {
    int code = opCode(info[0], kBinaryCount, op);
    const char* name = kBinary[code].name;
    const at::Tensor& a = unwrap(info[1], name, 1);
    bool reversed = false;
    napi_get_value_bool(info.Env(), info[3], &reversed);  // absent or not a boolean: false
    if (!isHandle(info[2])) {
      at::Scalar s = toScalar(info[2], name, 2);
      if (!reversed && kBinaryScalar[code] != nullptr) return wrap(info.Env(), kBinaryScalar[code](a, s));
      if (reversed) {
        at::Tensor out = reversedScalar(name, s, a);
        if (out.defined()) return wrap(info.Env(), out);
      }
    }
    at::Tensor b = operand(info[2], name, 2);
    return wrap(info.Env(), reversed ? kBinary[code].fn(b, a) : kBinary[code].fn(a, b));
  }),
  // Tensor-tensor fast paths for the hottest ops: two arguments, no op code or scalar dispatch.
  EMLAB_OP_REPORTED_AS("addTT", "add", { return wrap(info.Env(), at::add(unwrap(info[0], op, 1), unwrap(info[1], op, 2))); }),
  EMLAB_OP_REPORTED_AS("subTT", "sub", { return wrap(info.Env(), at::sub(unwrap(info[0], op, 1), unwrap(info[1], op, 2))); }),
  EMLAB_OP_REPORTED_AS("mulTT", "mul", { return wrap(info.Env(), at::mul(unwrap(info[0], op, 1), unwrap(info[1], op, 2))); }),
  EMLAB_OP_REPORTED_AS("divTT", "div", { return wrap(info.Env(), at::div(unwrap(info[0], op, 1), unwrap(info[1], op, 2))); }),
  EMLAB_OP("addScaled", {
    return wrap(info.Env(), at::add(unwrap(info[0], op, 0), operand(info[1], op, 1),
                                    toScalar(info[2], op, 2)));
  }),
  EMLAB_OP("where", {
    return wrap(info.Env(), at::where(unwrap(info[0], op, 0), operand(info[1], op, 1), operand(info[2], op, 2)));
  }),
  EMLAB_OP("maskedFill", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    const at::Tensor& mask = unwrap(info[1], op, 1);
    if (info[2].IsExternal()) return wrap(info.Env(), at::masked_fill(x, mask, unwrap(info[2], op, 2)));
    return wrap(info.Env(), at::masked_fill(x, mask, toScalar(info[2], op, 2)));
  }),
  EMLAB_OP("clamp", {
    const at::Tensor& x = unwrap(info[0], op, 0);
    c10::optional<at::Scalar> lo, hi;
    if (!info[1].IsNull() && !info[1].IsUndefined()) lo = toScalar(info[1], op, 1);
    if (!info[2].IsNull() && !info[2].IsUndefined()) hi = toScalar(info[2], op, 2);
    return wrap(info.Env(), at::clamp(x, lo, hi));
  }),
  EMLAB_OP("lerp", {
    return wrap(info.Env(), at::lerp(unwrap(info[0], op, 0), unwrap(info[1], op, 1), toScalar(info[2], op, 2)));
  }),

  // In-place variants: they return nothing; the TS side returns the receiver.
  EMLAB_OP("add_", {
    unwrap(info[0], op, 0).add_(operand(info[1], op, 1), info[2].IsUndefined() ? at::Scalar(1) : toScalar(info[2], op, 2));
    return info.Env().Undefined();
  }),
  EMLAB_OP("sub_", {
    unwrap(info[0], op, 0).sub_(operand(info[1], op, 1), info[2].IsUndefined() ? at::Scalar(1) : toScalar(info[2], op, 2));
    return info.Env().Undefined();
  }),
  EMLAB_OP("mul_", {
    unwrap(info[0], op, 0).mul_(operand(info[1], op, 1));
    return info.Env().Undefined();
  }),
  EMLAB_OP("div_", {
    unwrap(info[0], op, 0).div_(operand(info[1], op, 1));
    return info.Env().Undefined();
  }),
  EMLAB_OP("copy_", {
    unwrap(info[0], op, 0).copy_(unwrap(info[1], op, 1));
    return info.Env().Undefined();
  }),
  EMLAB_OP("zero_", {
    unwrap(info[0], op, 0).zero_();
    return info.Env().Undefined();
  }),
  EMLAB_OP("fill_", {
    unwrap(info[0], op, 0).fill_(toScalar(info[1], op, 1));
    return info.Env().Undefined();
  }),
  EMLAB_OP("clamp_", {
    c10::optional<at::Scalar> lo, hi;
    if (!info[1].IsNull() && !info[1].IsUndefined()) lo = toScalar(info[1], op, 1);
    if (!info[2].IsNull() && !info[2].IsUndefined()) hi = toScalar(info[2], op, 2);
    unwrap(info[0], op, 0).clamp_(lo, hi);
    return info.Env().Undefined();
  }),
});

}  // namespace emlab
