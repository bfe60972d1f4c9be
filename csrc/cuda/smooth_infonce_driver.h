// Host side of the CUDA Smooth-InfoNCE kernel: argument checks, row tiling, the GEMMs (at::mm ->
// cuBLAS) and the order of the kernel launches. It is a template over a Launcher so the same code
// drives the CUDA kernels (smooth_infonce_cuda.cu) and, in tests, a CPU emulation of them
// (host_emulation.cpp). A Launcher provides, for the per-warp bodies of smooth_infonce_rows.cuh:
//   template <scalar_t, acc_t, bool kGrad> static void anchors(const AnchorArgs&, int64_t items);
//   template <acc_t> static void target_segments(sorted, perm, coef, proj, grad_targets, M, N1, Cz, R);
//   template <scalar_t, acc_t, bool kGrad> static void kl(mu, logvar, kl_weight, kl, grad_mu, grad_logvar, Cz, R);
//
// Shapes: context (B, T, Cc), targets (B', T, Cz), weight (K, Cz, Cc) or none (the dot product z . c: P = c,
// no GEMM), neg_idx (K, B, T, N) int64 (any
// strides, e.g. a stride-0 expansion over K), mu/logvar (B, T, Cz) or none, loss_weight (K, B, T),
// kl_weight (B, T) or none. R = B*T. Per tile of rt rows the kernel holds P and dP (rt, K*Cz),
// coef and rows (rt*K, N+1): never the whole (R, K*Cz) projection.
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <tuple>

#include "checks.h"
#include "smooth_infonce_rows.cuh"

namespace sim {
namespace driver {

// Elements of one tile buffer (P, dP, coef): 4M floats = 16 MB each in fp32.
constexpr int64_t kTileElements = int64_t(1) << 22;

// Checks (shapes, dtypes, devices, messages) are csrc/checks.h's, shared with the CPU kernel.
using Dims = checks::Sizes;
using checks::acc_dtype;
using checks::check_inputs;
using checks::check_same;
using checks::check_weights;
using checks::is_float_dtype;

// Used entries of neg_idx (t_begin <= t < t_end - k, all n) must lie in [0, Rz) (the target rows). A few elementwise
// ops and one any() reduction over the (K, B, T, N) view, then ONE host sync to raise the error
// before any kernel reads a row: the price of a clear error instead of an illegal memory access.
inline void check_index_values(const Dims& d, const at::Tensor& neg_idx, int64_t t_begin, int64_t t_end,
                               bool common_window) {
  if (neg_idx.numel() == 0) return;
  const auto opts = neg_idx.options();
  const auto t = at::arange(d.T, opts).view({1, d.T});
  // The last valid anchor of step k is t_end - d_k - 1, or t_end - d_K - 1 for every k with a common window.
  const auto step = common_window ? at::full({d.K, 1}, d.offset(d.K), opts)
                                  : at::arange(d.first, d.first + d.K, opts).view({d.K, 1});
  const auto used = ((t >= t_begin) & (t < (t_end - step))).view({d.K, 1, d.T, 1});  // (K, 1, T, 1)
  const auto bad = used & ((neg_idx < -1) | (neg_idx >= d.Rz));  // -1: no negative (excluded)
  if (!bad.any().item<bool>()) return;  // the one sync
  const auto where = bad.nonzero().select(0, 0).cpu();  // error path only
  const auto k = where[0].item<int64_t>(), b = where[1].item<int64_t>(), tt = where[2].item<int64_t>(),
             n = where[3].item<int64_t>();
  checks::index_error(d, neg_idx[k][b][tt][n].item<int64_t>(), k, b, tt, n);
}

// Rows per tile: every tile buffer stays under kTileElements; SIM_CUDA_TILE_ROWS (read per call)
// overrides it so tests can force many tiles on small inputs.
inline int64_t tile_rows(const Dims& d) {
  const int64_t per_row = std::max<int64_t>(1, d.K * std::max(d.Cz, d.N + 1));
  int64_t rt = std::max<int64_t>(1, kTileElements / per_row);
  if (const char* env = std::getenv("SIM_CUDA_TILE_ROWS")) {
    const long long v = std::atoll(env);
    if (v > 0) rt = v;
  }
  return std::max<int64_t>(1, std::min(rt, d.R));
}

struct Result {
  at::Tensor value, loss, correct, kl, grad_context, grad_targets, grad_weight, grad_mu, grad_logvar;
};

template <class L, bool kGrad>
Result run(const at::Tensor& context_in, const at::Tensor& targets_in, const std::optional<at::Tensor>& weight_in,
           const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu_in, const std::optional<at::Tensor>& logvar_in,
           int64_t t_begin, int64_t t_end, const std::optional<at::Tensor>& loss_weight_in,
           const std::optional<at::Tensor>& kl_weight_in, bool common_window, int64_t first_step) {
  const at::NoGradGuard no_grad;  // the op is its own backward; matters only when called outside the dispatcher
  const Dims d = check_inputs(context_in, targets_in, weight_in, neg_idx, mu_in, logvar_in, t_begin, t_end,
                              common_window, first_step);
  if constexpr (kGrad) check_weights(d, context_in, *loss_weight_in, kl_weight_in);
  check_index_values(d, neg_idx, t_begin, t_end, common_window);

  const auto dtype = context_in.scalar_type();
  const auto acc = acc_dtype(dtype);
  const auto acc_opts = context_in.options().dtype(acc);
  const auto context = context_in.contiguous().view({d.R, d.Cc}).to(acc);  // C (R, Cc), no copy for fp32
  const auto targets = targets_in.contiguous();
  // W_cat (K*Cz, Cc); none for the dot product
  const auto w_cat = d.has_weight ? weight_in->contiguous().view({d.K * d.Cz, d.Cc}).to(acc) : at::Tensor();
  const int64_t N1 = d.N + 1;

  Result out;
  out.loss = at::empty({d.K, d.B, d.T}, acc_opts);
  out.correct = at::empty({d.K, d.B, d.T}, context_in.options().dtype(at::kBool));
  at::Tensor loss_weight, grad_context, grad_targets, grad_w;
  if (kGrad) {
    loss_weight = loss_weight_in->to(acc).contiguous();
    grad_context = at::empty({d.R, d.Cc}, acc_opts);  // every row is written by one tile's GEMM
    grad_targets = at::zeros({d.Rz, d.Cz}, acc_opts);  // (B'*T, Cz): extra rows get their negatives' share
    if (d.has_weight) grad_w = at::zeros({d.K * d.Cz, d.Cc}, acc_opts);
  }

  const int64_t rt_max = tile_rows(d);
  const auto proj_buf = at::empty({rt_max, d.K * d.Cz}, acc_opts);
  at::Tensor dproj_buf, coef_buf, rows_buf;
  if (kGrad) {
    dproj_buf = at::empty({rt_max, d.K * d.Cz}, acc_opts);
    coef_buf = at::empty({rt_max * d.K * N1}, acc_opts);
    rows_buf = at::empty({rt_max * d.K * N1}, neg_idx.options());
  }

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "smooth_infonce_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    for (int64_t r0 = 0; r0 < d.R; r0 += rt_max) {
      const int64_t rt = std::min(rt_max, d.R - r0);
      const auto c_tile = context.narrow(0, r0, rt);       // (rt, Cc)
      auto proj = proj_buf.narrow(0, 0, rt);                // P = C_tile W_cat^T: (rt, K*Cz)
      if (d.has_weight) {
        at::mm_out(proj, c_tile, w_cat.t());
      } else {  // the dot product: P[rk] = c[r] for every step (a copy, no GEMM)
        proj.view({rt, d.K, d.Cz}).copy_(c_tile.unsqueeze(1).expand({rt, d.K, d.Cz}));
      }
      rows::AnchorArgs<scalar_t, acc_t> a{};
      a.targets = targets.data_ptr<scalar_t>();
      a.proj = proj.data_ptr<acc_t>();
      a.neg_idx = neg_idx.data_ptr<int64_t>();
      a.s_k = neg_idx.stride(0), a.s_b = neg_idx.stride(1), a.s_t = neg_idx.stride(2), a.s_n = neg_idx.stride(3);
      a.loss = out.loss.data_ptr<acc_t>();
      a.correct = out.correct.data_ptr<bool>();
      a.R = d.R, a.T = d.T, a.K = d.K, a.N = d.N, a.Cz = d.Cz, a.r0 = r0, a.t_begin = t_begin, a.t_end = t_end;
      a.common = common_window;
      a.Rz = d.Rz;
      a.first = d.first;
      if (kGrad) {
        auto dproj = dproj_buf.narrow(0, 0, rt);
        a.loss_weight = loss_weight.data_ptr<acc_t>();
        a.coef = coef_buf.data_ptr<acc_t>();
        a.rows = rows_buf.data_ptr<int64_t>();
        a.dproj = dproj.data_ptr<acc_t>();
        L::template anchors<scalar_t, acc_t, true>(a, rt * d.K);
        // grad_context rows of this tile = dP W_cat; grad_W_cat += dP^T C_tile (tile order is fixed).
        auto grad_context_tile = grad_context.narrow(0, r0, rt);
        if (d.has_weight) {
          at::mm_out(grad_context_tile, dproj, w_cat);
          grad_w.addmm_(dproj.t(), c_tile);
        } else {  // no weight: grad_context rows = sum_k dP[rk]
          at::sum_out(grad_context_tile, dproj.view({rt, d.K, d.Cz}), {1});
        }
        // grad_targets: stable sort of the row ids, then one head item per run of equal ids.
        const int64_t M = rt * d.K * N1;
        const auto [sorted, perm] = at::sort(rows_buf.narrow(0, 0, M), /*stable=*/true, /*dim=*/0, /*descending=*/false);
        L::template target_segments<acc_t>(sorted.data_ptr<int64_t>(), perm.data_ptr<int64_t>(), a.coef, a.proj,
                                           grad_targets.data_ptr<acc_t>(), M, N1, d.Cz, d.Rz);
      } else {
        L::template anchors<scalar_t, acc_t, false>(a, rt * d.K);
      }
    }
    if (mu_in.has_value()) {
      const auto mu = mu_in->contiguous(), logvar = logvar_in->contiguous();
      out.kl = at::empty({d.B, d.T}, acc_opts);
      at::Tensor kl_weight;
      if (kGrad) {
        out.grad_mu = at::empty_like(mu);
        out.grad_logvar = at::empty_like(logvar);
        if (kl_weight_in.has_value()) kl_weight = kl_weight_in->to(acc).contiguous();
      }
      L::template kl<scalar_t, acc_t, kGrad>(
          mu.data_ptr<scalar_t>(), logvar.data_ptr<scalar_t>(),
          kl_weight.defined() ? kl_weight.data_ptr<acc_t>() : nullptr, out.kl.data_ptr<acc_t>(),
          kGrad ? out.grad_mu.data_ptr<scalar_t>() : nullptr, kGrad ? out.grad_logvar.data_ptr<scalar_t>() : nullptr,
          d.Cz, d.R);
    }
  });

  if (!mu_in.has_value()) {
    out.kl = at::empty({0}, acc_opts);
    if (kGrad) {
      out.grad_mu = at::empty({0}, context_in.options());
      out.grad_logvar = at::empty({0}, context_in.options());
    }
  }
  if (kGrad) {
    out.value = (loss_weight * out.loss).sum();
    if (mu_in.has_value() && kl_weight_in.has_value()) out.value = out.value + (kl_weight_in->to(acc) * out.kl).sum();
    out.grad_context = grad_context.view({d.B, d.T, d.Cc}).to(dtype);
    out.grad_targets = grad_targets.view(targets_in.sizes()).to(dtype);
    out.grad_weight = d.has_weight ? grad_w.view({d.K, d.Cz, d.Cc}).to(dtype) : at::empty({0}, context_in.options());
  }
  return out;
}

template <class L>
std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd(const at::Tensor& context, const at::Tensor& targets,
                                                   const std::optional<at::Tensor>& weight,
                                                   const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu,
                                                   const std::optional<at::Tensor>& logvar, int64_t t_begin,
                                                   int64_t t_end, bool common_window, int64_t first_step) {
  Result r = run<L, false>(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, std::nullopt, std::nullopt,
                           common_window, first_step);
  return {r.loss, r.correct, r.kl};
}

using ValueAndGradOut = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
                               at::Tensor, at::Tensor>;

template <class L>
ValueAndGradOut value_and_grad(const at::Tensor& context, const at::Tensor& targets,
                     const std::optional<at::Tensor>& weight, const at::Tensor& neg_idx,
                     const std::optional<at::Tensor>& mu, const std::optional<at::Tensor>& logvar, int64_t t_begin,
                     int64_t t_end, const at::Tensor& loss_weight, const std::optional<at::Tensor>& kl_weight,
                     bool common_window, int64_t first_step) {
  Result r = run<L, true>(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, loss_weight, kl_weight,
                          common_window, first_step);
  return {r.value, r.loss, r.correct, r.kl, r.grad_context, r.grad_targets, r.grad_weight, r.grad_mu, r.grad_logvar};
}

}  // namespace driver
}  // namespace sim
