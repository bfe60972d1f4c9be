// The fused pass of the CPU kernel (sim_kernels::smooth_infonce_fwd / smooth_infonce_value_and_grad).
//
// Shapes: B batch, T time, K steps, N negatives, Cc/Cz channels; rows r = b*T + t of the flattened
// (B*T, C) context and targets; Wcat = weight.view(K*Cz, Cc), so P[r, k] = W_k c_r is the k-th Cz
// block of the row  C[r] @ Wcat^T.
//
// One pass over row tiles of R anchors. Per tile:
//   1. P_tile (R, K*Cz) = C_tile @ Wcat^T                       one BLAS GEMM
//      (without a weight, the dot-product score: P[r, k] = c_r, a copy; no GEMM in 1. and 3.)
//   2. per anchor and step (positive: row r + d_k, d_k = first_step + k - 1; csrc/cpu/anchor_rows.h) (parallel over rows): the positive score and N gathered negative scores
//      s_j = z[rho_j] . P[r, k] in one call (simd.h dot_rows), their max and vectorised exp terms
//      (lse_terms, OnlineLogSumExp's rules), loss = lse - s_0, correct = s_0 > max s_n.
//   With gradients (the value-and-grad op, upstream weights g = loss_weight[k, b, t] known up front):
//   3. dP_tile rows (see derivation; softmax + weighted_rows), then
//      grad_context[tile] = dP_tile @ Wcat                      one GEMM
//      grad_Wcat         += dP_tile^T @ C_tile                  one GEMM, tiles in a fixed order
//   4. grad_targets[rho_j] += alpha_j P[r, k] (scatter_rows), in parallel over channel slices: every
//      element receives its contributions in the fixed (tile, row, k, j) order whatever the thread
//      count, so the result is bitwise reproducible (no atomics, no per-thread partial sums).
// Only the tile buffers (P, dP: R x K*Cz; alpha: R x K x (N+1)) and O(B*T*K) outputs are held:
// neither the whole projection nor the gathered negatives are ever materialised.
//
// Gradient derivation, for one anchor r, step k, upstream weight g:
//   loss = LSE(s) - s_0,   s_j = z[rho_j] . P,   P = W_k c_r,   p = softmax(s)
//   d loss / d s_j   = p_j - [j == 0]                      =>  alpha_j := g (p_j - [j == 0])
//   d / d P          = sum_j alpha_j z[rho_j]              =: dP[r, k]
//   d / d z[rho]    += alpha_j P   for every j with rho_j = rho (the positive may repeat as a negative)
//   d / d c_r        = sum_k W_k^T dP[r, k]                 =  (dP[r] @ Wcat)   (no weight: sum_k dP[r, k])
//   d / d W_k        = sum_r dP[r, k] c_r^T                 =  (dP^T @ C) block k
//   KL: value += kw[b,t] * 1/2 sum_c (mu^2 + e^lv - lv - 1)
//   d / d mu = kw * mu,   d / d lv = kw * 1/2 (e^lv - 1)
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (the CPU kernel is one translation unit, so the
// split into files changes no code generation); hence the unnamed namespace.
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "cpu/anchor_rows.h"
#include "cpu/cpu_checks.h"
#include "cpu/kl_rows.h"
#include "cpu/simd.h"
#include "cpu/workspace.h"
#include "smooth_infonce.h"

namespace sim {
namespace cpu {
namespace {

// ---- the fused pass ------------------------------------------------------------------------

struct Outputs {
  at::Tensor loss, correct, kl;                       // (K,B,T), (K,B,T) bool, (B,T) or (0,)
  at::Tensor grad_context, grad_targets, grad_weight;  // undefined in forward-only mode
  at::Tensor grad_mu, grad_logvar;
  double value = 0.0;
};

// scalar_t is the input dtype, acc_t the accumulation dtype (at::opmath_type: float for float16 and
// bfloat16 inputs, else scalar_t). For 16-bit inputs (kLow):
//   - the three tile GEMMs run on scalar_t operands (at::mm: oneDNN/MKL accumulate in fp32; with
//     AVX-512 BF16 a bf16 GEMM of the paper's projection shape ran 3.2x faster than fp32 here); the
//     projection tile P is rounded to scalar_t by the GEMM;
//   - bfloat16: the gathered dots, dP and the grad_targets scatter read the bf16 rows of the targets
//     and of P in place and widen them in registers (simd.h's uint16_t overloads: fp32 products and sums);
//     float16: the targets are widened to fp32 once (a (B*T, Cz) copy) and P once per tile; either
//     way the log-sum-exp, dP and grad_targets are fp32 (mu, logvar are widened once for the KL);
//   - dP is rounded to scalar_t for the two backward GEMMs; grad_context rows come out of the GEMM in
//     scalar_t; grad_weight sums the tiles' products in fp32; grad_targets accumulates in fp32.
//   The gradients are returned in scalar_t, loss/kl/value in fp32. Errors: within 2x of the reference
//   run in that dtype (tests/sim_kernels/test_native_cpu_half.py).
template <typename scalar_t, typename acc_t>
void fused_pass(const Sizes& s, const at::Tensor& context, const at::Tensor& targets,
                const std::optional<at::Tensor>& weight,
                const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu_in,
                const std::optional<at::Tensor>& lv_in, const at::Tensor* loss_weight,
                const std::optional<at::Tensor>& kl_weight, Outputs& out) {
  const bool grad = loss_weight != nullptr;
  const int64_t B = s.B, T = s.T, Cc = s.Cc, Cz = s.Cz, K = s.K, N = s.N, KCz = K * Cz, BT = B * T;
  constexpr bool kLow = !std::is_same_v<scalar_t, acc_t>;
  const auto opts = context.options();
  const auto acc_opts = opts.dtype(c10::CppTypeToScalarType<acc_t>::value);

  const at::Tensor C = context.contiguous().view({BT, Cc});
  // Row element type of the gathered targets and of P in the per-anchor loops: bf16 inputs are read
  // in place as bf16 bits (widened in registers by simd.h's uint16_t overloads); float16 rows are widened to fp32 once.
  constexpr bool kBF16 = std::is_same_v<scalar_t, at::BFloat16>;
  using row_t = std::conditional_t<kBF16, uint16_t, acc_t>;
  // (Rz, Cz): the anchors' own B*T rows, then any extra rows that serve only as negatives.
  const at::Tensor Z = (kBF16 ? targets.contiguous() : targets.contiguous().to(acc_opts.dtype())).view({s.Rz, Cz});
  const at::Tensor Wcat = s.has_weight ? weight->contiguous().view({KCz, Cc}) : at::Tensor();
  const row_t* z = reinterpret_cast<const row_t*>(Z.const_data_ptr());
  const auto idx = neg_idx.accessor<int64_t, 4>();

  out.loss = at::zeros({K, B, T}, acc_opts);
  out.correct = at::zeros({K, B, T}, opts.dtype(at::kBool));
  acc_t* loss = out.loss.mutable_data_ptr<acc_t>();
  bool* correct = out.correct.mutable_data_ptr<bool>();

  at::Tensor lw_c, GZ, GW;
  if (grad) {
    lw_c = loss_weight->contiguous();
    // Every context row lies in some tile when the window is the whole sequence; grad_weight is
    // written (not accumulated) by the first tile. Only what may stay unwritten is zeroed.
    const bool full = s.t0 == 0 && s.t1 == T;
    out.grad_context = full ? at::empty({B, T, Cc}, opts) : at::zeros({B, T, Cc}, opts);
    GZ = at::zeros(targets.sizes(), acc_opts);    // (B', T, Cz); kLow: cast to scalar_t at the end
    if (s.has_weight) GW = at::empty({KCz, Cc}, acc_opts);
  }
  const acc_t* lw = grad ? lw_c.const_data_ptr<acc_t>() : nullptr;
  acc_t* gz = grad ? GZ.mutable_data_ptr<acc_t>() : nullptr;
  at::Tensor GC = grad ? out.grad_context.view({BT, Cc}) : at::Tensor();

  // Anchor rows come in segments of consecutive rows: the whole flattened input when the window
  // is the full sequence (the last frame of each sequence is a non-anchor, skipped), else one
  // segment per sequence.
  std::vector<std::pair<int64_t, int64_t>> segments;
  if (s.t0 == 0 && s.t1 == T) {
    segments.emplace_back(0, BT);
  } else {
    // rows past the last anchor of every step are skipped inside (with first_step = 0 that is none)
    for (int64_t b = 0; b < B; ++b) segments.emplace_back(b * T + s.t0, b * T + s.t1 - std::min<int64_t>(s.first, 1));
  }
  int64_t longest = 0;
  for (const auto& seg : segments) longest = std::max(longest, seg.second - seg.first);
  const int64_t R_max = std::max<int64_t>(1, std::min(tile_rows(KCz, sizeof(acc_t)), longest));
  at::Tensor P_buf = kBF16 ? at::Tensor() : tile_workspace(0, R_max, KCz, acc_opts);
  at::Tensor dP_buf = grad ? tile_workspace(1, R_max, KCz, acc_opts) : at::Tensor();
  // kLow: the GEMMs' scalar_t operands/outputs (P rounded by the GEMM, dP rounded for the backward GEMMs).
  at::Tensor P_low = kLow ? tile_workspace(2, R_max, KCz, opts) : at::Tensor();
  at::Tensor dP_low = kLow && grad ? tile_workspace(3, R_max, KCz, opts) : at::Tensor();
  // alpha[i, k, j] and its target row rho[i, k, j]; rho = -1 marks a non-anchor (k invalid at row i).
  std::vector<acc_t> alpha_local;
  std::vector<int64_t> rho_local;
  acc_t* alpha = grad ? tile_list<acc_t>(R_max * K * (N + 1), alpha_local) : nullptr;
  int64_t* rho = grad ? tile_list<int64_t>(R_max * K * (N + 1), rho_local) : nullptr;

  bool first_tile = true;
  for (const auto& seg : segments) {
    for (int64_t r0 = seg.first; r0 < seg.second; r0 += R_max) {
      const int64_t R = std::min(R_max, seg.second - r0);
      at::Tensor C_tile = C.narrow(0, r0, R);
      at::Tensor P = kBF16 ? at::Tensor() : P_buf.narrow(0, 0, R);
      if constexpr (kLow) {
        at::Tensor Pl = P_low.narrow(0, 0, R);
        if (s.has_weight) {
          at::mm_out(Pl, C_tile, Wcat.t());  // scalar_t operands, fp32 accumulation inside the GEMM
        } else {
          Pl.view({R, K, Cz}).copy_(C_tile.unsqueeze(1).expand({R, K, Cz}));  // the dot product: P = c, exactly
        }
        if constexpr (!kBF16) P.copy_(Pl);  // bf16: the loops read Pl itself
      } else if (s.has_weight) {
        at::mm_out(P, C_tile, Wcat.t());  // (R, K*Cz): P[i, k-block] = W_k c_{r0+i}
      } else {
        P.view({R, K, Cz}).copy_(C_tile.unsqueeze(1).expand({R, K, Cz}));  // the dot product: P[i, k-block] = c_{r0+i}
      }
      const row_t* Pp = kBF16 ? reinterpret_cast<const row_t*>(P_low.const_data_ptr())
                              : reinterpret_cast<const row_t*>(P.const_data_ptr());
      acc_t* dPp = grad ? dP_buf.mutable_data_ptr<acc_t>() : nullptr;
      const AnchorRows<acc_t, row_t> rows_args{s, r0, z, Pp, idx, loss, correct, lw, dPp, alpha, rho};
      at::parallel_for(0, R, 4, [&](int64_t i_begin, int64_t i_end) { anchor_rows(rows_args, i_begin, i_end); });

      if (!grad) continue;
      at::Tensor dP = dP_buf.narrow(0, 0, R);
      at::Tensor GC_tile = GC.narrow(0, r0, R);
      if (!s.has_weight) {
        GC_tile.copy_(dP.view({R, K, Cz}).sum(1));  // grad_context rows = sum_k dP[., k] (fp32 sum, then rounded)
      } else if constexpr (kLow) {
        at::Tensor dPl = dP_low.narrow(0, 0, R);
        dPl.copy_(dP);                    // dP rounded to scalar_t for the GEMMs
        at::mm_out(GC_tile, dPl, Wcat);   // grad_context rows = dP @ Wcat (scalar_t out)
        at::Tensor gw_tile = at::mm(dPl.t(), C_tile);  // dP^T @ C_tile, fp32 accumulation inside
        if (first_tile) GW.copy_(gw_tile); else GW.add_(gw_tile);  // tiles summed in fp32, in order
      } else {
        at::mm_out(GC_tile, dP, Wcat);  // grad_context rows = dP @ Wcat
        if (first_tile) {
          at::mm_out(GW, dP.t(), C_tile);  // grad_Wcat = dP^T @ C_tile
        } else {
          GW.addmm_(dP.t(), C_tile);  // grad_Wcat += dP^T @ C_tile, tiles in order
        }
      }
      first_tile = false;
      // grad_targets: each thread owns a channel slice (16 channels, one cache line, at least) and
      // walks all (i, k, j) in order.
      at::parallel_for(0, Cz, 16, [&](int64_t c_begin, int64_t c_end) {
        const int64_t w = c_end - c_begin;
        for (int64_t i = 0; i < R; ++i)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t a = (i * K + k) * (N + 1);
            if (rho[a] < 0) continue;
            scatter_rows(alpha + a, rho + a, N + 1, Pp + i * KCz + k * Cz + c_begin, gz + c_begin, Cz, w);
          }
      });
    }
  }

  if (grad) {
    out.grad_targets = kLow ? GZ.to(opts.dtype()) : GZ;
    out.grad_weight = s.has_weight ? (kLow ? GW.to(opts.dtype()) : GW).view({K, Cz, Cc}) : at::empty({0}, opts);
  }

  // Sum of loss_weight * loss, in double and in a fixed order.
  if (grad) {
    double v = 0.0;
    const int64_t total = K * B * T;
    for (int64_t o = 0; o < total; ++o) v += double(lw[o]) * double(loss[o]);
    out.value = v;
  }

  // KL over every frame (b, t), and its gradients (csrc/cpu/kl_rows.h)
  KlOutputs kl = kl_pass<acc_t>(s, mu_in, lv_in, kl_weight, opts, acc_opts, grad);
  out.kl = kl.kl;
  if (grad) {
    out.grad_mu = kl.grad_mu;
    out.grad_logvar = kl.grad_logvar;
    out.value += kl.value;
  }
}

}  // namespace
}  // namespace cpu
}  // namespace sim
