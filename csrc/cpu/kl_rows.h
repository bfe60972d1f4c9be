// The KL term of the CPU kernel's fused pass (csrc/cpu/fused_pass.h), per frame (b, t):
//   kl[b, t] = 1/2 sum_c (mu^2 + e^logvar - logvar - 1)          (the closed form of KL(N(mu, sigma^2) || N(0, I)))
// and, with gradients (upstream weights kw = kl_weight[b, t] known up front):
//   value += kw * kl,  d value / d mu = kw * mu,  d value / d logvar = kw * 1/2 (e^logvar - 1).
// In the accumulation dtype (fp32 for 16-bit inputs, gradients cast back at the end), in parallel over frames.
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (through fused_pass.h); hence the unnamed namespace.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <optional>

#include "checks.h"
#include "smooth_infonce.h"

namespace sim {
namespace cpu {
namespace {

struct KlOutputs {
  at::Tensor kl;                  // (B, T) in the accumulation dtype, or (0,) without mu
  at::Tensor grad_mu, grad_logvar;  // the input dtype; (0,) without mu; undefined without gradients
  double value = 0.0;             // sum kw * kl, in double and in a fixed order
};

template <typename acc_t>
KlOutputs kl_pass(const checks::Sizes& s, const std::optional<at::Tensor>& mu_in,
                  const std::optional<at::Tensor>& lv_in, const std::optional<at::Tensor>& kl_weight,
                  const at::TensorOptions& opts, const at::TensorOptions& acc_opts, bool grad) {
  KlOutputs out;
  const bool low = opts.dtype() != acc_opts.dtype();
  if (!s.has_kl) {
    out.kl = at::empty({0}, acc_opts);
    if (grad) {
      out.grad_mu = at::empty({0}, opts);
      out.grad_logvar = at::empty({0}, opts);
    }
    return out;
  }
  const int64_t BT = s.B * s.T, Cz = s.Cz;
  const at::Tensor MU = mu_in->contiguous().to(acc_opts.dtype()), LV = lv_in->contiguous().to(acc_opts.dtype());
  const acc_t* mu = MU.const_data_ptr<acc_t>();
  const acc_t* lv = LV.const_data_ptr<acc_t>();
  out.kl = at::empty({s.B, s.T}, acc_opts);
  acc_t* kl = out.kl.mutable_data_ptr<acc_t>();
  at::Tensor kw_c, GMU, GLV;
  const acc_t* kw = nullptr;
  acc_t *gmu = nullptr, *glv = nullptr;
  if (grad) {
    kw_c = kl_weight->contiguous();
    kw = kw_c.const_data_ptr<acc_t>();
    GMU = at::empty({s.B, s.T, Cz}, acc_opts);
    GLV = at::empty({s.B, s.T, Cz}, acc_opts);
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
    out.grad_mu = low ? GMU.to(opts.dtype()) : GMU;
    out.grad_logvar = low ? GLV.to(opts.dtype()) : GLV;
    for (int64_t r = 0; r < BT; ++r) out.value += double(kw[r]) * double(kl[r]);
  }
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace sim
