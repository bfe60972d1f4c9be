// Vector primitives of the CPU kernel (fp32, fp64, and bf16 rows read as their bits), each compiled
// twice, for AVX2+FMA and for the baseline x86-64, and chosen at run time.
// Included once, by csrc/cpu/smooth_infonce_cpu.cpp (the CPU kernel is one translation unit, so the
// split into files changes no code generation); hence the unnamed namespace.
//
// Why not target_clones: GCC's ifunc resolver for target_clones("arch=haswell" | "avx2" |
// "arch=x86-64-v3", "default") chose the default clone on this machine (an AVX-512 Xeon; a 10-line
// program printing which clone ran shows it, while __builtin_cpu_supports("avx2") called from main
// is true), so every primitive ran its SSE2 version. The pair below is chosen by a flag read once
// (cpu_has_avx2_fma), and the benchmarks measure the AVX2 path.
#pragma once

#if defined(__clang__) || !defined(__GNUC__) || __GNUC__ < 9
#error "csrc/cpu/simd.h needs GCC >= 9 (vector extensions: __builtin_shuffle, __builtin_convertvector, vector ?:); build with CXX=g++"
#endif

// 256-bit vector arguments of always-inlined helpers in the baseline compilation (never an ABI boundary).
#pragma GCC diagnostic ignored "-Wpsabi"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace sim {
namespace cpu {
namespace {

// True when the processor (and the OS) run AVX2 and FMA instructions; computed once.
inline bool cpu_has_avx2_fma() {
  static const bool yes = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return yes;
}

#if defined(__x86_64__) || defined(__i386__)
#define SIM_AVX2 __attribute__((target("avx2,fma")))
#else
#define SIM_AVX2
#endif
#define SIM_INLINE __attribute__((always_inline)) inline

// A bf16 is the upper half of an fp32: widening is an exact 16-bit shift the compiler vectorises.
SIM_INLINE float bf16_bits_to_float(uint16_t x) {
  const uint32_t u = uint32_t(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
SIM_INLINE float widen(float x) { return x; }
SIM_INLINE double widen(double x) { return x; }
SIM_INLINE float widen(uint16_t x) { return bf16_bits_to_float(x); }

// ---- 256-bit vectors (GCC vector extensions: one source for both compilations; the baseline
// compilation splits each into two SSE halves) ------------------------------------------------

typedef float v8f __attribute__((vector_size(32)));
typedef double v4d __attribute__((vector_size(32)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));

template <typename acc_t>
struct Lanes;
template <>
struct Lanes<float> {
  using vec = v8f;
  static constexpr int L = 8;
};
template <>
struct Lanes<double> {
  using vec = v4d;
  static constexpr int L = 4;
};

SIM_INLINE v8f load_vec(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
SIM_INLINE v8f load_vec(const uint16_t* p) {  // 8 bf16 widened to fp32 (exact)
  v8u16 h;
  std::memcpy(&h, p, sizeof(h));
  const v8u32 w = __builtin_convertvector(h, v8u32) << 16;
  v8f f;
  std::memcpy(&f, &w, sizeof(f));
  return f;
}
SIM_INLINE v4d load_vec(const double* p) {
  v4d v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
SIM_INLINE void store_vec(float* p, v8f v) { std::memcpy(p, &v, sizeof(v)); }
SIM_INLINE void store_vec(double* p, v4d v) { std::memcpy(p, &v, sizeof(v)); }
// Sum of the lanes, as a tree: (l0+l4 + l2+l6) + (l1+l5 + l3+l7).
SIM_INLINE float hsum(v8f v) {
  v = v + __builtin_shuffle(v, v8i{4, 5, 6, 7, 0, 1, 2, 3});
  v = v + __builtin_shuffle(v, v8i{2, 3, 0, 1, 6, 7, 4, 5});
  v = v + __builtin_shuffle(v, v8i{1, 0, 3, 2, 5, 4, 7, 6});
  return v[0];
}
SIM_INLINE double hsum(v4d v) {
  v = v + __builtin_shuffle(v, v4l{2, 3, 0, 1});
  v = v + __builtin_shuffle(v, v4l{1, 0, 3, 2});
  return v[0];
}

// ---- bodies (always inlined into both compilations) ------------------------------------------

// out[j] = p . rows[j][0:n] for j < m, products and sums in acc_t. Four rows at a time share each
// load of p and give four independent FMA chains; one call per anchor and step (a call per row
// cost more than its arithmetic at Cz = 32).
template <typename row_t, typename acc_t>
SIM_INLINE void dot_rows_body(const row_t* p, const row_t* const* rows, int64_t m, int64_t n, acc_t* out) {
  using vec = typename Lanes<acc_t>::vec;
  constexpr int L = Lanes<acc_t>::L;
  int64_t j = 0;
  for (; j + 4 <= m; j += 4) {
    const row_t *r0 = rows[j], *r1 = rows[j + 1], *r2 = rows[j + 2], *r3 = rows[j + 3];
    vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
    int64_t i = 0;
    for (; i + L <= n; i += L) {
      const vec x = load_vec(p + i);
      a0 += x * load_vec(r0 + i);
      a1 += x * load_vec(r1 + i);
      a2 += x * load_vec(r2 + i);
      a3 += x * load_vec(r3 + i);
    }
    acc_t s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; i < n; ++i) {
      const acc_t x = widen(p[i]);
      s0 += x * widen(r0[i]);
      s1 += x * widen(r1[i]);
      s2 += x * widen(r2[i]);
      s3 += x * widen(r3[i]);
    }
    out[j] = s0;
    out[j + 1] = s1;
    out[j + 2] = s2;
    out[j + 3] = s3;
  }
  for (; j < m; ++j) {
    const row_t* r = rows[j];
    vec a = {};
    int64_t i = 0;
    for (; i + L <= n; i += L) a += load_vec(p + i) * load_vec(r + i);
    acc_t s = hsum(a);
    for (; i < n; ++i) s += widen(p[i]) * widen(r[i]);
    out[j] = s;
  }
}

// dp[0:n] = sum_j alpha[j] rows[j][0:n]: dp is built 8 vectors (64 fp32 channels) at a time in
// registers, so each element is stored once (not once per row, as a loop of axpy calls does).
template <typename row_t, typename acc_t>
SIM_INLINE void weighted_rows_body(const acc_t* alpha, const row_t* const* rows, int64_t m, int64_t n, acc_t* dp) {
  using vec = typename Lanes<acc_t>::vec;
  constexpr int L = Lanes<acc_t>::L, V = 8;
  int64_t i = 0;
  for (; i + V * L <= n; i += V * L) {
    vec acc[V] = {};
    for (int64_t j = 0; j < m; ++j) {
      const vec al = vec{} + alpha[j];
      const row_t* r = rows[j] + i;
      for (int v = 0; v < V; ++v) acc[v] += al * load_vec(r + v * L);
    }
    for (int v = 0; v < V; ++v) store_vec(dp + i + v * L, acc[v]);
  }
  for (; i + L <= n; i += L) {
    vec acc = {};
    for (int64_t j = 0; j < m; ++j) acc += (vec{} + alpha[j]) * load_vec(rows[j] + i);
    store_vec(dp + i, acc);
  }
  for (; i < n; ++i) {
    acc_t acc = 0;
    for (int64_t j = 0; j < m; ++j) acc += alpha[j] * widen(rows[j][i]);
    dp[i] = acc;
  }
}

// grad_targets' scatter for one anchor and step: y[rho[j] * ld + c] += alpha[j] * p[c] for c < w, for
// j = 0..m-1 in order. p is held in registers 64 channels at a time while the m rows are updated
// (one call per anchor and step, not one per row). Each element receives its terms in j order
// whatever w and the slicing into calls, so the caller's channel-sliced threads stay bitwise
// reproducible.
template <typename row_t, typename acc_t>
SIM_INLINE void scatter_rows_body(const acc_t* alpha, const int64_t* rho, int64_t m, const row_t* p, acc_t* y,
                                  int64_t ld, int64_t w) {
  using vec = typename Lanes<acc_t>::vec;
  constexpr int L = Lanes<acc_t>::L, V = 8;
  int64_t c = 0;
  for (; c + V * L <= w; c += V * L) {
    vec pv[V];
    for (int v = 0; v < V; ++v) pv[v] = load_vec(p + c + v * L);
    for (int64_t j = 0; j < m; ++j) {
      const vec al = vec{} + alpha[j];
      acc_t* yr = y + rho[j] * ld + c;
      for (int v = 0; v < V; ++v) store_vec(yr + v * L, load_vec(yr + v * L) + al * pv[v]);
    }
  }
  for (; c + L <= w; c += L) {
    const vec pv = load_vec(p + c);
    for (int64_t j = 0; j < m; ++j) {
      acc_t* yr = y + rho[j] * ld + c;
      store_vec(yr, load_vec(yr) + (vec{} + alpha[j]) * pv);
    }
  }
  for (; c < w; ++c) {
    const acc_t x = widen(p[c]);
    for (int64_t j = 0; j < m; ++j) y[rho[j] * ld + c] += alpha[j] * x;
  }
}

// exp of 8 fp32 lanes: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite, ln2 in two parts), e^r by its
// Taylor series to r^7 (truncation < 5e-9 relative, below half an fp32 ulp), times 2^k from the
// exponent bits. 0 for x < -87.3 (where fp32 turns subnormal; the callers add such terms to a
// log-sum-exp sum that is >= 1; CUDA's expf would give subnormals down to e^-103.97 there), +inf
// above 88.37 (2^128 overflows), NaN for NaN. The callers only pass x <= 0. Its error is checked through the
// loss against float64 (tests/sim_kernels/test_native_cpu_math.py).
SIM_INLINE v8f exp_vec(v8f x) {
  const v8f lo = v8f{} - 87.3f, hi = v8f{} + 88.37f, magic = v8f{} + 12582912.0f;
  v8f xc = x >= lo ? x : lo;  // NaN lanes become lo (no NaN reaches the int conversion); restored below
  xc = xc > hi ? hi : xc;
  const v8f kf = (xc * 1.44269504088896341f + magic) - magic;  // round to nearest
  v8f r = xc - kf * 0.693145751953125f;
  r = r - kf * 1.42860682030941723212e-06f;
  v8f e = v8f{} + 1.0f / 5040.0f;
  e = e * r + 1.0f / 720.0f;
  e = e * r + 1.0f / 120.0f;
  e = e * r + 1.0f / 24.0f;
  e = e * r + 1.0f / 6.0f;
  e = e * r + 0.5f;
  e = e * r + 1.0f;
  e = e * r + 1.0f;
  // kf is an integer in [-126, 128]; the shift is unsigned.
  const v8u32 bits = (v8u32)(__builtin_convertvector(kf, v8i) + 127) << 23;
  v8f scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  v8f y = e * scale;
  y = x < lo ? v8f{} : y;
  y = x > hi ? v8f{} + __builtin_inff() : y;
  return x != x ? x : y;
}

// Lanes [0, n) of the last vector of a row: the arrays of lse_terms and softmax are padded to a
// multiple of 8 (padded_len), so the last vector is loaded and stored whole and masked here (a
// scalar copy into a stack buffer cost a memcpy call and a store-forwarding stall per call).
SIM_INLINE v8f first_lanes(v8f v, int64_t n) {
  const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
  return lane < int32_t(n) ? v : v8f{};
}
constexpr int64_t padded_len(int64_t n) { return (n + 7) / 8 * 8; }

// Terms of a log-sum-exp around its max m: out[j] = exp(s[j] - m), exactly 1 where s[j] == m (so
// that s = m = +-inf gives 1, not exp(NaN)); returns their sum over j < n. The rules of
// OnlineLogSumExp (csrc/smooth_infonce.h), which the CUDA kernel uses. s and out hold
// padded_len(n) elements (the padding is read and written, and left out of the sum).
SIM_INLINE float lse_terms_body(const float* s, float m, float* out, int64_t n) {
  const v8f mv = v8f{} + m, one = v8f{} + 1.0f;
  v8f sum = {};
  for (int64_t j = 0; j < n; j += 8) {
    const v8f x = load_vec(s + j);
    const v8f t = x == mv ? one : exp_vec(x - mv);
    store_vec(out + j, t);
    sum += j + 8 <= n ? t : first_lanes(t, n - j);
  }
  return hsum(sum);
}
// Softmax weights out[j] = exp((s[j] - m) - log_sum), as OnlineLogSumExp::softmax; s and out padded
// as for lse_terms.
SIM_INLINE void softmax_body(const float* s, float m, float log_sum, float* out, int64_t n) {
  const v8f mv = v8f{} + m, lv = v8f{} + log_sum;
  for (int64_t j = 0; j < n; j += 8) store_vec(out + j, exp_vec((load_vec(s + j) - mv) - lv));
}

// ---- the two compilations and the run-time choice --------------------------------------------

// SIM_PRIMITIVE(name, (params), (args)): name_avx2 and name_base with one body, and name() that
// calls the one this processor runs.
#define SIM_PRIMITIVE(ret, name, params, args, ...)                          \
  SIM_AVX2 __attribute__((noinline)) ret name##_avx2 params { __VA_ARGS__; } \
  __attribute__((noinline)) ret name##_base params { __VA_ARGS__; }          \
  inline ret name params { return cpu_has_avx2_fma() ? name##_avx2 args : name##_base args; }

SIM_PRIMITIVE(void, dot_rows, (const float* p, const float* const* r, int64_t m, int64_t n, float* o), (p, r, m, n, o),
              dot_rows_body<float, float>(p, r, m, n, o))
SIM_PRIMITIVE(void, dot_rows, (const uint16_t* p, const uint16_t* const* r, int64_t m, int64_t n, float* o),
              (p, r, m, n, o), dot_rows_body<uint16_t, float>(p, r, m, n, o))
SIM_PRIMITIVE(void, dot_rows, (const double* p, const double* const* r, int64_t m, int64_t n, double* o),
              (p, r, m, n, o), dot_rows_body<double, double>(p, r, m, n, o))
SIM_PRIMITIVE(void, weighted_rows, (const float* a, const float* const* r, int64_t m, int64_t n, float* dp),
              (a, r, m, n, dp), weighted_rows_body<float, float>(a, r, m, n, dp))
SIM_PRIMITIVE(void, weighted_rows, (const float* a, const uint16_t* const* r, int64_t m, int64_t n, float* dp),
              (a, r, m, n, dp), weighted_rows_body<uint16_t, float>(a, r, m, n, dp))
SIM_PRIMITIVE(void, weighted_rows, (const double* a, const double* const* r, int64_t m, int64_t n, double* dp),
              (a, r, m, n, dp), weighted_rows_body<double, double>(a, r, m, n, dp))
SIM_PRIMITIVE(void, scatter_rows,
              (const float* a, const int64_t* rho, int64_t m, const float* p, float* y, int64_t ld, int64_t w),
              (a, rho, m, p, y, ld, w), scatter_rows_body<float, float>(a, rho, m, p, y, ld, w))
SIM_PRIMITIVE(void, scatter_rows,
              (const float* a, const int64_t* rho, int64_t m, const uint16_t* p, float* y, int64_t ld, int64_t w),
              (a, rho, m, p, y, ld, w), scatter_rows_body<uint16_t, float>(a, rho, m, p, y, ld, w))
SIM_PRIMITIVE(void, scatter_rows,
              (const double* a, const int64_t* rho, int64_t m, const double* p, double* y, int64_t ld, int64_t w),
              (a, rho, m, p, y, ld, w), scatter_rows_body<double, double>(a, rho, m, p, y, ld, w))
SIM_PRIMITIVE(float, lse_terms, (const float* s, float m, float* out, int64_t n), (s, m, out, n),
              return lse_terms_body(s, m, out, n))
SIM_PRIMITIVE(void, softmax, (const float* s, float m, float log_sum, float* out, int64_t n), (s, m, log_sum, out, n),
              softmax_body(s, m, log_sum, out, n))
#undef SIM_PRIMITIVE

// fp64: std::exp (the fp64 path is the tests' precision reference, not a speed target).
inline double lse_terms(const double* s, double m, double* out, int64_t n) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    out[j] = s[j] == m ? 1.0 : std::exp(s[j] - m);
    sum += out[j];
  }
  return sum;
}
inline void softmax(const double* s, double m, double log_sum, double* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = std::exp((s[j] - m) - log_sum);
}

}  // namespace
}  // namespace cpu
}  // namespace sim
