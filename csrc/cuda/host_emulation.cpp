// Test-only CPU emulation of the CUDA Smooth-InfoNCE kernel (never part of sim_kernels._C: setup.py
// compiles csrc/cuda/*.cu only). It runs the very driver (smooth_infonce_driver.h: checks, tiling,
// GEMMs, sort, launch order) and per-warp bodies (smooth_infonce_rows.cuh) of the CUDA kernel, with
// each "launch" a loop over the work items and each warp a single lane (lane 0 of 1). What it cannot
// check: the shuffles, __syncwarp placement and anything else specific to 32 lanes running together.
// tests/sim_kernels/test_cuda.py builds it with torch.utils.cpp_extension.load.
#include <torch/extension.h>

#include "smooth_infonce_driver.h"

namespace {

struct HostLauncher {
  template <typename scalar_t, typename acc_t, bool kGrad>
  static void anchors(const sim::rows::AnchorArgs<scalar_t, acc_t>& a, int64_t items) {
    for (int64_t i = 0; i < items; ++i) sim::rows::anchor_item<scalar_t, acc_t, kGrad>(a, i, 0, 1);
  }

  template <typename acc_t>
  static void target_segments(const int64_t* sorted, const int64_t* perm, const acc_t* coef, const acc_t* proj,
                              acc_t* grad_targets, int64_t M, int64_t N1, int64_t Cz, int64_t R) {
    for (int64_t i = 0; i < M; ++i)
      sim::rows::target_segment<acc_t>(sorted, perm, coef, proj, grad_targets, M, N1, Cz, R, i, 0, 1);
  }

  template <typename scalar_t, typename acc_t, bool kGrad>
  static void kl(const scalar_t* mu, const scalar_t* logvar, const acc_t* kl_weight, acc_t* kl, scalar_t* grad_mu,
                 scalar_t* grad_logvar, int64_t Cz, int64_t R) {
    for (int64_t r = 0; r < R; ++r)
      sim::rows::kl_item<scalar_t, acc_t, kGrad>(mu, logvar, kl_weight, kl, grad_mu, grad_logvar, Cz, r, 0, 1);
  }
};

// _shared_math_selftest on the CPU through the kernel's own selftest_item: scores (R, M), mu/logvar (R, C).
std::tuple<at::Tensor, at::Tensor> shared_math_selftest(const at::Tensor& scores, const at::Tensor& mu,
                                                        const at::Tensor& logvar) {
  TORCH_CHECK_VALUE(scores.dim() == 2 && mu.dim() == 2 && logvar.sizes() == mu.sizes() && mu.size(0) == scores.size(0),
                    "scores (R, M), mu and logvar (R, C) expected, got ", scores.sizes(), ", ", mu.sizes(), ", ",
                    logvar.sizes());
  const auto s = scores.contiguous(), m = mu.to(scores.scalar_type()).contiguous(),
             lv = logvar.to(scores.scalar_type()).contiguous();
  const int64_t R = s.size(0), M = s.size(1), C = m.size(1);
  const auto acc_opts = s.options().dtype(sim::driver::acc_dtype(s.scalar_type()));
  auto lse = at::empty({R}, acc_opts), kl = at::empty({R}, acc_opts);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, s.scalar_type(), "shared_math_selftest_emulation", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    for (int64_t r = 0; r < R; ++r)
      sim::rows::selftest_item<scalar_t, acc_t>(s.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(), lv.data_ptr<scalar_t>(),
                                                lse.data_ptr<acc_t>(), kl.data_ptr<acc_t>(), M, C, r);
  });
  return {lse, kl};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "CPU emulation of the CUDA smooth_infonce kernel (tests only)";
  namespace py = pybind11;
  // The op schemas' argument names and defaults (csrc/ops.cpp), so the tests call both alike.
  m.def("smooth_infonce_fwd", &sim::driver::fwd<HostLauncher>, py::arg("context"), py::arg("targets"),
        py::arg("weight"), py::arg("neg_idx"), py::arg("mu"), py::arg("logvar"), py::arg("t_begin"), py::arg("t_end"),
        py::arg("common_window") = false, py::arg("first_step") = 1);
  m.def("smooth_infonce_value_and_grad", &sim::driver::value_and_grad<HostLauncher>, py::arg("context"), py::arg("targets"),
        py::arg("weight"), py::arg("neg_idx"), py::arg("mu"), py::arg("logvar"), py::arg("t_begin"), py::arg("t_end"),
        py::arg("loss_weight"), py::arg("kl_weight"), py::arg("common_window") = false, py::arg("first_step") = 1);
  m.def("shared_math_selftest", &shared_math_selftest);
}
