// Shared math of the Smooth-InfoNCE kernels: inline functions that compile for the host (CPU
// kernel) and the device (CUDA kernel), so the CPU tests exercise the code the GPU runs.
#pragma once

#include <cmath>
#include <limits>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SIM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SIM_HOST_DEVICE inline
#endif

namespace sim {

SIM_HOST_DEVICE float sim_exp(float x) { return expf(x); }
SIM_HOST_DEVICE double sim_exp(double x) { return exp(x); }
SIM_HOST_DEVICE float sim_log(float x) { return logf(x); }
SIM_HOST_DEVICE double sim_log(double x) { return log(x); }

// Online log-sum-exp (Milakov & Gimelshein): one pass, keeps the running max m and
// s = sum_j exp(x_j - m). Stable for |x| up to the dtype's range. A NaN score makes the result
// NaN (it propagates, as torch.logsumexp does).
template <typename acc_t>
struct OnlineLogSumExp {
  acc_t max_;
  acc_t sum_;

  SIM_HOST_DEVICE OnlineLogSumExp() : max_(-std::numeric_limits<acc_t>::infinity()), sum_(acc_t(0)) {}

  SIM_HOST_DEVICE void push(acc_t x) {
    if (x > max_) {
      // Rescale the old sum to the new max; exp(-inf) = 0 covers the first push.
      sum_ = sum_ * sim_exp(max_ - x) + acc_t(1);
      max_ = x;
    } else if (x == max_) {
      // exp(0) = 1, without computing inf - inf = NaN when x = max_ = +inf (logsumexp([inf, inf]) = inf);
      // for x = max_ = -inf the term is harmless: value() stays -inf until a finite x arrives.
      sum_ += acc_t(1);
    } else if (x != -std::numeric_limits<acc_t>::infinity()) {
      // exp(-inf) = 0 adds nothing (and -inf - -inf would be NaN); a NaN x lands here and propagates.
      sum_ += sim_exp(x - max_);
    }
  }

  SIM_HOST_DEVICE acc_t value() const { return max_ + sim_log(sum_); }

  // value() - x and the softmax weight exp(x - value()), computed around the max, with
  // log_sum = log_sum() computed once per row:
  //   value() - x = (max - x) + log(sum),   exp(x - value()) = exp((x - max) - log(sum)).
  // Their rounding error is relative to the result, not to value(): one fp32 ulp of a log-sum-exp
  // of 5e3 is 5e-4, which value() - x (a loss of ~0.7) and the softmax would otherwise inherit.
  // Non-finite cases give what the value() forms give (inf - inf = NaN, exp(-inf) = 0).
  SIM_HOST_DEVICE acc_t log_sum() const { return sim_log(sum_); }
  SIM_HOST_DEVICE acc_t minus(acc_t x, acc_t log_sum) const { return (max_ - x) + log_sum; }
  SIM_HOST_DEVICE acc_t softmax(acc_t x, acc_t log_sum) const { return sim_exp((x - max_) - log_sum); }
};

// KL(N(mu, e^logvar) || N(0, 1)) of one channel: 1/2 (mu^2 + e^logvar - logvar - 1).
template <typename acc_t>
SIM_HOST_DEVICE acc_t kl_term(acc_t mu, acc_t logvar) {
  return acc_t(0.5) * (mu * mu + sim_exp(logvar) - logvar - acc_t(1));
}

// d kl_term / d mu = mu;  d kl_term / d logvar = 1/2 (e^logvar - 1).
template <typename acc_t>
SIM_HOST_DEVICE acc_t kl_grad_mu(acc_t mu) {
  return mu;
}
template <typename acc_t>
SIM_HOST_DEVICE acc_t kl_grad_logvar(acc_t logvar) {
  return acc_t(0.5) * (sim_exp(logvar) - acc_t(1));
}

}  // namespace sim
