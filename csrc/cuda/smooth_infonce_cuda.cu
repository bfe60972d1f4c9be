// Fused CUDA kernel of sim_kernels::smooth_infonce_fwd / smooth_infonce_value_and_grad (and the
// _shared_math_selftest hook, built with SIM_SELFTEST_OPS=1 only). Semantics: csrc/ops.cpp; oracle: sim_kernels/reference.py.
//
// Per tile of rt anchor rows (smooth_infonce_driver.h, all on the current CUDA stream):
//   1. P = C_tile W_cat^T                (rt, K*Cz)   at::mm -> cuBLAS, fp32 (fp64 for fp64 inputs)
//   2. anchor_kernel                     one warp per (row, step): N+1 gathered dot products, online
//                                        log-sum-exp, loss, correct; with gradients also the softmax
//                                        coefficients and dP (derivation: smooth_infonce_rows.cuh)
//   3. grad_context[tile] = dP W_cat;  grad_W_cat += dP^T C_tile      at::mm / addmm_ -> cuBLAS
//   4. at::sort(rows, stable) + target_segment_kernel: grad_targets without atomics
// and once: kl_kernel (one warp per frame) for the KL and its gradients. Before all of it, the
// used neg_idx values are range-checked with one host sync (see check_index_values).
//
// Launch configuration: 256 threads (8 warps) per block, one warp per work item, grid =
// ceil(items / 8) blocks; items = rt*K (anchor_kernel), rt*K*(N+1) (target_segment_kernel),
// B*T (kl_kernel); the selftest kernel uses one thread per row. No shared memory (0 bytes static,
// 0 dynamic): the reductions are warp shuffles, the per-item scratch is global and L1-resident.
// Register budget, from `nvcc -Xptxas -v` (CUDA 13.0, -O3, sm_80 | sm_90; see docs/cuda.md for all):
//   anchor_kernel          40-48 registers (48 for every grad variant and on sm_90), 0 B stack, no spills
//   target_segment_kernel  38 (float) / 44 (double) registers, 0 B stack, no spills
//   kl_kernel              30-32 (sm_90 double: 42 / 48), selftest_kernel 31-32; 0 B stack, no spills
//   -> at most 48 regs x 256 threads = 12288 registers per block: 5 blocks = 40 warps per SM (62.5 %).
// Determinism: no atomics anywhere; fixed summation orders; cuBLAS GEMMs are bitwise
// reproducible on the same GPU model and cuBLAS version (its documented guarantee), and
// at::sort(stable=true) is deterministic, so repeated calls give bitwise-identical gradients.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "smooth_infonce_driver.h"
#include "smooth_infonce_rows.cuh"

namespace sim {
namespace cuda {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

// One warp per item; `item` is the same in all 32 lanes, so a warp returns or continues as a whole
// (the full-mask shuffles in the bodies need that).
__device__ __forceinline__ int64_t warp_item() {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
}

// Gradient (full derivation beside rows::anchor_item): with p = softmax(s), lw the anchor's weight,
// d value / d s_j = lw (p_j - [j = 0]) = coef_j;  dP[rk] = sum_j coef_j z_{row_j};
// d value / d z_{row_j} += coef_j P[rk] (target_segment_kernel); grad_context, grad_W from dP by GEMMs.
template <typename scalar_t, typename acc_t, bool kGrad>
__global__ void __launch_bounds__(kThreads) anchor_kernel(rows::AnchorArgs<scalar_t, acc_t> a, int64_t items) {
  const int64_t item = warp_item();
  if (item >= items) return;
  rows::anchor_item<scalar_t, acc_t, kGrad>(a, item, threadIdx.x & 31, 32);
}

template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    target_segment_kernel(const int64_t* sorted, const int64_t* perm, const acc_t* coef, const acc_t* proj,
                          acc_t* grad_targets, int64_t M, int64_t N1, int64_t Cz, int64_t R) {
  const int64_t item = warp_item();
  if (item >= M) return;
  rows::target_segment<acc_t>(sorted, perm, coef, proj, grad_targets, M, N1, Cz, R, item, threadIdx.x & 31, 32);
}

template <typename scalar_t, typename acc_t, bool kGrad>
__global__ void __launch_bounds__(kThreads)
    kl_kernel(const scalar_t* mu, const scalar_t* logvar, const acc_t* kl_weight, acc_t* kl, scalar_t* grad_mu,
              scalar_t* grad_logvar, int64_t Cz, int64_t R) {
  const int64_t item = warp_item();
  if (item >= R) return;
  rows::kl_item<scalar_t, acc_t, kGrad>(mu, logvar, kl_weight, kl, grad_mu, grad_logvar, Cz, item, threadIdx.x & 31, 32);
}

#ifdef SIM_SELFTEST_OPS
template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    selftest_kernel(const scalar_t* scores, const scalar_t* mu, const scalar_t* logvar, acc_t* lse, acc_t* kl,
                    int64_t M, int64_t C, int64_t R) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= R) return;
  rows::selftest_item<scalar_t, acc_t>(scores, mu, logvar, lse, kl, M, C, r);
}
#endif  // SIM_SELFTEST_OPS

inline unsigned blocks_for_warps(int64_t items) {
  const int64_t blocks = (items + kWarpsPerBlock - 1) / kWarpsPerBlock;
  TORCH_CHECK(blocks <= 0x7fffffff, "smooth_infonce (CUDA): too many work items for one launch: ", items);
  return static_cast<unsigned>(blocks);
}

// The Launcher of smooth_infonce_driver.h for CUDA: every launch goes to the current stream.
struct Launcher {
  template <typename scalar_t, typename acc_t, bool kGrad>
  static void anchors(const rows::AnchorArgs<scalar_t, acc_t>& a, int64_t items) {
    if (items == 0) return;
    anchor_kernel<scalar_t, acc_t, kGrad>
        <<<blocks_for_warps(items), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(a, items);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename acc_t>
  static void target_segments(const int64_t* sorted, const int64_t* perm, const acc_t* coef, const acc_t* proj,
                              acc_t* grad_targets, int64_t M, int64_t N1, int64_t Cz, int64_t R) {
    if (M == 0) return;
    target_segment_kernel<acc_t><<<blocks_for_warps(M), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        sorted, perm, coef, proj, grad_targets, M, N1, Cz, R);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename scalar_t, typename acc_t, bool kGrad>
  static void kl(const scalar_t* mu, const scalar_t* logvar, const acc_t* kl_weight, acc_t* kl, scalar_t* grad_mu,
                 scalar_t* grad_logvar, int64_t Cz, int64_t R) {
    if (R == 0) return;
    kl_kernel<scalar_t, acc_t, kGrad><<<blocks_for_warps(R), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        mu, logvar, kl_weight, kl, grad_mu, grad_logvar, Cz, R);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> smooth_infonce_fwd(const at::Tensor& context, const at::Tensor& targets,
                                                                  const std::optional<at::Tensor>& weight,
                                                                  const at::Tensor& neg_idx,
                                                                  const std::optional<at::Tensor>& mu,
                                                                  const std::optional<at::Tensor>& logvar,
                                                                  int64_t t_begin, int64_t t_end,
                                                                  bool common_window, int64_t first_step) {
  const c10::cuda::CUDAGuard guard(context.device());
  return driver::fwd<Launcher>(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window,
                               first_step);
}

driver::ValueAndGradOut smooth_infonce_value_and_grad(const at::Tensor& context, const at::Tensor& targets,
                                            const std::optional<at::Tensor>& weight, const at::Tensor& neg_idx,
                                            const std::optional<at::Tensor>& mu,
                                            const std::optional<at::Tensor>& logvar, int64_t t_begin, int64_t t_end,
                                            const at::Tensor& loss_weight, const std::optional<at::Tensor>& kl_weight,
                                            bool common_window, int64_t first_step) {
  const c10::cuda::CUDAGuard guard(context.device());
  return driver::value_and_grad<Launcher>(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, loss_weight,
                                    kl_weight, common_window, first_step);
}

#ifdef SIM_SELFTEST_OPS
// scores (R, M), mu and logvar (R, C), one floating dtype -> lse (R,), kl (R,) in the accumulation dtype.
std::tuple<at::Tensor, at::Tensor> shared_math_selftest(const at::Tensor& scores, const at::Tensor& mu,
                                                        const at::Tensor& logvar) {
  TORCH_CHECK_VALUE(scores.dim() == 2, "scores must be 2-D (R, M), got shape ", scores.sizes());
  TORCH_CHECK_TYPE(driver::is_float_dtype(scores.scalar_type()),
                   "scores must be float16, bfloat16, float32 or float64, got ", scores.scalar_type());
  TORCH_CHECK_VALUE(mu.dim() == 2 && mu.size(0) == scores.size(0),
                    "mu must have shape (R, C) with R = ", scores.size(0), ", got ", mu.sizes());
  TORCH_CHECK_VALUE(logvar.sizes() == mu.sizes(), "logvar must have the shape of mu ", mu.sizes(), ", got ",
                    logvar.sizes());
  driver::check_same(mu, "mu", scores);
  driver::check_same(logvar, "logvar", scores);
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t R = scores.size(0), M = scores.size(1), C = mu.size(1);
  const auto s = scores.contiguous(), m = mu.contiguous(), lv = logvar.contiguous();
  const auto acc_opts = scores.options().dtype(driver::acc_dtype(scores.scalar_type()));
  auto lse = at::empty({R}, acc_opts), kl = at::empty({R}, acc_opts);
  if (R == 0) return {lse, kl};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "shared_math_selftest", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto blocks = static_cast<unsigned>((R + kThreads - 1) / kThreads);
    selftest_kernel<scalar_t, acc_t><<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        s.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(), lv.data_ptr<scalar_t>(), lse.data_ptr<acc_t>(),
        kl.data_ptr<acc_t>(), M, C, R);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {lse, kl};
}
#endif  // SIM_SELFTEST_OPS

}  // namespace cuda
}  // namespace sim

TORCH_LIBRARY_IMPL(sim_kernels, CUDA, m) {
  m.impl("smooth_infonce_fwd", &sim::cuda::smooth_infonce_fwd);
  m.impl("smooth_infonce_value_and_grad", &sim::cuda::smooth_infonce_value_and_grad);
#ifdef SIM_SELFTEST_OPS
  m.impl("_shared_math_selftest", &sim::cuda::shared_math_selftest);
#endif
}
