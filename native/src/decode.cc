// Fast paths for incremental decoding (one new position per row, a handful of rows):
// decodeLinear(x [..., in], weight [out, in], bias|null) = linear(x, weight, bias). With at most 64 rows,
// f32 on an AVX2 CPU and no gradient needed it is skinnyLinear (skinny-gemm.cc), on both libtorch
// versions. Otherwise, on libtorch 2.x, it is computed as (weight @ x^T)^T when x has few rows and the
// weight many. On pip libtorch 2.x (MKL) this product
// with the weight as the left, untransposed operand ran 1.4-2.3x faster than linear's x @ weight^T for
// the decode shapes of a Qwen2.5-0.5B model on 2 cores (8 rows; the 151936-row lm_head most).
// The result equals linear up to float summation order (bit-identical at 32 rows in that test).
// Elsewhere (libtorch 1.13, other devices/dtypes, many rows, narrow weights) it is plain linear.
//
// sampleCategorical(scores [..., vocab]) = one draw per row from softmax(scores) by inverse transform
// sampling: one uniform u per row from libtorch's default generator (so manualSeed makes it
// repeatable), then the first index whose running sum of exp(score - max), accumulated in double,
// exceeds u * (the whole sum), found block by block (sums of 1024 entries, then a scan inside the one
// block that holds it). The same distribution as softmax + multinomial, whose one-sample path
// draws an exponential variate for EVERY vocabulary entry (a log and a random number each: ~200 ms per
// decode step at 32 rows x 151936 on 2 cores); this draws one number per row. CPU only; elsewhere it
// is softmax + multinomial.
#include "common.h"
#include "skinny-gemm.h"

#include <algorithm>
#include <cmath>
#include <torch/version.h>

namespace emlab {
namespace {

constexpr int64_t kMaxRows = 64;
constexpr int64_t kMinOutFeatures = 512;
constexpr int64_t kMinChunkedRows = 17;
constexpr int64_t kMinChunkedOutFeatures = 16384;
constexpr int64_t kChunkRows = 4096;
constexpr int64_t kSampleBlock = 1024;  // vocabulary entries per partial sum in sampleCategorical

at::Tensor decodeLinear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  at::Tensor skinny;
  if (skinnyLinear(x, weight, bias, skinny)) return skinny;
#if TORCH_VERSION_MAJOR >= 2
  const int64_t in = weight.dim() == 2 ? weight.size(1) : -1;
  const bool eligible = x.dim() >= 1 && in > 0 && x.size(-1) == in && x.device().is_cpu() && weight.device().is_cpu() &&
                        x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                        (!bias.defined() || (bias.scalar_type() == at::kFloat && bias.dim() == 1 && bias.device().is_cpu())) &&
                        weight.size(0) >= kMinOutFeatures && x.numel() / in <= kMaxRows && x.numel() > 0;
  if (eligible) {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(0);
    const at::Tensor rows = x.reshape({-1, in});
    const int64_t count = rows.size(0);
    const int64_t out = weight.size(0);
    if (count >= kMinChunkedRows && out >= kMinChunkedOutFeatures) {
      // A very tall weight (the lm_head) with a few dozen rows: the product block by block of
      // kChunkRows weight rows, each written into its slice of the [out, rows] result, ran 1.7x faster
      // than one product (MKL, 32 rows x 151936 x 896 on 2 cores); with 8 rows one product was faster.
      at::Tensor transposed = at::empty({out, count}, rows.options());
      const at::Tensor columns = rows.t();
      for (int64_t start = 0; start < out; start += kChunkRows) {
        const int64_t length = std::min(kChunkRows, out - start);
        at::Tensor slice = transposed.narrow(0, start, length);
        const at::Tensor block = weight.narrow(0, start, length);
        if (bias.defined())
          at::addmm_out(slice, bias.narrow(0, start, length).unsqueeze(1), block, columns);
        else
          at::mm_out(slice, block, columns);
      }
      return transposed.t().contiguous().view(sizes);
    }
    const at::Tensor transposed = bias.defined() ? at::addmm(bias.unsqueeze(1), weight, rows.t()) : at::mm(weight, rows.t());
    return transposed.t().contiguous().view(sizes);
  }
#endif
  return at::linear(x, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt);
}

at::Tensor sampleCategorical(const at::Tensor& scores) {
  TORCH_CHECK_VALUE(scores.dim() >= 1 && scores.size(-1) > 0 && scores.is_floating_point(),
                    "sampleCategorical expects floating-point scores [..., vocab] with vocab > 0, got ", scores.scalar_type(), " ",
                    scores.sizes());
  const int64_t vocab = scores.size(-1);
  const auto batchShape = scores.sizes().slice(0, scores.dim() - 1).vec();
  if (!scores.device().is_cpu()) {
    return at::multinomial(at::softmax(scores.to(at::kFloat).reshape({-1, vocab}), -1), 1).view(batchShape);
  }
  const at::Tensor rows = scores.to(at::kFloat).reshape({-1, vocab}).contiguous();
  const int64_t n = rows.size(0);
  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  if (n == 0) return out.view(batchShape);
  const at::Tensor maxima = at::amax(rows, {1}, true);
  const float* maximum = maxima.data_ptr<float>();
  for (int64_t r = 0; r < n; r++) {
    TORCH_CHECK_VALUE(!std::isnan(maximum[r]) && maximum[r] != INFINITY, "sampleCategorical: row ", r,
                      " of the scores contains NaN or +inf");
    TORCH_CHECK_VALUE(maximum[r] != -INFINITY, "sampleCategorical: every score of row ", r,
                      " is -inf (no token has positive probability)");
  }
  const at::Tensor weights = at::sub(rows, maxima).exp_();  // in [0, 1], 1 at the maximum
  const at::Tensor uniforms = at::rand({n}, at::TensorOptions().dtype(at::kDouble));
  const float* w = weights.data_ptr<float>();
  const double* u = uniforms.data_ptr<double>();
  int64_t* chosen = out.data_ptr<int64_t>();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> blockSums((vocab + kSampleBlock - 1) / kSampleBlock);
    for (int64_t r = begin; r < end; r++) {
      const float* row = w + r * vocab;
      // Block sums (four interleaved partial sums in double per block, so the adds pipeline), then the
      // total as their running sum; the block where that running sum first exceeds u * total holds the
      // draw, found by a scan in entry order from the sum of the blocks before it.
      for (size_t b = 0; b < blockSums.size(); b++) {
        const int64_t start = static_cast<int64_t>(b) * kSampleBlock;
        const int64_t stop = std::min(vocab, start + kSampleBlock);
        double partial[4] = {0, 0, 0, 0};
        int64_t i = start;
        for (; i + 4 <= stop; i += 4)
          for (int l = 0; l < 4; l++) partial[l] += row[i + l];
        for (; i < stop; i++) partial[0] += row[i];
        blockSums[b] = (partial[0] + partial[1]) + (partial[2] + partial[3]);
      }
      double total = 0;
      for (double sum : blockSums) total += sum;
      // u < 1 and total > 0 (the maximum's weight is 1), so some block takes the running sum past target.
      const double target = u[r] * total;
      double before = 0;
      size_t block = 0;
      while (block + 1 < blockSums.size() && before + blockSums[block] <= target) before += blockSums[block++];
      const int64_t start = static_cast<int64_t>(block) * kSampleBlock;
      const int64_t stop = std::min(vocab, start + kSampleBlock);
      // Zero weights are never chosen. If rounding (the scan adds in another order than the block sum)
      // keeps the scan at or below target, the block's last positive entry is the draw.
      double running = before;
      int64_t pick = -1;
      for (int64_t i = start; i < stop; i++) {
        if (!(row[i] > 0)) continue;
        running += row[i];
        pick = i;
        if (running > target) break;
      }
      chosen[r] = pick;
    }
  });
  return out.view(batchShape);
}

}  // namespace

static const OpTable decodeOps("decode", {
  // decodeLinear(x, weight [out, in], bias|null): linear for decode steps (see above).
  EMLAB_OP("decodeLinear", {
    return wrap(info.Env(), decodeLinear(unwrap(info[0], op, 0), unwrap(info[1], op, 1), unwrapOptional(info[2], op, 2)));
  }),
  // sampleCategorical(scores [..., vocab]) -> int64 [...]: one draw per row from softmax(scores) (see above).
  EMLAB_OP("sampleCategorical", { return wrap(info.Env(), sampleCategorical(unwrap(info[0], op, 0))); }),
});

}  // namespace emlab
