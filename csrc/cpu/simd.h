// Vector primitives of the CPU kernel (dot, axpy; fp32, fp64 and bf16 bits), cloned for AVX2+FMA.
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (the CPU kernel is one translation unit, so the
// split into files changes no code generation); hence the unnamed namespace.
#pragma once

#include <cstdint>
#include <cstring>

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

}  // namespace
}  // namespace cpu
}  // namespace sim
