// Fused Smooth-InfoNCE on the CPU: sim_kernels::smooth_infonce_fwd / smooth_infonce_value_and_grad.
//
// Shapes: B batch, T time, K steps, N negatives, Cc/Cz channels; rows r = b*T + t of the flattened
// (B*T, C) context and targets; Wcat = weight.view(K*Cz, Cc), so P[r, k] = W_k c_r is the k-th Cz
// block of the row  C[r] @ Wcat^T.
//
// One pass over row tiles of R anchors. Per tile:
//   1. P_tile (R, K*Cz) = C_tile @ Wcat^T                       one BLAS GEMM
//   2. per anchor and step (parallel over rows): the positive score and N gathered negative scores
//      s_j = z[rho_j] . P[r, k], an online log-sum-exp, loss = lse - s_0, correct = s_0 > max s_n.
//   With gradients (the value-and-grad op, upstream weights g = loss_weight[k, b, t] known up front):
//   3. dP_tile rows (see derivation), then
//      grad_context[tile] = dP_tile @ Wcat                      one GEMM
//      grad_Wcat         += dP_tile^T @ C_tile                  one GEMM, tiles in a fixed order
//   4. grad_targets[rho_j] += alpha_j P[r, k], scattered in parallel over channel slices: every
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
//   d / d c_r        = sum_k W_k^T dP[r, k]                 =  (dP[r] @ Wcat)
//   d / d W_k        = sum_r dP[r, k] c_r^T                 =  (dP^T @ C) block k
//   KL: value += kw[b,t] * 1/2 sum_c (mu^2 + e^lv - lv - 1)
//   d / d mu = kw * mu,   d / d lv = kw * 1/2 (e^lv - 1)
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "checks.h"
#include "smooth_infonce.h"

namespace sim {
namespace cpu {
namespace {

// ---- vector primitives, cloned for AVX2+FMA with a portable fallback --------------------------

#define SIM_CLONES __attribute__((target_clones("arch=haswell", "default")))

// Four independent 8-lane accumulators: enough FMAs in flight to hide their latency (one
// accumulator ran latency-bound at a quarter of the FMA throughput).
SIM_CLONES float dot_f(const float* a, const float* b, int64_t n) {
  float acc[32] = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 32; ++l) acc[l] += a[i + l] * b[i + l];
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 8; l < 32; ++l) acc[l % 8] += acc[l];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
SIM_CLONES double dot_d(const double* a, const double* b, int64_t n) {
  double acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[i + l] * b[i + l];
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 4; l < 16; ++l) acc[l % 4] += acc[l];
  double s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
// Ask for the first cache lines of a row that the next dot will read (random target rows).
inline void prefetch_row(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = 0; o < bytes && o < 1024; o += 64) __builtin_prefetch(c + o, 0, 1);
}
SIM_CLONES void axpy_f(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
SIM_CLONES void axpy_d(double alpha, const double* x, double* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
// bfloat16 operands, read as their bit patterns: a bf16 is the upper half of an fp32, so widening is
// a 16-bit shift (exact) that the compiler vectorises; products and sums are fp32, in the order of
// dot_f / axpy_f: the arithmetic of widening both rows first, without the widened copies.
inline float bf16_bits_to_float(uint16_t x) {
  const uint32_t u = uint32_t(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
SIM_CLONES float dot_bf(const uint16_t* a, const uint16_t* b, int64_t n) {
  float acc[32] = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int l = 0; l < 32; ++l) acc[l] += bf16_bits_to_float(a[i + l]) * bf16_bits_to_float(b[i + l]);
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += bf16_bits_to_float(a[i + l]) * bf16_bits_to_float(b[i + l]);
  for (int l = 8; l < 32; ++l) acc[l % 8] += acc[l];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += bf16_bits_to_float(a[i]) * bf16_bits_to_float(b[i]);
  return s;
}
SIM_CLONES void axpy_bf(float alpha, const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * bf16_bits_to_float(x[i]);
}
inline float dot(const float* a, const float* b, int64_t n) { return dot_f(a, b, n); }
inline float dot(const uint16_t* a, const uint16_t* b, int64_t n) { return dot_bf(a, b, n); }
inline void axpy(float a, const uint16_t* x, float* y, int64_t n) { axpy_bf(a, x, y, n); }
inline double dot(const double* a, const double* b, int64_t n) { return dot_d(a, b, n); }
inline void axpy(float a, const float* x, float* y, int64_t n) { axpy_f(a, x, y, n); }
inline void axpy(double a, const double* x, double* y, int64_t n) { axpy_d(a, x, y, n); }

// ---- argument checks ----------------------------------------------------------------------

// Shapes, dtypes and the index-range message are csrc/checks.h's, shared with the CUDA kernel.
using checks::Sizes;

Sizes check_inputs(const at::Tensor& context, const at::Tensor& targets, const at::Tensor& weight,
                   const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu,
                   const std::optional<at::Tensor>& logvar, int64_t t_begin, int64_t t_end, bool common_window) {
  // The dispatcher picks this kernel only when every input is a CPU tensor (CUDA outranks CPU).
  TORCH_INTERNAL_ASSERT(context.device().is_cpu() && targets.device().is_cpu() && weight.device().is_cpu() &&
                        neg_idx.device().is_cpu());
  const Sizes s = checks::check_inputs(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window);
  // Every index that will be read must lie in [0, B*T): checked before any gather touches memory.
  auto idx = neg_idx.accessor<int64_t, 4>();
  for (int64_t k = 1; k <= s.K; ++k)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t = s.t0; t < s.last(k); ++t)
        for (int64_t n = 0; n < s.N; ++n) {
          const int64_t v = idx[k - 1][b][t][n];
          if (v < 0 || v >= s.R) checks::index_error(s, v, k - 1, b, t, n);
        }
  return s;
}

using checks::check_weights;

// ---- the fused pass ------------------------------------------------------------------------

struct Outputs {
  at::Tensor loss, correct, kl;                       // (K,B,T), (K,B,T) bool, (B,T) or (0,)
  at::Tensor grad_context, grad_targets, grad_weight;  // undefined in forward-only mode
  at::Tensor grad_mu, grad_logvar;
  double value = 0.0;
};

// Rows per tile: P_tile and dP_tile of about 20 MB each, 256..4096 rows. Smaller tiles make the
// BLAS repack Wcat for every call: measured here (MKL, 2 cores, K*Cz = 5120), 96-row tiles ran the
// projection GEMM 3x slower than one full GEMM, 1024-row tiles within ~10%.
int64_t tile_rows(int64_t KCz, int64_t elem) {
  const int64_t r = (int64_t(20) << 20) / std::max<int64_t>(1, KCz * elem);
  return std::clamp<int64_t>(r / 16 * 16, 256, 4096);
}

// Tile buffers kept per calling thread and reused by the next call: a fresh buffer of this size
// comes back from malloc as new pages; faulting them in cost ~2300 page faults (9 MiB) per
// fwd+bwd at the paper's T = 64, 408 with the reuse (getrusage ru_minflt). Buffers above
// kWorkspaceCacheBytes are not kept; a thread holds at most four (P and dP, and their 16-bit copies
// for 16-bit inputs) plus the alpha/rho lists.
constexpr int64_t kWorkspaceCacheBytes = int64_t(64) << 20;

at::Tensor tile_workspace(int slot, int64_t rows, int64_t cols, const at::TensorOptions& opts) {
  thread_local at::Tensor cache[4];
  const int64_t numel = rows * cols;
  if (numel * int64_t(c10::elementSize(opts.dtype().toScalarType())) > kWorkspaceCacheBytes)
    return at::empty({rows, cols}, opts);
  at::Tensor& c = cache[slot];
  if (!c.defined() || c.scalar_type() != opts.dtype().toScalarType() || c.numel() < numel)
    c = at::empty({numel}, opts);
  return c.narrow(0, 0, numel).view({rows, cols});
}

// n elements: the calling thread's cached list, or ``local`` (resized) above kWorkspaceCacheBytes.
template <typename T>
T* tile_list(int64_t n, std::vector<T>& local) {
  thread_local std::vector<T> cache;
  std::vector<T>& list = n * int64_t(sizeof(T)) > kWorkspaceCacheBytes ? local : cache;
  if (int64_t(list.size()) < n) list.resize(n);
  return list.data();
}

// scalar_t is the input dtype, acc_t the accumulation dtype (at::opmath_type: float for float16 and
// bfloat16 inputs, else scalar_t). For 16-bit inputs (kLow):
//   - the three tile GEMMs run on scalar_t operands (at::mm: oneDNN/MKL accumulate in fp32; with
//     AVX-512 BF16 a bf16 GEMM of the paper's projection shape ran 3.2x faster than fp32 here); the
//     projection tile P is rounded to scalar_t by the GEMM;
//   - bfloat16: the gathered dots, dP and the grad_targets scatter read the bf16 rows of the targets
//     and of P in place and widen them in registers (dot_bf, axpy_bf: fp32 products and sums);
//     float16: the targets are widened to fp32 once (a (B*T, Cz) copy) and P once per tile; either
//     way the log-sum-exp, dP and grad_targets are fp32 (mu, logvar are widened once for the KL);
//   - dP is rounded to scalar_t for the two backward GEMMs; grad_context rows come out of the GEMM in
//     scalar_t; grad_weight sums the tiles' products in fp32; grad_targets accumulates in fp32.
//   The gradients are returned in scalar_t, loss/kl/value in fp32. Errors: within 2x of the reference
//   run in that dtype (tests/sim_kernels/test_native_cpu_half.py).
template <typename scalar_t, typename acc_t>
void fused_pass(const Sizes& s, const at::Tensor& context, const at::Tensor& targets, const at::Tensor& weight,
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
  // in place as bf16 bits (widened in registers, see dot_bf); float16 rows are widened to fp32 once.
  constexpr bool kBF16 = std::is_same_v<scalar_t, at::BFloat16>;
  using row_t = std::conditional_t<kBF16, uint16_t, acc_t>;
  const at::Tensor Z = (kBF16 ? targets.contiguous() : targets.contiguous().to(acc_opts.dtype())).view({BT, Cz});
  const at::Tensor Wcat = weight.contiguous().view({KCz, Cc});
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
    GZ = at::zeros({B, T, Cz}, acc_opts);         // kLow: cast to scalar_t at the end
    GW = at::empty({KCz, Cc}, acc_opts);
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
    for (int64_t b = 0; b < B; ++b) segments.emplace_back(b * T + s.t0, b * T + s.t1 - 1);
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
        at::mm_out(Pl, C_tile, Wcat.t());  // scalar_t operands, fp32 accumulation inside the GEMM
        if constexpr (!kBF16) P.copy_(Pl);  // bf16: the loops read Pl itself
      } else {
        at::mm_out(P, C_tile, Wcat.t());  // (R, K*Cz): P[i, k-block] = W_k c_{r0+i}
      }
      const row_t* Pp = kBF16 ? reinterpret_cast<const row_t*>(P_low.const_data_ptr())
                              : reinterpret_cast<const row_t*>(P.const_data_ptr());
      acc_t* dPp = grad ? dP_buf.mutable_data_ptr<acc_t>() : nullptr;

      at::parallel_for(0, R, 4, [&](int64_t i_begin, int64_t i_end) {
        std::vector<acc_t> sc(N + 1);
        for (int64_t i = i_begin; i < i_end; ++i) {
          const int64_t r = r0 + i, b = r / T, t = r % T;
          for (int64_t k = 1; k <= K; ++k) {
            const row_t* p = Pp + i * KCz + (k - 1) * Cz;
            acc_t* dp = grad ? dPp + i * KCz + (k - 1) * Cz : nullptr;
            const int64_t a = (i * K + (k - 1)) * (N + 1);
            if (t < s.t0 || t >= s.last(k)) {  // no positive for this step (or outside the common window)
              if (grad) {
                std::fill(dp, dp + Cz, acc_t(0));
                rho[a] = -1;
              }
              continue;
            }
            const int64_t pos_row = r + k;
            sc[0] = dot(p, z + pos_row * Cz, Cz);
            OnlineLogSumExp<acc_t> lse;
            lse.push(sc[0]);
            acc_t max_neg = -std::numeric_limits<acc_t>::infinity();
            for (int64_t n = 0; n < N; ++n) {
              const int64_t j = idx[k - 1][b][t][n];  // range-checked in check_inputs
              if (n + 1 < N) prefetch_row(z + idx[k - 1][b][t][n + 1] * Cz, Cz * int64_t(sizeof(row_t)));
              sc[n + 1] = dot(p, z + j * Cz, Cz);
              lse.push(sc[n + 1]);
              if (sc[n + 1] > max_neg || sc[n + 1] != sc[n + 1]) max_neg = sc[n + 1];  // NaN sticks: s+ > NaN is false
            }
            const int64_t o = ((k - 1) * B + b) * T + t;
            const acc_t log_sum = lse.log_sum();
            loss[o] = lse.minus(sc[0], log_sum);  // LSE(s) - s_0, rounded relative to the loss (smooth_infonce.h)
            correct[o] = sc[0] > max_neg;
            if (!grad) continue;
            const acc_t g = lw[o];
            std::fill(dp, dp + Cz, acc_t(0));
            for (int64_t j = 0; j <= N; ++j) {
              const int64_t row = j == 0 ? pos_row : idx[k - 1][b][t][j - 1];
              const acc_t al = g * (lse.softmax(sc[j], log_sum) - (j == 0 ? acc_t(1) : acc_t(0)));
              alpha[a + j] = al;
              rho[a + j] = row;
              axpy(al, z + row * Cz, dp, Cz);
            }
          }
        }
      });

      if (!grad) continue;
      at::Tensor dP = dP_buf.narrow(0, 0, R);
      at::Tensor GC_tile = GC.narrow(0, r0, R);
      if constexpr (kLow) {
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
      // grad_targets: each thread owns a channel slice and walks all (i, k, j) in order.
      at::parallel_for(0, Cz, 64, [&](int64_t c_begin, int64_t c_end) {
        const int64_t w = c_end - c_begin;
        for (int64_t i = 0; i < R; ++i)
          for (int64_t k = 0; k < K; ++k) {
            const int64_t a = (i * K + k) * (N + 1);
            if (rho[a] < 0) continue;
            const row_t* p = Pp + i * KCz + k * Cz + c_begin;
            for (int64_t j = 0; j <= N; ++j) axpy(alpha[a + j], p, gz + rho[a + j] * Cz + c_begin, w);
          }
      });
    }
  }

  if (grad) {
    out.grad_targets = kLow ? GZ.to(opts.dtype()) : GZ;
    out.grad_weight = (kLow ? GW.to(opts.dtype()) : GW).view({K, Cz, Cc});
  }

  // Sum of loss_weight * loss, in double and in a fixed order.
  if (grad) {
    double v = 0.0;
    const int64_t total = K * B * T;
    for (int64_t o = 0; o < total; ++o) v += double(lw[o]) * double(loss[o]);
    out.value = v;
  }

  // KL over every frame (b, t), and its gradients (fp32 for 16-bit inputs, cast back at the end).
  if (!s.has_kl) {
    out.kl = at::empty({0}, acc_opts);
    if (grad) {
      out.grad_mu = at::empty({0}, opts);
      out.grad_logvar = at::empty({0}, opts);
    }
    return;
  }
  const at::Tensor MU = mu_in->contiguous().to(acc_opts.dtype()), LV = lv_in->contiguous().to(acc_opts.dtype());
  const acc_t* mu = MU.const_data_ptr<acc_t>();
  const acc_t* lv = LV.const_data_ptr<acc_t>();
  out.kl = at::empty({B, T}, acc_opts);
  acc_t* kl = out.kl.mutable_data_ptr<acc_t>();
  at::Tensor kw_c, GMU, GLV;
  const acc_t* kw = nullptr;
  acc_t *gmu = nullptr, *glv = nullptr;
  if (grad) {
    kw_c = kl_weight->contiguous();
    kw = kw_c.const_data_ptr<acc_t>();
    GMU = at::empty({B, T, Cz}, acc_opts);
    GLV = at::empty({B, T, Cz}, acc_opts);
    gmu = GMU.mutable_data_ptr<acc_t>();
    glv = GLV.mutable_data_ptr<acc_t>();
  }
  at::parallel_for(0, BT, 16, [&](int64_t r_begin, int64_t r_end) {
    for (int64_t r = r_begin; r < r_end; ++r) {
      acc_t acc = 0;
      const acc_t* m = mu + r * Cz;
      const acc_t* l = lv + r * Cz;
      for (int64_t c = 0; c < Cz; ++c) acc += kl_term<acc_t>(m[c], l[c]);
      kl[r] = acc;
      if (grad) {
        const acc_t w = kw[r];
        for (int64_t c = 0; c < Cz; ++c) {
          gmu[r * Cz + c] = w * kl_grad_mu<acc_t>(m[c]);
          glv[r * Cz + c] = w * kl_grad_logvar<acc_t>(l[c]);
        }
      }
    }
  });
  if (grad) {
    out.grad_mu = kLow ? GMU.to(opts.dtype()) : GMU;
    out.grad_logvar = kLow ? GLV.to(opts.dtype()) : GLV;
    double v = 0.0;
    for (int64_t r = 0; r < BT; ++r) v += double(kw[r]) * double(kl[r]);
    out.value += v;
  }
}

// ---- op entry points -----------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor, at::Tensor> smooth_infonce_fwd_cpu(
    const at::Tensor& context, const at::Tensor& targets, const at::Tensor& weight, const at::Tensor& neg_idx,
    const std::optional<at::Tensor>& mu, const std::optional<at::Tensor>& logvar, int64_t t_begin, int64_t t_end,
    bool common_window) {
  const Sizes s = check_inputs(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window);
  Outputs out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, context.scalar_type(), "smooth_infonce_fwd_cpu", [&] {
    fused_pass<scalar_t, at::opmath_type<scalar_t>>(s, context, targets, weight, neg_idx, mu, logvar, nullptr,
                                                    std::nullopt, out);
  });
  return {out.loss, out.correct, out.kl};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
smooth_infonce_value_and_grad_cpu(const at::Tensor& context, const at::Tensor& targets, const at::Tensor& weight,
                            const at::Tensor& neg_idx, const std::optional<at::Tensor>& mu,
                            const std::optional<at::Tensor>& logvar, int64_t t_begin, int64_t t_end,
                            const at::Tensor& loss_weight, const std::optional<at::Tensor>& kl_weight,
                            bool common_window) {
  const Sizes s = check_inputs(context, targets, weight, neg_idx, mu, logvar, t_begin, t_end, common_window);
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

// Row-wise online log-sum-exp of scores (R, M) and KL of mu/logvar (R, C), with the shared header.
std::tuple<at::Tensor, at::Tensor> shared_math_selftest_cpu(const at::Tensor& scores, const at::Tensor& mu,
                                                            const at::Tensor& logvar) {
  TORCH_CHECK_VALUE(scores.dim() == 2, "scores must be (R, M), got ", scores.sizes());
  TORCH_CHECK_VALUE(mu.dim() == 2 && logvar.sizes() == mu.sizes(), "mu and logvar must be (R, C) alike, got ",
                    mu.sizes(), " and ", logvar.sizes());
  TORCH_CHECK_TYPE(scores.scalar_type() == at::kDouble && mu.scalar_type() == at::kDouble &&
                       logvar.scalar_type() == at::kDouble,
                   "the self-test takes float64 tensors");
  const at::Tensor S = scores.contiguous(), M = mu.contiguous(), L = logvar.contiguous();
  at::Tensor lse = at::empty({S.size(0)}, S.options());
  at::Tensor kl = at::empty({M.size(0)}, M.options());
  for (int64_t r = 0; r < S.size(0); ++r) {
    OnlineLogSumExp<double> acc;
    // Two halves merged, so merge() is exercised as well as push().
    const int64_t half = S.size(1) / 2;
    OnlineLogSumExp<double> rest;
    for (int64_t j = 0; j < half; ++j) acc.push(S[r][j].item<double>());
    for (int64_t j = half; j < S.size(1); ++j) rest.push(S[r][j].item<double>());
    acc.merge(rest);
    lse[r] = acc.value();
  }
  const double* m = M.const_data_ptr<double>();
  const double* l = L.const_data_ptr<double>();
  for (int64_t r = 0; r < M.size(0); ++r) {
    double acc = 0;
    for (int64_t c = 0; c < M.size(1); ++c) acc += kl_term<double>(m[r * M.size(1) + c], l[r * M.size(1) + c]);
    kl[r] = acc;
  }
  return {lse, kl};
}

}  // namespace

TORCH_LIBRARY_IMPL(sim_kernels, CPU, m) {
  m.impl("smooth_infonce_fwd", &smooth_infonce_fwd_cpu);
  m.impl("smooth_infonce_value_and_grad", &smooth_infonce_value_and_grad_cpu);
  m.impl("_shared_math_selftest", &shared_math_selftest_cpu);
}

}  // namespace cpu
}  // namespace sim
