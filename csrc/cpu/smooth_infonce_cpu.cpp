// Fused Smooth-InfoNCE on the CPU: the op entry points of sim_kernels::smooth_infonce_fwd /
// smooth_infonce_value_and_grad (schemas: csrc/ops.cpp). The kernel's parts, one job per file:
//   csrc/checks.h          argument checks shared with the CUDA kernel (shapes, dtypes, messages)
//   cpu/cpu_checks.h       the CPU's own: dispatcher-guaranteed devices asserted, the index-range scan
//   cpu/simd.h             per-anchor vector primitives (dot_rows, lse_terms, weighted_rows, scatter_rows), AVX2+FMA or baseline at run time
//   cpu/workspace.h        tile sizing and the per-thread buffer cache
//   cpu/fused_pass.h       the fused forward(+backward) pass over row tiles (GEMMs, the grad_targets scatter) and its
//                          gradient derivation
//   cpu/anchor_rows.h      its per-anchor step: scores, log-sum-exp, loss, hit, softmax weights and dP
//   cpu/kl_rows.h          its KL term per frame and the KL gradients
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "cpu/fused_pass.h"
#include "smooth_infonce.h"

namespace sim {
namespace cpu {
namespace {

// ---- op entry points -----------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor, at::Tensor> smooth_infonce_fwd_cpu(
    const at::Tensor& context, const at::Tensor& targets, const std::optional<at::Tensor>& weight,
    const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu, const std::optional<at::Tensor>& logvar,
    int64_t t_begin, int64_t t_end, bool common_window, int64_t first_step) {
  const Sizes s = check_inputs(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window, first_step);
  Outputs out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, context.scalar_type(), "smooth_infonce_fwd_cpu", [&] {
    fused_pass<scalar_t, at::opmath_type<scalar_t>>(s, context, targets, weight, neg_idx, mu, logvar, nullptr,
                                                    std::nullopt, out);
  });
  return {out.loss, out.correct, out.kl};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
smooth_infonce_value_and_grad_cpu(const at::Tensor& context, const at::Tensor& targets,
                            const std::optional<at::Tensor>& weight, const at::Tensor& neg_idx,
                            const std::optional<at::Tensor>& mu, const std::optional<at::Tensor>& logvar,
                            int64_t t_begin, int64_t t_end, const at::Tensor& loss_weight,
                            const std::optional<at::Tensor>& kl_weight, bool common_window, int64_t first_step) {
  const Sizes s = check_inputs(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window, first_step);
  check_weights(s, context, loss_weight, kl_weight);
  Outputs out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, context.scalar_type(), "smooth_infonce_value_and_grad_cpu", [&] {
    fused_pass<scalar_t, at::opmath_type<scalar_t>>(s, context, targets, weight, neg_idx, mu, logvar, &loss_weight,
                                                    kl_weight, out);
  });
  at::Tensor value = at::scalar_tensor(out.value, out.loss.options());  // the accumulation dtype
  return {value, out.loss, out.correct, out.kl, out.grad_context, out.grad_targets, out.grad_weight,
          out.grad_mu, out.grad_logvar};
}

}  // namespace

TORCH_LIBRARY_IMPL(sim_kernels, CPU, m) {
  m.impl("smooth_infonce_fwd", &smooth_infonce_fwd_cpu);
  m.impl("smooth_infonce_value_and_grad", &smooth_infonce_value_and_grad_cpu);
}

}  // namespace cpu
}  // namespace sim
