// Per-warp bodies of the CUDA Smooth-InfoNCE kernels, written once for two callers:
//   - csrc/cuda/smooth_infonce_cuda.cu runs them with lane = threadIdx.x % 32, lanes = 32 (one warp
//     per work item, lanes striding the channels, a butterfly shuffle for the reductions);
//   - csrc/cuda/host_emulation.cpp (tests only) runs them on the CPU with lane = 0, lanes = 1, so
//     the indexing, the window logic, the softmax coefficients and the grad_targets segments can
//     be checked against sim_kernels.reference on a machine without a GPU.
// No shared memory is used: the per-item scratch (scores, coefficients, row ids) lives in small
// per-tile global buffers that stay in L1/L2.
//
// Notation: R = B*T rows, rk = r_local*K + k indexes (anchor row in the tile, step k = 0..K-1),
// step = first + k (the positive's offset: first = 1, the next frame; 0, the anchor's own frame),
// N1 = N + 1 scores per (anchor, step): j = 0 is the positive, j = n + 1 negative n.
#pragma once

#include <cstdint>
#include <limits>

#include "smooth_infonce.h"

namespace sim {
namespace rows {

// Sum over the lanes of a warp; every lane gets the bitwise-same result (each butterfly step adds
// the same two numbers in both partner lanes, and IEEE addition is commutative). Identity on the host.
template <typename acc_t>
SIM_HOST_DEVICE acc_t lanes_sum(acc_t v) {
#if defined(__CUDA_ARCH__)
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
#endif
  return v;
}

// Orders global-memory writes of one lane before the reads of the other lanes (no-op on the host).
SIM_HOST_DEVICE void lanes_sync() {
#if defined(__CUDA_ARCH__)
  __syncwarp();
#endif
}

template <typename scalar_t, typename acc_t>
struct AnchorArgs {
  const scalar_t* targets;    // (Rz, Cz) contiguous: the anchors' R rows, then extra rows for negatives
  const acc_t* proj;          // P, this tile: (rt, K, Cz), P[rk, :] = W_k c[r] (c[r] without a weight)
  const int64_t* neg_idx;     // (K, B, T, N) with strides s_k, s_b, s_t, s_n (may be 0)
  int64_t s_k, s_b, s_t, s_n;
  const acc_t* loss_weight;   // (K, R) contiguous; only read when computing gradients
  acc_t* loss;                // (K, R)
  bool* correct;              // (K, R)
  acc_t* coef;                // (rt*K, N1): scores, then d value / d score       (gradients only)
  int64_t* rows;              // (rt*K, N1): target row of each score, Rz = none   (gradients only)
  acc_t* dproj;               // dP, this tile: (rt, K, Cz)                       (gradients only)
  int64_t R, T, K, N, Cz, r0, t_begin, t_end;
  bool common;                // common anchor window (CPC_audio): t < t_end - (first + K - 1) for every step
  int64_t Rz;                 // target rows (>= R): neg_idx values lie in [0, Rz)
  int64_t first;              // offset of the first step (1: next frame; 0: the anchor's own frame)
};

template <typename scalar_t, typename acc_t>
SIM_HOST_DEVICE acc_t row_dot(const scalar_t* z, const acc_t* p, int64_t Cz, int lane, int lanes) {
  acc_t s = acc_t(0);
  for (int64_t c = lane; c < Cz; c += lanes) s += static_cast<acc_t>(z[c]) * p[c];
  return lanes_sum(s);
}

// One (anchor row, step) item. Forward:
//   s_0 = z[b, t+step] . P[rk],  s_{n+1} = z_flat[neg_idx[k, b, t, n]] . P[rk],
//   lse = logsumexp_j s_j (online, sim::OnlineLogSumExp),  loss = lse - s_0,
//   correct = s_0 > max_n s_{n+1}  (NaN propagates into the max, so NaN scores count as wrong).
// Backward of value = sum lw * loss (kGrad), with p_j = exp(s_j - lse) the softmax (computed as
// exp((s_j - max) - log sum), see OnlineLogSumExp::softmax):
//   d loss / d s_j = p_j - [j = 0]                  ->  coef_j = lw * (p_j - [j = 0])
//   s_j = z_{row_j} . P[rk]  =>  d value / d P[rk]   = sum_j coef_j z_{row_j}     (dP, this function)
//                               d value / d z_{row_j} += coef_j P[rk]             (target_segment)
//   P[rk] = W_k c[r]         =>  grad_context[r] = sum_k W_k^T dP[rk],  grad_W_k = sum_r dP[rk] c[r]^T
//                                (two GEMMs on the host side: dP @ W_cat and dP^T @ C).
// Valid items: t_begin <= t < t_end - step, or t < t_end - (first + K - 1) for every step with a.common.
// Items outside the anchor window get loss 0, correct false, coef 0, row Rz (none) and dP = 0.
template <typename scalar_t, typename acc_t, bool kGrad>
SIM_HOST_DEVICE void anchor_item(const AnchorArgs<scalar_t, acc_t>& a, int64_t rk, int lane, int lanes) {
  const int64_t r_local = rk / a.K, k = rk % a.K, step = a.first + k;
  const int64_t r = a.r0 + r_local, b = r / a.T, t = r % a.T;
  const int64_t out = k * a.R + r, N1 = a.N + 1;
  const acc_t* p = a.proj + rk * a.Cz;
  const bool valid = t >= a.t_begin && t < a.t_end - (a.common ? a.first + a.K - 1 : step);
  if (!valid) {
    if (lane == 0) {
      a.loss[out] = acc_t(0);
      a.correct[out] = false;
    }
    if (kGrad) {
      for (int64_t j = lane; j < N1; j += lanes) {
        a.coef[rk * N1 + j] = acc_t(0);
        a.rows[rk * N1 + j] = a.Rz;
      }
      for (int64_t c = lane; c < a.Cz; c += lanes) a.dproj[rk * a.Cz + c] = acc_t(0);
    }
    return;
  }
  const int64_t pos_row = r + step;  // (b, t + step): same sequence, step frames later
  const acc_t s_pos = row_dot(a.targets + pos_row * a.Cz, p, a.Cz, lane, lanes);
  OnlineLogSumExp<acc_t> lse;
  lse.push(s_pos);
  acc_t max_neg = -std::numeric_limits<acc_t>::infinity();
  if (kGrad && lane == 0) {
    a.coef[rk * N1] = s_pos;
    a.rows[rk * N1] = pos_row;
  }
  const int64_t* negs = a.neg_idx + k * a.s_k + b * a.s_b + t * a.s_t;
  for (int64_t n = 0; n < a.N; ++n) {
    const int64_t row = negs[n * a.s_n];  // -1: no negative (excluded): score -inf, weight 0, row "none"
    const acc_t s = row < 0 ? -std::numeric_limits<acc_t>::infinity() : row_dot(a.targets + row * a.Cz, p, a.Cz, lane, lanes);
    lse.push(s);
    max_neg = (s > max_neg || s != s) ? s : max_neg;
    if (kGrad && lane == 0) {
      a.coef[rk * N1 + n + 1] = s;
      a.rows[rk * N1 + n + 1] = row < 0 ? a.Rz : row;
    }
  }
  const acc_t log_sum = lse.log_sum();
  if (lane == 0) {
    a.loss[out] = lse.minus(s_pos, log_sum);  // lse - s_pos, rounded relative to the loss (smooth_infonce.h)
    a.correct[out] = s_pos > max_neg;
  }
  if (!kGrad) return;
  lanes_sync();
  const acc_t lw = a.loss_weight[out];
  for (int64_t j = lane; j < N1; j += lanes) {
    const acc_t s = a.coef[rk * N1 + j];
    a.coef[rk * N1 + j] = lw * (lse.softmax(s, log_sum) - (j == 0 ? acc_t(1) : acc_t(0)));
  }
  lanes_sync();
  for (int64_t c = lane; c < a.Cz; c += lanes) {
    acc_t g = acc_t(0);
    for (int64_t j = 0; j < N1; ++j) {
      const int64_t row = a.rows[rk * N1 + j];
      if (row < a.Rz) g += a.coef[rk * N1 + j] * static_cast<acc_t>(a.targets[row * a.Cz + c]);  // Rz: excluded
    }
    a.dproj[rk * a.Cz + c] = g;
  }
}

// grad_targets of one tile, deterministically. The (rt*K*N1) row ids were stably sorted
// (sorted[i] = rows[perm[i]]); item i is the head of the run of equal row ids starting at i, or
// nothing. The head sums coef[e] * P[e / N1] over its run in sorted order (= the order of e,
// as the sort is stable), then adds the sum to grad_targets_acc[row]: one writer per row per
// launch, and the tiles run one after another on the stream, so no atomics are needed and the
// result is bitwise reproducible.
template <typename acc_t>
SIM_HOST_DEVICE void target_segment(const int64_t* sorted, const int64_t* perm, const acc_t* coef, const acc_t* proj,
                                    acc_t* grad_targets, int64_t M, int64_t N1, int64_t Cz, int64_t R, int64_t i,
                                    int lane, int lanes) {
  const int64_t row = sorted[i];
  if (row >= R || (i > 0 && sorted[i - 1] == row)) return;
  int64_t end = i + 1;
  while (end < M && sorted[end] == row) ++end;
  for (int64_t c = lane; c < Cz; c += lanes) {
    acc_t g = acc_t(0);
    for (int64_t e = i; e < end; ++e) {
      const int64_t src = perm[e];
      g += coef[src] * proj[(src / N1) * Cz + c];
    }
    grad_targets[row * Cz + c] += g;
  }
}

// KL of frame r and, with kGrad, its weighted gradients:
//   kl[r] = sum_c 1/2 (mu^2 + e^logvar - logvar - 1);  value += klw[r] * kl[r]
//   => d value / d mu = klw[r] mu,  d value / d logvar = klw[r] 1/2 (e^logvar - 1)  (sim::kl_grad_*).
template <typename scalar_t, typename acc_t, bool kGrad>
SIM_HOST_DEVICE void kl_item(const scalar_t* mu, const scalar_t* logvar, const acc_t* kl_weight, acc_t* kl,
                             scalar_t* grad_mu, scalar_t* grad_logvar, int64_t Cz, int64_t r, int lane, int lanes) {
  acc_t s = acc_t(0);
  for (int64_t c = lane; c < Cz; c += lanes)
    s += kl_term<acc_t>(static_cast<acc_t>(mu[r * Cz + c]), static_cast<acc_t>(logvar[r * Cz + c]));
  s = lanes_sum(s);
  if (lane == 0) kl[r] = s;
  if (!kGrad) return;
  const acc_t w = kl_weight == nullptr ? acc_t(0) : kl_weight[r];
  for (int64_t c = lane; c < Cz; c += lanes) {
    grad_mu[r * Cz + c] = static_cast<scalar_t>(w * kl_grad_mu<acc_t>(static_cast<acc_t>(mu[r * Cz + c])));
    grad_logvar[r * Cz + c] = static_cast<scalar_t>(w * kl_grad_logvar<acc_t>(static_cast<acc_t>(logvar[r * Cz + c])));
  }
}

// _shared_math_selftest, one row per thread: lse[r] over scores[r, :M], kl[r] over C channels.
template <typename scalar_t, typename acc_t>
SIM_HOST_DEVICE void selftest_item(const scalar_t* scores, const scalar_t* mu, const scalar_t* logvar, acc_t* lse_out,
                                   acc_t* kl_out, int64_t M, int64_t C, int64_t r) {
  OnlineLogSumExp<acc_t> lse;
  for (int64_t j = 0; j < M; ++j) lse.push(static_cast<acc_t>(scores[r * M + j]));
  lse_out[r] = lse.value();
  acc_t s = acc_t(0);
  for (int64_t c = 0; c < C; ++c) s += kl_term<acc_t>(static_cast<acc_t>(mu[r * C + c]), static_cast<acc_t>(logvar[r * C + c]));
  kl_out[r] = s;
}

}  // namespace rows
}  // namespace sim
