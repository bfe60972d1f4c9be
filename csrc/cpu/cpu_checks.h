// Argument checks of the CPU kernel: csrc/checks.h (shared with CUDA) plus the index-range scan.
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (the CPU kernel is one translation unit, so the
// split into files changes no code generation); hence the unnamed namespace.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "checks.h"

namespace sim {
namespace cpu {
namespace {

// ---- argument checks ----------------------------------------------------------------------

// Shapes, dtypes and the index-range message are csrc/checks.h's, shared with the CUDA kernel.
using checks::Sizes;

Sizes check_inputs(const at::Tensor& context, const at::Tensor& targets, const std::optional<at::Tensor>& weight,
                   const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu,
                   const std::optional<at::Tensor>& logvar, int64_t t_begin, int64_t t_end, bool common_window,
                   int64_t first_step) {
  // The dispatcher picks this kernel only when every input is a CPU tensor (CUDA outranks CPU).
  TORCH_INTERNAL_ASSERT(context.device().is_cpu() && targets.device().is_cpu() &&
                        (!weight.has_value() || weight->device().is_cpu()) && neg_idx.device().is_cpu());
  const Sizes s = checks::check_inputs(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window,
                                       first_step);
  // Every index that will be read must lie in [0, B'*T) or be -1 (no negative): checked before any gather.
  auto idx = neg_idx.accessor<int64_t, 4>();
  for (int64_t k = 1; k <= s.K; ++k)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = s.t0; t < s.last(k); ++t)
        for (int64_t n = 0; n < s.N; ++n) {
          const int64_t v = idx[k - 1][b][t][n];
          if (v < -1 || v >= s.Rz) checks::index_error(s, v, k - 1, b, t, n);
        }
  return s;
}

using checks::check_weights;

}  // namespace
}  // namespace cpu
}  // namespace sim
