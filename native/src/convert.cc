// Argument conversion between JS values and libtorch types (dtype codes, devices, integers, lists,
// scalars). Each converter throws a TypeError naming the op and the argument index.
#include "common.h"

#include <algorithm>
#include <cmath>

namespace emlab {

// Dtype codes shared with src/tensor/dtype.ts (the order of kDtypes is the code).
static const at::ScalarType kDtypes[] = {at::kFloat, at::kHalf,  at::kBFloat16, at::kDouble, at::kLong,
                                         at::kInt,   at::kByte,  at::kBool,     at::kChar,   at::kShort};
static constexpr int kDtypeCount = sizeof(kDtypes) / sizeof(kDtypes[0]);

at::ScalarType toDtype(const Napi::Value& value, const char* op, int index) {
  if (!value.IsNumber()) throwType(value.Env(), op, index, "a dtype code");
  int code = value.As<Napi::Number>().Int32Value();
  if (code < 0 || code >= kDtypeCount) throwType(value.Env(), op, index, "a known dtype code");
  return kDtypes[code];
}

int dtypeCode(at::ScalarType type) {
  for (int i = 0; i < kDtypeCount; ++i)
    if (kDtypes[i] == type) return i;
  return -1;
}

c10::Device toDevice(const Napi::Value& value, const char* op, int index) {
  if (!value.IsString()) throwType(value.Env(), op, index, "a device string such as \"cpu\" or \"cuda:0\"");
  return c10::Device(value.As<Napi::String>().Utf8Value());
}

std::string deviceString(const c10::Device& device) {
  if (device.is_cpu()) return "cpu";
  return device.str().find(':') == std::string::npos ? device.str() + ":" + std::to_string(std::max<int>(0, device.index()))
                                                       : device.str();
}

std::int64_t toInt(const Napi::Value& value, const char* op, int index) {
  double d = 0;
  if (napi_get_value_double(value.Env(), value, &d) == napi_ok) {
    if (std::floor(d) != d || !std::isfinite(d)) throwType(value.Env(), op, index, "an integer");
    // Converting a double outside int64's range is undefined behaviour: refuse it instead.
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) throwType(value.Env(), op, index, "an integer within the int64 range");
    return static_cast<std::int64_t>(d);
  }
  if (value.IsBigInt()) {
    bool lossless = true;
    const std::int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throwType(value.Env(), op, index, "an integer within the int64 range");
    return result;
  }
  throwType(value.Env(), op, index, "an integer");
}

c10::optional<std::int64_t> toOptionalInt(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return c10::nullopt;
  return toInt(value, op, index);
}

std::vector<std::int64_t> toIntList(const Napi::Value& value, const char* op, int index) {
  if (!value.IsArray()) throwType(value.Env(), op, index, "an array of integers");
  auto array = value.As<Napi::Array>();
  std::vector<std::int64_t> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) out[i] = toInt(array.Get(i), op, index);
  return out;
}

c10::optional<std::vector<std::int64_t>> toOptionalIntList(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return c10::nullopt;
  return toIntList(value, op, index);
}

double toDouble(const Napi::Value& value, const char* op, int index) {
  if (!value.IsNumber()) throwType(value.Env(), op, index, "a number");
  return value.As<Napi::Number>().DoubleValue();
}

c10::optional<double> toOptionalDouble(const Napi::Value& value, const char* op, int index) {
  if (value.IsNull() || value.IsUndefined()) return c10::nullopt;
  return toDouble(value, op, index);
}

bool toBool(const Napi::Value& value, const char* op, int index) {
  bool result = false;
  if (napi_get_value_bool(value.Env(), value, &result) != napi_ok) throwType(value.Env(), op, index, "a boolean");
  return result;
}

std::string toString(const Napi::Value& value, const char* op, int index) {
  if (!value.IsString()) throwType(value.Env(), op, index, "a string");
  return value.As<Napi::String>().Utf8Value();
}

at::Scalar toScalar(const Napi::Value& value, const char* op, int index) {
  if (value.IsNumber()) {
    double d = value.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9007199254740992.0)
      return at::Scalar(static_cast<int64_t>(d));
    return at::Scalar(d);
  }
  if (value.IsBoolean()) return at::Scalar(value.As<Napi::Boolean>().Value());
  if (value.IsBigInt()) {
    bool lossless = true;
    const std::int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throwType(value.Env(), op, index, "a bigint within the int64 range");
    return at::Scalar(result);
  }
  throwType(value.Env(), op, index, "a number, bigint or boolean");
}

Napi::Value intListToJs(Napi::Env env, c10::IntArrayRef values) {
  auto array = Napi::Array::New(env, values.size());
  for (std::size_t i = 0; i < values.size(); ++i) array.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(values[i])));
  return array;
}

}  // namespace emlab
