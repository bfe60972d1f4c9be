// Step 2 of the CPU kernel's fused pass (csrc/cpu/fused_pass.h): per anchor row and prediction step, the
// positive's and the N negatives' scores, the log-sum-exp, loss and hit and, with gradients, the softmax
// weights alpha, their target rows rho and dP. One function over a range of a tile's rows, run in parallel
// by the pass (rows are independent: each writes only its own outputs). Gradient derivation: fused_pass.h.
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (through fused_pass.h); hence the unnamed namespace.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "checks.h"
#include "cpu/simd.h"
#include "smooth_infonce.h"

namespace sim {
namespace cpu {
namespace {

// One tile's inputs and outputs. row_t: the element type the loops read targets and P in (uint16_t bf16
// bits widened in registers, or acc_t); P and dP hold, per tile row i, K blocks of Cz (P[i, k-block] =
// W_k c_{r0+i}, or c_{r0+i} itself without a weight).
template <typename acc_t, typename row_t>
struct AnchorRows {
  const checks::Sizes& s;
  int64_t r0;                           // the tile's first row (r = b*T + t)
  const row_t* z;                       // targets (Rz, Cz)
  const row_t* P;                       // (R, K*Cz) this tile
  at::TensorAccessor<int64_t, 4> idx;   // neg_idx (K, B, T, N), range-checked (or -1)
  acc_t* loss;                          // (K, B, T)
  bool* correct;                        // (K, B, T)
  const acc_t* lw;                      // loss_weight (K, B, T); null without gradients
  acc_t* dP;                            // (R, K*Cz) this tile; null without gradients
  acc_t* alpha;                         // (R, K, N+1) softmax weights; null without gradients
  int64_t* rho;                         // (R, K, N+1) their target rows, -1 at a non-anchor
};

// Per anchor and step: the N+1 target rows (positive first), their scores, the log-sum-exp terms and, with
// gradients, the softmax weights. Two passes over the N+1 scores (max, then the vectorised exponentials)
// instead of one online pass: the same values and rules as OnlineLogSumExp (smooth_infonce.h), without a
// scalar exp per score.
template <typename acc_t, typename row_t>
void anchor_rows(const AnchorRows<acc_t, row_t>& a, int64_t i_begin, int64_t i_end) {
  const checks::Sizes& s = a.s;
  const bool grad = a.lw != nullptr;
  const int64_t B = s.B, T = s.T, Cz = s.Cz, K = s.K, N = s.N, KCz = K * Cz;
  std::vector<acc_t> sc(padded_len(N + 1)), ex(padded_len(N + 1));  // padded for lse_terms
  std::vector<const row_t*> rows(N + 1);
  for (int64_t i = i_begin; i < i_end; ++i) {
    const int64_t r = a.r0 + i, b = r / T, t = r % T;
    for (int64_t k = 1; k <= K; ++k) {
      const row_t* p = a.P + i * KCz + (k - 1) * Cz;
      acc_t* dp = grad ? a.dP + i * KCz + (k - 1) * Cz : nullptr;
      const int64_t at = (i * K + (k - 1)) * (N + 1);
      if (t < s.t0 || t >= s.last(k)) {  // no positive for this step (or outside the common window)
        if (grad) {
          std::fill(dp, dp + Cz, acc_t(0));
          a.rho[at] = -1;
        }
        continue;
      }
      const int64_t pos_row = r + s.offset(k);  // (b, t + d_k): same sequence
      const auto neg = a.idx[k - 1][b][t];  // range-checked in check_inputs
      rows[0] = a.z + pos_row * Cz;
      bool excluded = false;  // neg_idx -1: no negative there (its score is -inf, its weight 0)
      for (int64_t n = 0; n < N; ++n) {
        excluded |= neg[n] < 0;
        rows[n + 1] = a.z + (neg[n] < 0 ? pos_row : neg[n]) * Cz;
      }
      dot_rows(p, rows.data(), N + 1, Cz, sc.data());
      if (excluded)
        for (int64_t n = 0; n < N; ++n)
          if (neg[n] < 0) sc[n + 1] = -std::numeric_limits<acc_t>::infinity();
      acc_t m = -std::numeric_limits<acc_t>::infinity();
      acc_t max_neg = -std::numeric_limits<acc_t>::infinity();
      for (int64_t j = 0; j <= N; ++j) m = sc[j] > m ? sc[j] : m;
      for (int64_t j = 1; j <= N; ++j)
        if (sc[j] > max_neg || sc[j] != sc[j]) max_neg = sc[j];  // NaN sticks: s+ > NaN is false
      const acc_t log_sum = sim_log(lse_terms(sc.data(), m, ex.data(), N + 1));
      const int64_t o = ((k - 1) * B + b) * T + t;
      a.loss[o] = (m - sc[0]) + log_sum;  // LSE(s) - s_0, rounded relative to the loss (smooth_infonce.h)
      a.correct[o] = sc[0] > max_neg;
      if (!grad) continue;
      const acc_t g = a.lw[o];
      softmax(sc.data(), m, log_sum, ex.data(), N + 1);
      for (int64_t j = 0; j <= N; ++j) {
        a.alpha[at + j] = g * (ex[j] - (j == 0 ? acc_t(1) : acc_t(0)));
        a.rho[at + j] = j == 0 || neg[j - 1] < 0 ? pos_row : neg[j - 1];  // an excluded one: weight 0
      }
      weighted_rows(a.alpha + at, rows.data(), N + 1, Cz, dp);
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace sim
