// skinnyLinear (skinny-gemm.cc): linear(x, weight, bias) for at most kSkinnyMaxRows rows of x, f32 on
// an AVX2+FMA x86-64 CPU, without an autograd graph. Writes `result` ([..., out]) and returns true, or
// returns false and leaves `result` alone where it does not apply (the caller then uses libtorch).
#pragma once

#include "common.h"

namespace emlab {

constexpr int64_t kSkinnyMaxRows = 64;

bool skinnyLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& result);

}  // namespace emlab
