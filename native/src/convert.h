// Argument conversion between JS values and libtorch types; each converter throws a TypeError
// naming the op and the argument index (see errors.h).
#pragma once

#include <napi.h>
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace emlab {

at::ScalarType toDtype(const Napi::Value& value, const char* op, int index);
int dtypeCode(at::ScalarType type);
c10::Device toDevice(const Napi::Value& value, const char* op, int index);
std::string deviceString(const c10::Device& device);
std::vector<std::int64_t> toIntList(const Napi::Value& value, const char* op, int index);
c10::optional<std::vector<std::int64_t>> toOptionalIntList(const Napi::Value& value, const char* op, int index);
std::int64_t toInt(const Napi::Value& value, const char* op, int index);
c10::optional<std::int64_t> toOptionalInt(const Napi::Value& value, const char* op, int index);
double toDouble(const Napi::Value& value, const char* op, int index);
c10::optional<double> toOptionalDouble(const Napi::Value& value, const char* op, int index);
bool toBool(const Napi::Value& value, const char* op, int index);
std::string toString(const Napi::Value& value, const char* op, int index);
// JS number (integral -> int64 scalar, else double), bigint or boolean.
at::Scalar toScalar(const Napi::Value& value, const char* op, int index);
Napi::Value intListToJs(Napi::Env env, c10::IntArrayRef values);

}  // namespace emlab
