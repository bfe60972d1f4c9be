// The op schemas of sim_kernels, defined once. Kernels register per device in their own files
// (csrc/cpu/*.cpp: CPU, csrc/cuda/*.cu: CUDA); Python registers fake and autograd in sim_kernels/ops.py.
//
// Shapes (B batch, T time, K prediction steps, N negatives, Cc context and Cz target channels):
//   context (B, T, Cc)   targets (B', T, Cz), B' >= B   neg_idx (K, B, T, N) int64
//   weight (K, Cz, Cc), or None: the score is the plain dot product z . c (Cc == Cz, K = neg_idx.size(0))
//   mu, logvar (B, T, Cz) or None
//   first_step: step k (1-based) scores the positive z[b, t + d_k], d_k = first_step + k - 1 (1: the next
//   frame, CPC/GIM/SIM; 0: the anchor's own frame, wav2vec 2.0).
//   [t_begin, t_end): the anchor window; the anchor (b, t) is valid at step k when
//   t_begin <= t < t_end - d_k (the whole sequence is t_begin = 0, t_end = T), or, with
//   common_window = true (CPC_audio's criterion), t_begin <= t < t_end - d_K for every k.
//   t_begin and t_end are SymInt: under torch.compile(dynamic=True) a symbolic T reaches the op
//   without being specialised, so one graph serves every sequence length (the kernels take int64).
//
// smooth_infonce_fwd -> loss (K, B, T): -log softmax([s+, s-_1..N])_0 at valid anchors, 0 elsewhere;
//                       correct (K, B, T) bool: s+ > max_n s-_n at valid anchors;
//                       kl (B, T): 1/2 sum_c (mu^2 + e^logvar - logvar - 1), or (0,) without mu.
//                       loss and kl are float64 for float64 inputs, float32 otherwise.
// smooth_infonce_value_and_grad -> value = sum(loss_weight * loss) + sum(kl_weight * kl), the fwd
//                       outputs, and the gradient of value with respect to every input
//                       (grad_mu, grad_logvar are (0,) without mu, grad_weight (0,) without weight). It is the forward and the
//                       backward in one pass, used when the upstream weights are known up front.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing sim_kernels._C runs the static initialisers below, which register the ops.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(sim_kernels, m) {
  m.def(
      "smooth_infonce_fwd(Tensor context, Tensor targets, Tensor? weight, Tensor neg_idx, "
      "Tensor? mu, Tensor? logvar, SymInt t_begin, SymInt t_end, bool common_window=False, int first_step=1) -> "
      "(Tensor loss, Tensor correct, Tensor kl)");
  m.def(
      "smooth_infonce_value_and_grad(Tensor context, Tensor targets, Tensor? weight, Tensor neg_idx, "
      "Tensor? mu, Tensor? logvar, SymInt t_begin, SymInt t_end, Tensor loss_weight, Tensor? kl_weight, "
      "bool common_window=False, int first_step=1) -> "
      "(Tensor value, Tensor loss, Tensor correct, Tensor kl, Tensor grad_context, Tensor grad_targets, "
      "Tensor grad_weight, Tensor grad_mu, Tensor grad_logvar)");
#ifdef SIM_SELFTEST_OPS
  // Test-only hook, built only with SIM_SELFTEST_OPS=1 (the GPU check's build; never the shipped
  // schema): the CUDA kernel's row-wise online log-sum-exp of scores (R, M) and KL of (R, C)
  // mu/logvar, run on the device with the very functions the kernels use. On the CPU the same
  // math is tested through the test-only host emulation (csrc/cuda/host_emulation.cpp).
  m.def("_shared_math_selftest(Tensor scores, Tensor mu, Tensor logvar) -> (Tensor lse, Tensor kl)");
#endif
}
