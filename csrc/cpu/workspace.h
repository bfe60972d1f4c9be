// Tile sizing and the per-thread buffer cache of the CPU kernel.
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (the CPU kernel is one translation unit, so the
// split into files changes no code generation); hence the unnamed namespace.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sim {
namespace cpu {
namespace {

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

}  // namespace
}  // namespace cpu
}  // namespace sim
