// Argument checks of the sim_kernels ops, shared by the CPU kernel (csrc/cpu/) and the CUDA driver
// (csrc/cuda/smooth_infonce_driver.h): one set of rules, one set of messages (each names the argument
// and the expected shape). Schemas and semantics: csrc/ops.cpp.
//
// Devices: the dispatcher routes a call to the CPU kernel only when no input is on another device
// (CUDA outranks CPU), so the CPU kernel asserts that internally; the CUDA kernel still checks that
// every input is on the device of context (cuda:0 vs cuda:1, or a CPU tensor among CUDA ones).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <optional>
#include <utility>

namespace sim {
namespace checks {

// Sizes of one call. Anchor (b, t) is valid at step k (1-based) when t0 <= t < last(k); its positive is the
// target row r + offset(k), offset(k) = first + k - 1.
// R = B*T anchor rows (context); Rz = B'*T target rows, B' >= B: the anchors' own B utterances first
// (their positives), then any extra ones whose rows only serve as negatives (e.g. gathered from other
// processes). neg_idx values index the Rz rows.
struct Sizes {
  int64_t B, T, Cc, Cz, K, N, R, t0, t1;
  bool has_kl;
  bool common;  // common anchor window (CPC_audio): t < t1 - offset(K) for every k
  int64_t Rz;
  int64_t first;    // offset of step 1: 1 (next frame) or 0 (the anchor's own frame, wav2vec 2.0)
  bool has_weight;  // false: the score is z . c (no W_k; Cc == Cz)
  int64_t offset(int64_t k) const { return first + k - 1; }
  int64_t last(int64_t k) const { return t1 - (common ? offset(K) : offset(k)); }
};

inline bool is_float_dtype(at::ScalarType s) {
  return s == at::kHalf || s == at::kBFloat16 || s == at::kFloat || s == at::kDouble;
}

inline at::ScalarType acc_dtype(at::ScalarType s) { return s == at::kDouble ? at::kDouble : at::kFloat; }

inline void check_same(const at::Tensor& x, const char* name, const at::Tensor& context) {
  TORCH_CHECK_TYPE(x.scalar_type() == context.scalar_type(), name, " must have the dtype of context (",
                   context.scalar_type(), "), got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.device() == context.device(), name, " must be on the device of context (", context.device(),
                    "), got ", x.device());
}

// Every argument check except the values of neg_idx (check_index_value / the driver's check_index_values).
inline Sizes check_inputs(const at::Tensor& context, const at::Tensor& targets,
                          const std::optional<at::Tensor>& weight, const at::Tensor& neg_idx,
                          const std::optional<at::Tensor>& mu, const std::optional<at::Tensor>& logvar,
                          int64_t t_begin, int64_t t_end, bool common_window, int64_t first_step) {
  TORCH_CHECK_VALUE(context.dim() == 3, "context must be 3-D (B, T, Cc), got shape ", context.sizes());
  TORCH_CHECK_TYPE(is_float_dtype(context.scalar_type()),
                   "context must be float16, bfloat16, float32 or float64, got ", context.scalar_type());
  const int64_t B = context.size(0), T = context.size(1), Cc = context.size(2);
  TORCH_CHECK_VALUE(B * T > 0, "context must have B*T > 0, got ", context.sizes());
  TORCH_CHECK_VALUE(targets.dim() == 3 && targets.size(0) >= B && targets.size(1) == T,
                    "targets must have shape (B', T, Cz) = (B' >= ", B, ", ", T, ", Cz): the anchors' own ", B,
                    " utterances first, then any extra ones for negatives, got ", targets.sizes());
  check_same(targets, "targets", context);
  const int64_t Cz = targets.size(2);
  TORCH_CHECK_VALUE(Cc > 0 && Cz > 0, "context and targets need at least one channel, got Cc=", Cc, ", Cz=", Cz);
  int64_t K = 0;
  if (weight.has_value()) {
    TORCH_CHECK_VALUE(weight->dim() == 3 && weight->size(0) >= 1 && weight->size(1) == Cz && weight->size(2) == Cc,
                      "weight must have shape (K, Cz, Cc) = (K, ", Cz, ", ", Cc, "), got ", weight->sizes());
    check_same(*weight, "weight", context);
    K = weight->size(0);
  } else {
    TORCH_CHECK_VALUE(Cc == Cz, "context and targets must have the same channels for a score without weight, got Cc=",
                      Cc, ", Cz=", Cz);
    TORCH_CHECK_VALUE(neg_idx.dim() == 4 && neg_idx.size(0) >= 1,
                      "neg_idx must have shape (K, B, T, N) with K >= 1, got ", neg_idx.sizes());
    K = neg_idx.size(0);
  }
  TORCH_CHECK_VALUE(first_step >= 0, "first_step must be >= 0, got ", first_step);
  TORCH_CHECK_TYPE(neg_idx.scalar_type() == at::kLong, "neg_idx must be int64, got ", neg_idx.scalar_type());
  TORCH_CHECK_VALUE(neg_idx.dim() == 4 && neg_idx.size(0) == K && neg_idx.size(1) == B && neg_idx.size(2) == T &&
                        neg_idx.size(3) >= 1,
                    "neg_idx must have shape (K, B, T, N) = (", K, ", ", B, ", ", T, ", N >= 1), got ", neg_idx.sizes());
  TORCH_CHECK_VALUE(neg_idx.device() == context.device(), "neg_idx must be on the device of context (",
                    context.device(), "), got ", neg_idx.device());
  TORCH_CHECK_VALUE(mu.has_value() == logvar.has_value(),
                    "mu and logvar must be given together (both or neither), got only ", mu.has_value() ? "mu" : "logvar");
  if (mu.has_value()) {
    for (const auto& [name, x] : {std::pair<const char*, const at::Tensor*>{"mu", &*mu}, {"logvar", &*logvar}}) {
      TORCH_CHECK_VALUE(x->dim() == 3 && x->size(0) == B && x->size(1) == T && x->size(2) == Cz, name,
                        " must have shape (B, T, Cz) = (", B, ", ", T, ", ", Cz, "), got ", x->sizes());
      check_same(*x, name, context);
    }
  }
  TORCH_CHECK_VALUE(0 <= t_begin && t_begin < t_end && t_end <= T,
                    "t_begin, t_end must satisfy 0 <= t_begin < t_end <= T=", T, ", got ", t_begin, ", ", t_end);
  TORCH_CHECK_VALUE(first_step + K - 1 < t_end - t_begin, "weight: K (prediction steps) + first_step - 1 must be < the "
                    "anchor window ", t_end - t_begin, ", got K=", K, ", first_step=", first_step);
  return Sizes{B, T, Cc, Cz, K, neg_idx.size(3), B * T, t_begin, t_end, mu.has_value(), common_window,
               targets.size(0) * T, first_step, weight.has_value()};
}

// The upstream weights of the value-and-grad op: in the accumulation dtype, kl_weight exactly when mu/logvar are.
inline void check_weights(const Sizes& s, const at::Tensor& context, const at::Tensor& loss_weight,
                          const std::optional<at::Tensor>& kl_weight) {
  const auto acc = acc_dtype(context.scalar_type());
  TORCH_CHECK_VALUE(loss_weight.dim() == 3 && loss_weight.size(0) == s.K && loss_weight.size(1) == s.B &&
                        loss_weight.size(2) == s.T,
                    "loss_weight must have shape (K, B, T) = (", s.K, ", ", s.B, ", ", s.T, "), got ", loss_weight.sizes());
  TORCH_CHECK_TYPE(loss_weight.scalar_type() == acc, "loss_weight must be ", acc, ", got ", loss_weight.scalar_type());
  TORCH_CHECK_VALUE(loss_weight.device() == context.device(), "loss_weight must be on the device of context (",
                    context.device(), "), got ", loss_weight.device());
  TORCH_CHECK_VALUE(kl_weight.has_value() == s.has_kl, "kl_weight must be given exactly when mu and logvar are");
  if (kl_weight.has_value()) {
    TORCH_CHECK_VALUE(kl_weight->dim() == 2 && kl_weight->size(0) == s.B && kl_weight->size(1) == s.T,
                      "kl_weight must have shape (B, T) = (", s.B, ", ", s.T, "), got ", kl_weight->sizes());
    TORCH_CHECK_TYPE(kl_weight->scalar_type() == acc, "kl_weight must be ", acc, ", got ", kl_weight->scalar_type());
    TORCH_CHECK_VALUE(kl_weight->device() == context.device(), "kl_weight must be on the device of context (",
                      context.device(), "), got ", kl_weight->device());
  }
}

// The one message for a used neg_idx value outside the target rows [0, B'*T) and not -1 (the "no negative"
// sentinel: an excluded candidate, score -inf): value found at neg_idx[k, b, t, n]
// (k 0-based).
inline void index_error(const Sizes& s, int64_t value, int64_t k, int64_t b, int64_t t, int64_t n) {
  TORCH_CHECK_VALUE(false, "neg_idx: every used value (anchors t_begin <= t < t_end - d_k) must lie in [0, B*T) = [0, ",
                    s.Rz, ") or be -1 (no negative), found ", value, " at neg_idx[", k, ", ", b, ", ", t, ", ", n, "]");
}

}  // namespace checks
}  // namespace sim
