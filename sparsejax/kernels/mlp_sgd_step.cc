// Consecutive masked-MLP SGD steps for a whole population, on the CPU (an XLA FFI custom call):
// one call trains a hook-free chunk of steps, or a stretch of a hooked chunk without a mask
// event (up to train.HOOK_SEGMENT steps), or one step of a stretch with an event, so XLA runs
// nothing between the steps of a call.
//
// At every step, for every model p (independently, so NaNs never cross models):
//   forward  z_l = h_{l-1} W_l + b_l, h_l = relu(z_l) (the last layer is linear, one logit)
//   loss     mean binary cross-entropy with logits over the B examples (an output: the
//            trainer's per-epoch loss curve; computed beside the gradient, never feeding it)
//   backward dz_L = (sigmoid(z_L) - y) / B; gW_l = h_{l-1}^T dz_l; gb_l = sum_b dz_l;
//            dz_{l-1} = (dz_l W_l^T) * [z_{l-1} > 0]
//   update   d = (g + wd p) m; buf = mu buf + d; p = (p - lr_p buf) m   (PyTorch SGD, masked)
// Models are split into contiguous blocks run on XLA's intra-op thread pool; a block runs all the
// call's steps. Every loop over output units is an axpy over contiguous memory, so the compiler
// vectorises it without reassociating any sum. Layout per layer: W (P, I, O) row-major, b (P, O).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Layer {
  const float *w, *b, *mw, *mb, *kw, *kb;  // params, momentum, masks
  float *ow, *ob, *omw, *omb;              // outputs
  int64_t in, out;
};

// The keyed permutation of sparsejax/shuffle.py (4-round Feistel on 2^(2h) with cycle walking):
// must stay bit-identical to it (the tests compare the two trainers).
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; return x ^ (x >> 16);
}

inline uint32_t feistel(uint32_t v, const uint32_t* k, int h) {
  const uint32_t mask = (1u << h) - 1u;
  uint32_t left = v >> h, right = v & mask;
  for (int r = 0; r < 4; ++r) {
    const uint32_t t = right;
    right = left ^ (mix32(right ^ k[r]) & mask);
    left = t;
  }
  return (left << h) | right;
}

inline int64_t permute(uint32_t pos, const uint32_t* k, int h, uint32_t n) {
  uint32_t v = feistel(pos, k, h);
  while (v >= n) v = feistel(v, k, h);
  return v;
}

// sum_r a[r] * b[r] with 16 independent partial sums, so it vectorises without -ffast-math
inline float dot(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  float acc[16] = {0.f};
  int64_t r = 0;
  for (; r + 16 <= n; r += 16)
    for (int k = 0; k < 16; ++k) acc[k] += a[r + k] * b[r + k];
  float t = 0.f;
  for (; r < n; ++r) t += a[r] * b[r];
  for (int k = 0; k < 16; ++k) t += acc[k];
  return t;
}

// g[i, o] = sum_r h[i, r] dz[o, r] for all i, o; four outputs at a time share each load of h.
inline void grad_block(const float* __restrict__ h, const float* __restrict__ dz, int64_t I, int64_t O,
                       int64_t n, float* __restrict__ g) {
  for (int64_t i = 0; i < I; ++i) {
    const float* hi = h + i * n;
    int64_t o = 0;
    for (; o + 4 <= O; o += 4) {
      float a0[16] = {0.f}, a1[16] = {0.f}, a2[16] = {0.f}, a3[16] = {0.f};
      const float *d0 = dz + o * n, *d1 = d0 + n, *d2 = d1 + n, *d3 = d2 + n;
      int64_t r = 0;
      for (; r + 16 <= n; r += 16)
        for (int k = 0; k < 16; ++k) {
          const float hv = hi[r + k];
          a0[k] += hv * d0[r + k]; a1[k] += hv * d1[r + k]; a2[k] += hv * d2[r + k]; a3[k] += hv * d3[r + k];
        }
      float t0 = 0.f, t1 = 0.f, t2 = 0.f, t3 = 0.f;
      for (; r < n; ++r) { t0 += hi[r] * d0[r]; t1 += hi[r] * d1[r]; t2 += hi[r] * d2[r]; t3 += hi[r] * d3[r]; }
      for (int k = 0; k < 16; ++k) { t0 += a0[k]; t1 += a1[k]; t2 += a2[k]; t3 += a3[k]; }
      g[i * O + o] = t0; g[i * O + o + 1] = t1; g[i * O + o + 2] = t2; g[i * O + o + 3] = t3;
    }
    for (; o < O; ++o) g[i * O + o] = dot(hi, dz + o * n, n);
  }
}

inline float sum(const float* __restrict__ a, int64_t n) {
  float acc[16] = {0.f};
  int64_t r = 0;
  for (; r + 16 <= n; r += 16)
    for (int k = 0; k < 16; ++k) acc[k] += a[r + k];
  float t = 0.f;
  for (; r < n; ++r) t += a[r];
  for (int k = 0; k < 16; ++k) t += acc[k];
  return t;
}

constexpr int64_t RB = 64;
constexpr int64_t kMaxLayers = 32;  // examples per register block (four 16-lane vectors)

// out[:] = init + sum_k coef[k * stride] * rows[k][:] over n examples: accumulators stay in
// registers for a block of RB examples while the K rows stream through (one load per FMA).
inline void combine(float init, const float* __restrict__ coef, int64_t stride, const float* __restrict__ rows,
                    int64_t K, int64_t n, float* __restrict__ out) {
  int64_t r0 = 0;
  for (; r0 + RB <= n; r0 += RB) {
    float acc[RB];
    for (int64_t r = 0; r < RB; ++r) acc[r] = init;
    for (int64_t k = 0; k < K; ++k) {
      const float c = coef[k * stride];
      const float* row = rows + k * n + r0;
      for (int64_t r = 0; r < RB; ++r) acc[r] += c * row[r];
    }
    for (int64_t r = 0; r < RB; ++r) out[r0 + r] = acc[r];
  }
  for (int64_t r = r0; r < n; ++r) {
    float a = init;
    for (int64_t k = 0; k < K; ++k) a += coef[k * stride] * rows[k * n + r];
    out[r] = a;
  }
}

// PyTorch SGD on the unmasked coordinates: d = (g + wd p) k; buf = mu buf + d; p = (p - lr buf) k.
// The outputs may alias the inputs (the update is in place), so only g and k are restrict.
inline void sgd_update(const float* __restrict__ g, const float* p, const float* __restrict__ k, const float* buf,
                       float* p_out, float* buf_out, int64_t n, float lr, float mu, float wd) {
  for (int64_t j = 0; j < n; ++j) {
    const float pj = p[j];
    const float m = mu * buf[j] + (g[j] + wd * pj) * k[j];
    buf_out[j] = m;
    p_out[j] = (pj - lr * m) * k[j];
  }
}

// Activations are kept unit-major (units x B) so every inner loop runs over the B examples;
// hidden layers keep only their post-activations (ReLU(z) > 0 exactly where z > 0).
struct Data {
  const float* rows;       // the whole dataset, one row per example: x (I0 values), y, padding
  int64_t stride;          // floats per row (>= I0 + 1; a power of two, so a row never straddles a line)
  const uint32_t* keys;    // (P, 4) round keys of this step's epoch permutation, per model
  int64_t n, start;        // N and the first position of this step's minibatch
  int h;                   // Feistel half bits
  const int32_t* shared_idx = nullptr;  // lanes layout, one order for all: this step's B examples
};

// One step of model p with learning rate eta; returns its minibatch loss before the step.
float step_model(int64_t p, const std::vector<Layer>& L, const Data& D, float eta, int64_t B, float mu, float wd,
                 std::vector<float>& scratch) {
  const int64_t nl = static_cast<int64_t>(L.size());
  int64_t width = L[0].in, off = 0;
  int64_t zoff[kMaxLayers + 1];
  zoff[0] = 0;                          // the input, transposed (in_0 x B)
  off = L[0].in * B;
  for (int64_t l = 0; l < nl; ++l) { zoff[l + 1] = off; off += B * L[l].out; width = std::max({width, L[l].out, L[l].in}); }
  const int64_t d0 = off, d1 = d0 + B * width, gw = d1 + B * width;
  const int64_t yb = gw + width * width + width, need = yb + B;
  if (static_cast<int64_t>(scratch.size()) < need) scratch.resize(need);
  float* s = scratch.data();
  const int64_t I0 = L[0].in;
  float* yp = s + yb;
  const uint32_t* key = D.keys + 4 * p;
  for (int64_t r = 0; r < B; ++r) {  // gather this model's minibatch, transposed
    const int64_t idx = permute(static_cast<uint32_t>(D.start + r), key, D.h, static_cast<uint32_t>(D.n));
    for (int64_t i = 0; i < I0; ++i) s[i * B + r] = D.rows[idx * D.stride + i];
    yp[r] = D.rows[idx * D.stride + I0];
  }
  // forward: a_{l+1}[o, :] = relu(b[o] + sum_i W[i, o] a_l[i, :]); the logit stays linear
  for (int64_t l = 0; l < nl; ++l) {
    const int64_t I = L[l].in, O = L[l].out;
    const float* __restrict__ w = L[l].w + p * I * O;
    const float* __restrict__ b = L[l].b + p * O;
    const float* h = s + zoff[l];
    float* __restrict__ z = s + zoff[l + 1];
    for (int64_t o = 0; o < O; ++o) combine(b[o], w + o, O, h, I, B, z + o * B);
    if (l + 1 < nl)
      for (int64_t k = 0; k < O * B; ++k) z[k] = z[k] > 0.f ? z[k] : 0.f;
  }
  // d loss / d logit for the mean BCE with logits
  float* dz = s + d0;
  float* dprev = s + d1;
  const float* zl = s + zoff[nl];
  for (int64_t r = 0; r < B; ++r) dz[r] = (1.f / (1.f + std::exp(-zl[r])) - yp[r]) / static_cast<float>(B);
  float lsum = 0.f;  // the minibatch loss, as mlp.bce_with_logits: max(z, 0) - z y + log1p(e^-|z|)
  for (int64_t r = 0; r < B; ++r)
    lsum += std::max(zl[r], 0.f) - zl[r] * yp[r] + std::log1p(std::exp(-std::fabs(zl[r])));
  for (int64_t l = nl - 1; l >= 0; --l) {
    const Layer& ly = L[l];
    const int64_t I = ly.in, O = ly.out;
    const float* w = ly.w + p * I * O;  // updated in place below, after its last read
    const float* h = s + zoff[l];  // post-activation of the input units (the data for l = 0)
    float* __restrict__ g = s + gw;
    float* __restrict__ gb = g + I * O;
    for (int64_t o = 0; o < O; ++o) gb[o] = sum(dz + o * B, B);
    grad_block(h, dz, I, O, B, g);
    if (l > 0) {  // gradient to the previous layer, with this layer's weights before the update
      for (int64_t i = 0; i < I; ++i) {
        float* __restrict__ pi = dprev + i * B;
        combine(0.f, w + i * O, 1, dz, O, B, pi);
        const float* hi = h + i * B;
        for (int64_t r = 0; r < B; ++r) pi[r] = hi[r] > 0.f ? pi[r] : 0.f;
      }
    }
    // masked SGD with momentum and weight decay, weights then biases
    sgd_update(g, w, ly.kw + p * I * O, ly.mw + p * I * O, ly.ow + p * I * O, ly.omw + p * I * O, I * O, eta, mu, wd);
    sgd_update(gb, ly.b + p * O, ly.kb + p * O, ly.mb + p * O, ly.ob + p * O, ly.omb + p * O, O, eta, mu, wd);
    std::swap(dz, dprev);
  }
  return lsum / static_cast<float>(B);
}

// ---------------------------------------------------------------------------------------------
// Models in SIMD lanes, for small widths.
//
// At the search's shapes ((3,3,3) has 27 weights) one model's step is a few hundred tiny loops,
// so the per-model path above is bound by loop overhead and scalar work (the data order, the
// gather, exp), not arithmetic. Here kLanes models share one vector register: every per-model
// scalar operation is one vector operation, each lane gathers its own model's examples, and
// nothing ever crosses lanes (no horizontal sums), so a model's numbers do not depend on which
// models share its group (padding lanes of the last group compute on zeros and are discarded).
// A group copies its parameters, momentum and masks into lane-interleaved scratch once per call
// (measured: copying them every step cost ~9 % of a (3,3,3) step), and at every step computes
// its lanes' example indices for the whole minibatch (lane_indices), loads each lane's example
// rows (x and y packed in one row, so one cache line per example), runs the B examples (two side
// by side up to width kPairMaxWidth; every gradient entry still adds example r's term before
// r+1's, so the sums are those of one example at a time) and applies the masked SGD update;
// then copies back. When the whole population shares one data order, the caller computes its
// example indices once and every group reads them. Shapes used by the search are compiled with their
// layer sizes as constants (fully unrolled); any other shape up to kLanesMaxWidth runs the same
// code with runtime sizes. (Measured on a 2-core Zen 4, (3,3,3), P = 4,096: the index walk and
// the row loads are about a third of the step, the arithmetic half; benchmarks/RESULTS.md.)
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
constexpr int kLanesMaxWidth = 32;  // keep in sync with cpu.py LANES_MAX_WIDTH
constexpr int kLanesMaxLayers = 8;  // keep in sync with cpu.py LANES_MAX_LAYERS
constexpr int kLanesMaxUnits = 2 * kLanesMaxWidth + (kLanesMaxLayers - 1) * kLanesMaxWidth;
constexpr int kPairMaxWidth = 8;  // up to this width two examples run side by side (registers)

typedef float vf __attribute__((vector_size(4 * kLanes)));
typedef int32_t vi __attribute__((vector_size(4 * kLanes)));
typedef uint32_t vu __attribute__((vector_size(4 * kLanes)));

inline vf splat(float a) { return vf{} + a; }
inline vu splatu(uint32_t a) { return vu{} + a; }

inline vu mix32v(vu x) {
  x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; return x ^ (x >> 16);
}

inline vu feistel_v(vu v, const vu* k, int h, uint32_t mask) {
  vu left = v >> h, right = v & mask;
  for (int r = 0; r < 4; ++r) {
    const vu t = right;
    right = left ^ (mix32v(right ^ k[r]) & mask);
    left = t;
  }
  return (left << h) | right;
}

inline bool any_lane(vi m) {  // m: 0 or -1 per lane
#if defined(__AVX512F__)
  return _mm512_movepi32_mask((__m512i)m) != 0;
#elif defined(__AVX2__)
  return _mm256_movemask_ps((__m256)m) != 0;
#else
  int r = 0;
  for (int k = 0; k < kLanes; ++k) r |= m[k];
  return r != 0;
#endif
}

// exp lane-wise: Cephes' single-precision range reduction and polynomial (within ~2 ulp of
// the correctly rounded value on the clamped range); the input is clamped to [-87.3, 88.3] so
// 2^n stays a normal float, and a NaN stays NaN (the comparisons are false for it).
inline vf exp_v(vf x) {
  x = x > splat(88.3f) ? splat(88.3f) : x;
  x = x < splat(-87.3f) ? splat(-87.3f) : x;
  const vf t = x * 1.44269504088896341f;
  const vi n = __builtin_convertvector(t + (t >= splat(0.f) ? splat(0.5f) : splat(-0.5f)), vi);
  const vf nf = __builtin_convertvector(n, vf);
  x = x - nf * 0.693359375f;
  x = x + nf * 2.12194440e-4f;
  const vf z = x * x;
  vf y = splat(1.9875691500E-4f);
  y = y * x + 1.3981999507E-3f;
  y = y * x + 8.3334519073E-3f;
  y = y * x + 4.1665795894E-2f;
  y = y * x + 1.6666665459E-1f;
  y = y * x + 5.0000001201E-1f;
  y = y * z + x + 1.0f;
  const vi bits = (n + 127) << 23;
  return y * (vf)bits;  // 2^n, built in the exponent field
}

// log lane-wise for x >= 1 (x = m 2^e, m in [sqrt(1/2), sqrt(2)); Cephes' single-precision
// polynomial in m - 1): only the loss output uses it, once per minibatch (LaneLoss).
inline vf log_v(vf x) {
  vi e = (((vi)x) >> 23) - 127;
  vf m = (vf)((((vi)x) & 0x007FFFFF) | 0x3F800000);  // the mantissa in [1, 2)
  const vi big = (vi)(m > splat(1.41421356f));
  m = big ? m * 0.5f : m;
  e = big ? e + 1 : e;
  const vf f = m - 1.f, z = f * f, ef = __builtin_convertvector(e, vf);
  vf y = splat(7.0376836292E-2f);
  y = y * f - 1.1514610310E-1f;
  y = y * f + 1.1676998740E-1f;
  y = y * f - 1.2420140846E-1f;
  y = y * f + 1.4249322787E-1f;
  y = y * f - 1.6668057665E-1f;
  y = y * f + 2.0000714765E-1f;
  y = y * f - 2.4999993993E-1f;
  y = y * f + 3.3333331174E-1f;
  y = y * f * z - 2.12194440e-4f * ef - 0.5f * z;
  return f + y + 0.693359375f * ef;
}

// Each lane's minibatch loss (an output only; the gradient never reads it): BCE with logits
// from the sigmoid's denominator den = 1 + e^-z is log(den) + z (1 - y), and below z = -80
// (where exp_v's clamp bites) softplus(z) is 0 to float precision, so -z y. The logs are summed
// as the log of one product of the den's, held as a mantissa in [1, 2) and a binary exponent so
// it never overflows (den < 2^116 here): one log per minibatch instead of one per example
// (measured ~8 % of a (3,3,3) step). Equal to the per-example sum up to float rounding; a NaN
// logit still makes the loss NaN (through lin).
struct LaneLoss {
  vf lin = vf{};      // sum of z (1 - y), or of -z y far left
  vf m = splat(1.f);  // product of the den's: mantissa
  vi e = vi{};        // and exponent
  void add(vf z, vf y, vf den) {
    const vi far = (vi)(z < splat(-80.f));
    lin += far ? -z * y : z * (1.f - y);
    const vi bits = (vi)(m * (far ? splat(1.f) : den));
    e += (bits >> 23) - 127;
    m = (vf)((bits & 0x007FFFFF) | 0x3F800000);
  }
  vf total() const {  // ln 2 split as in log_v, so e * 0.693359375 is exact
    const vf ef = __builtin_convertvector(e, vf);
    return lin + (log_v(m) + ef * 0.693359375f - ef * 2.12194440e-4f);
  }
};

inline vf gather(const float* base, vi idx) {
#if defined(__AVX512F__)
  return (vf)_mm512_i32gather_ps((__m512i)idx, base, 4);
#elif defined(__AVX2__)
  return (vf)_mm256_i32gather_ps(base, (__m256i)idx, 4);
#else
  vf r;
  for (int k = 0; k < kLanes; ++k) r[k] = base[idx[k]];
  return r;
#endif
}

#if defined(__AVX512F__)
// cols[c] lane ln = rows[4 * idx[ln] + c]: 16 rows of 4 floats, one load each, transposed (the
// rows of lanes k, k+4, k+8, k+12 share a register; a 4x4 transpose per 128-bit chunk).
inline void rows4_to_lanes(const float* rows, const int32_t* idx, vf* cols) {
  __m512 z[4];
  for (int k = 0; k < 4; ++k) {
    __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(rows + 4 * static_cast<int64_t>(idx[k])));
    v = _mm512_insertf32x4(v, _mm_loadu_ps(rows + 4 * static_cast<int64_t>(idx[k + 4])), 1);
    v = _mm512_insertf32x4(v, _mm_loadu_ps(rows + 4 * static_cast<int64_t>(idx[k + 8])), 2);
    v = _mm512_insertf32x4(v, _mm_loadu_ps(rows + 4 * static_cast<int64_t>(idx[k + 12])), 3);
    z[k] = v;
  }
  const __m512 t0 = _mm512_unpacklo_ps(z[0], z[1]), t1 = _mm512_unpackhi_ps(z[0], z[1]);
  const __m512 t2 = _mm512_unpacklo_ps(z[2], z[3]), t3 = _mm512_unpackhi_ps(z[2], z[3]);
  cols[0] = (vf)_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  cols[1] = (vf)_mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  cols[2] = (vf)_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  cols[3] = (vf)_mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
}
#endif

// A shape known at compile time: layer sizes D = (in, hidden..., out).
template <int... D>
struct Fixed {
  static constexpr int d[] = {D...};
  static constexpr int nl() { return sizeof...(D) - 1; }
  static constexpr int dim(int l) { return d[l]; }
  static constexpr int poff(int l) {  // start of layer l's weights (I*O) then biases (O)
    int s = 0;
    for (int m = 0; m < l; ++m) s += d[m] * d[m + 1] + d[m + 1];
    return s;
  }
  static constexpr int uoff(int l) {  // start of layer l's units in the activation array
    int s = 0;
    for (int m = 0; m < l; ++m) s += d[m];
    return s;
  }
  static constexpr int total() { return poff(nl()); }
  static constexpr int max_width() {
    int m = 0;
    for (int l = 0; l <= nl(); ++l) m = d[l] > m ? d[l] : m;
    return m;
  }
};

// A shape known at run time (any depth up to kLanesMaxLayers, widths up to kLanesMaxWidth).
struct Dynamic {
  int n, d[kLanesMaxLayers + 1], po[kLanesMaxLayers + 1], uo[kLanesMaxLayers + 1];
  int nl() const { return n; }
  int dim(int l) const { return d[l]; }
  int poff(int l) const { return po[l]; }
  int uoff(int l) const { return uo[l]; }
  int total() const { return po[n]; }
  int max_width() const {
    int m = 0;
    for (int l = 0; l <= n; ++l) m = std::max(m, d[l]);
    return m;
  }
};

struct LaneScratch {
  std::vector<vf> p, m, k, g, xy;  // parameters, momentum, masks, gradients; inputs and labels
  std::vector<vi> idx;                  // example index per position, one lane per model
  std::vector<uint32_t> pend_v, pend_s;  // the cycle walk's queue: values and (position, lane) slots
};

// idx[r] lane ln = model ln's example at position start + r of its permutation (exactly
// permute() above). Every (position, lane) is evaluated once; only those that land outside
// [0, N) walk on, and with AVX-512 they walk from a queue packed 16 to a vector, so no lane
// waits for the slowest lane of its group (1.31 evaluations per position instead of ~2.9).
inline void lane_indices(const vu* key, const Data& D, int64_t B, LaneScratch& sc) {
  const uint32_t hmask = (1u << D.h) - 1u, n = static_cast<uint32_t>(D.n);
  sc.idx.resize(B);
  vi* out = sc.idx.data();
#if defined(__AVX512F__)
  sc.pend_v.resize(B * kLanes + kLanes);
  sc.pend_s.resize(B * kLanes + kLanes);
  uint32_t *pv = sc.pend_v.data(), *ps = sc.pend_s.data();
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i nv = _mm512_set1_epi32(static_cast<int>(n));
  int64_t np = 0;
  for (int64_t r = 0; r < B; ++r) {
    const vu v = feistel_v(splatu(static_cast<uint32_t>(D.start + r)), key, D.h, hmask);
    out[r] = (vi)v;
    const __mmask16 far = _mm512_cmpge_epu32_mask((__m512i)v, nv);
    if (far) {
      const int c = __builtin_popcount(far);
      const __mmask16 head = static_cast<__mmask16>((1u << c) - 1u);
      _mm512_mask_storeu_epi32(pv + np, head, _mm512_maskz_compress_epi32(far, (__m512i)v));
      const __m512i slot = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int>(r * kLanes)));
      _mm512_mask_storeu_epi32(ps + np, head, _mm512_maskz_compress_epi32(far, slot));
      np += c;
    }
  }
  int32_t* flat = reinterpret_cast<int32_t*>(out);
  const __m512i lane_bits = _mm512_set1_epi32(kLanes - 1);
  while (np > 0) {  // one more evaluation for everything queued; what is still outside re-queues
    int64_t nq = 0;
    for (int64_t j = 0; j < np; j += kLanes) {
      const int64_t c = std::min<int64_t>(kLanes, np - j);
      const __mmask16 live = static_cast<__mmask16>(c == kLanes ? 0xFFFFu : (1u << c) - 1u);
      const __m512i v = _mm512_maskz_loadu_epi32(live, pv + j);
      const __m512i slot = _mm512_maskz_loadu_epi32(live, ps + j);
      const __m512i lane = _mm512_and_si512(slot, lane_bits);
      vu k[4];
      for (int q = 0; q < 4; ++q) k[q] = (vu)_mm512_permutexvar_epi32(lane, (__m512i)key[q]);
      const __m512i w = (__m512i)feistel_v((vu)v, k, D.h, hmask);
      const __mmask16 far = _mm512_cmpge_epu32_mask(w, nv) & live;
      // finished walks go to their slots with one scatter (measured ~3 % of a (3,3,3) step
      // faster than scalar stores, whose loop exit the branch predictor misses)
      _mm512_mask_i32scatter_epi32(flat, static_cast<__mmask16>(live & ~far), slot, w, 4);
      if (far) {  // written at or before j: the block [j, j + 16) is already read
        const int cf = __builtin_popcount(far);
        const __mmask16 head = static_cast<__mmask16>((1u << cf) - 1u);
        _mm512_mask_storeu_epi32(pv + nq, head, _mm512_maskz_compress_epi32(far, w));
        _mm512_mask_storeu_epi32(ps + nq, head, _mm512_maskz_compress_epi32(far, slot));
        nq += cf;
      }
    }
    np = nq;
  }
#else
  for (int64_t r = 0; r < B; ++r) {  // the group walks until its slowest lane is inside [0, N)
    vu v = feistel_v(splatu(static_cast<uint32_t>(D.start + r)), key, D.h, hmask);
    for (vi o; any_lane(o = (vi)(v >= splatu(n)));) {
      const vu w = feistel_v(v, key, D.h, hmask);
      v = o ? w : v;
    }
    out[r] = (vi)v;
  }
#endif
}

// Forward and backward pass of examples r..r+EX-1, their gradients added to G in example order
// (each entry gets example r's term, then r+1's: the sums of one example at a time). Two
// independent examples side by side give the core two dependency chains to overlap.
template <int EX, class S>
inline void examples(const S& s, const vf* X, const vf* Y, int64_t B, int64_t r, const vf* W, vf* G, float invB,
                     LaneLoss& loss) {
  const int nl = s.nl(), I0 = s.dim(0);
  vf a[EX][kLanesMaxUnits];  // every unit's post-activation (the inputs first, the logit last)
  for (int e = 0; e < EX; ++e)
    for (int i = 0; i < I0; ++i) a[e][i] = X[i * B + r + e];
#pragma GCC unroll 16
  for (int l = 0; l < nl; ++l) {
    const int I = s.dim(l), O = s.dim(l + 1), u = s.uoff(l), po = s.poff(l);
    for (int o = 0; o < O; ++o)
      for (int e = 0; e < EX; ++e) {
        vf z = W[po + I * O + o];
        for (int i = 0; i < I; ++i) z += a[e][u + i] * W[po + i * O + o];
        if (l + 1 < nl) z = z < splat(0.f) ? splat(0.f) : z;  // ReLU; a NaN stays NaN
        a[e][u + I + o] = z;
      }
  }
  // d loss / d logit of the mean BCE with logits
  vf dz[EX][kLanesMaxWidth], dp[EX][kLanesMaxWidth];
  for (int e = 0; e < EX; ++e) {
    const vf den = 1.f + exp_v(-a[e][s.uoff(nl)]);
    dz[e][0] = (1.f / den - Y[r + e]) * invB;
    loss.add(a[e][s.uoff(nl)], Y[r + e], den);
  }
#pragma GCC unroll 16
  for (int l = nl - 1; l >= 0; --l) {
    const int I = s.dim(l), O = s.dim(l + 1), u = s.uoff(l), po = s.poff(l);
    for (int o = 0; o < O; ++o)
      for (int e = 0; e < EX; ++e) G[po + I * O + o] += dz[e][o];
    for (int i = 0; i < I; ++i)
      for (int o = 0; o < O; ++o)
        for (int e = 0; e < EX; ++e) G[po + i * O + o] += a[e][u + i] * dz[e][o];
    if (l > 0) {
      for (int e = 0; e < EX; ++e) {
        for (int i = 0; i < I; ++i) {
          vf t = vf{};
          for (int o = 0; o < O; ++o) t += W[po + i * O + o] * dz[e][o];
          dp[e][i] = a[e][u + i] > splat(0.f) ? t : splat(0.f);
        }
        for (int i = 0; i < I; ++i) dz[e][i] = dp[e][i];
      }
    }
  }
}

// Everything one call needs: `steps` consecutive steps of the whole population, steps
// first .. first + steps - 1 of a run with `spe` steps per epoch. Step t trains on positions
// (t % spe) B .. + B of its epoch's permutation; its epoch, relative to the first step's, picks
// the round keys and learning rates (one row per epoch the call touches) and the loss column.
struct Call {
  std::vector<Layer> L;     // the first step reads the inputs ...
  std::vector<Layer> Lout;  // ... later steps the outputs, which hold the state so far
  const float* rows;
  int64_t stride, n;
  int h;
  const uint32_t* keys;  // (E, P, 4)
  const float* lr;       // (E, P)
  float* loss;           // (P, C): each step adds its minibatch loss at column col0 + its relative epoch
  int64_t C, col0, first, steps, spe, B, P;
  float mu, wd;
  std::vector<int32_t> shared_idx;  // lanes layout, one order for all: (steps, B) example indices
  int64_t epoch_of(int64_t t) const { return (first + t) / spe - first / spe; }
  Data data(int64_t t) const {
    const int64_t e = epoch_of(t);
    return Data{rows, stride, keys + e * P * 4, n, ((first + t) % spe) * B, h,
                shared_idx.empty() ? nullptr : shared_idx.data() + t * B};
  }
};

// All steps of the models [g0, g0 + kLanes) (lanes past P are padding): the group's state stays
// lane-interleaved in scratch from the first step to the last.
template <class S>
void step_group(const S& s, int64_t g0, const Call& c, LaneScratch& sc) {
  const int nl = s.nl(), T = s.total(), I0 = s.dim(0);
  const int64_t P = c.P, B = c.B;
  const std::vector<Layer>& L = c.L;
  sc.p.assign(T, vf{}); sc.m.assign(T, vf{}); sc.k.assign(T, vf{}); sc.g.resize(T);
  sc.xy.resize((I0 + 1) * B);
  float *pp = reinterpret_cast<float*>(sc.p.data()), *pm = reinterpret_cast<float*>(sc.m.data()),
        *pk = reinterpret_cast<float*>(sc.k.data());
  const int lanes = static_cast<int>(std::min<int64_t>(kLanes, P - g0));
  for (int ln = 0; ln < lanes; ++ln) {  // gather the group's state into lane-interleaved scratch
    const int64_t p = g0 + ln;
#pragma GCC unroll 16
    for (int l = 0; l < nl; ++l) {
      const int IO = s.dim(l) * s.dim(l + 1), O = s.dim(l + 1), o0 = s.poff(l);  // constants for a Fixed shape
      for (int64_t j = 0; j < IO; ++j) {
        pp[(o0 + j) * kLanes + ln] = L[l].w[p * IO + j];
        pm[(o0 + j) * kLanes + ln] = L[l].mw[p * IO + j];
        pk[(o0 + j) * kLanes + ln] = L[l].kw[p * IO + j];
      }
      for (int64_t j = 0; j < O; ++j) {
        pp[(o0 + IO + j) * kLanes + ln] = L[l].b[p * O + j];
        pm[(o0 + IO + j) * kLanes + ln] = L[l].mb[p * O + j];
        pk[(o0 + IO + j) * kLanes + ln] = L[l].kb[p * O + j];
      }
    }
  }
  vf eta = vf{};
  vu key[4] = {};
  const float invB = 1.f / static_cast<float>(B);
  for (int64_t t = 0, epoch = -1; t < c.steps; ++t) {
    const Data D = c.data(t);
    if (c.epoch_of(t) != epoch) {  // this epoch's learning rates and round keys, per lane
      epoch = c.epoch_of(t);
      for (int ln = 0; ln < lanes; ++ln) {
        eta[ln] = c.lr[epoch * P + g0 + ln];
        for (int r = 0; r < 4; ++r) key[r][ln] = D.keys[4 * (g0 + ln) + r];
      }
    }
    // each lane's minibatch: positions start..start+B of its own permutation, gathered; when the
    // whole population shares one order (equal keys: a shared data_seed), every lane reads the
    // same examples, broadcast
    vf* xy = sc.xy.data();
    if (D.shared_idx != nullptr) {
      for (int64_t r = 0; r < B; ++r) {
        const float* row = D.rows + D.shared_idx[r] * D.stride;
        for (int i = 0; i <= I0; ++i) xy[i * B + r] = splat(row[i]);  // x, then y
      }
    } else {
      lane_indices(key, D, B, sc);
      const vi* V = sc.idx.data();
      const int stride = static_cast<int>(D.stride);
#if defined(__AVX512F__)
      if (stride == 4) {  // each lane's row loaded whole (16 independent loads) and transposed
        const int32_t* idx = reinterpret_cast<const int32_t*>(V);
        for (int64_t r = 0; r < B; ++r) {
          vf cols[4];
          rows4_to_lanes(D.rows, idx + r * kLanes, cols);
          for (int i = 0; i <= I0; ++i) xy[i * B + r] = cols[i];  // x, then y
        }
      } else
#endif
      for (int64_t r = 0; r < B; ++r) {  // independent gathers, one row (one cache line) per lane
        const vi at = V[r] * stride;
        for (int i = 0; i <= I0; ++i) xy[i * B + r] = gather(D.rows + i, at);  // x, then y
      }
    }
    const vf* X = xy;
    const vf* Y = X + I0 * B;
    const vf* W = sc.p.data();
    vf* G = sc.g.data();
    for (int j = 0; j < T; ++j) G[j] = vf{};
    LaneLoss lsum;  // the minibatch loss of every lane (an output only)
    int64_t r = 0;
    if (s.max_width() <= kPairMaxWidth)
      for (; r + 2 <= B; r += 2) examples<2>(s, X, Y, B, r, W, G, invB, lsum);
    for (; r < B; ++r) examples<1>(s, X, Y, B, r, W, G, invB, lsum);
    const vf ltot = lsum.total();
    // masked SGD with momentum and weight decay
    vf* Pv = sc.p.data();
    vf* Mv = sc.m.data();
    const vf* Kv = sc.k.data();
    for (int j = 0; j < T; ++j) {
      const vf p = Pv[j];
      const vf m = c.mu * Mv[j] + (G[j] + c.wd * p) * Kv[j];
      Mv[j] = m;
      Pv[j] = (p - eta * m) * Kv[j];
    }
    for (int ln = 0; ln < lanes; ++ln) c.loss[(g0 + ln) * c.C + c.col0 + epoch] += ltot[ln] / static_cast<float>(B);
  }
  for (int ln = 0; ln < lanes; ++ln) {  // back to the (P, I, O) layout
    const int64_t p = g0 + ln;
#pragma GCC unroll 16
    for (int l = 0; l < nl; ++l) {
      const int IO = s.dim(l) * s.dim(l + 1), O = s.dim(l + 1), o0 = s.poff(l);  // constants for a Fixed shape
      for (int64_t j = 0; j < IO; ++j) {
        L[l].ow[p * IO + j] = pp[(o0 + j) * kLanes + ln];
        L[l].omw[p * IO + j] = pm[(o0 + j) * kLanes + ln];
      }
      for (int64_t j = 0; j < O; ++j) {
        L[l].ob[p * O + j] = pp[(o0 + IO + j) * kLanes + ln];
        L[l].omb[p * O + j] = pm[(o0 + IO + j) * kLanes + ln];
      }
    }
  }
}

// All steps of model p, one model at a time.
void steps_model(int64_t p, const Call& c, std::vector<float>& scratch) {
  for (int64_t t = 0; t < c.steps; ++t) {
    const int64_t e = c.epoch_of(t);
    c.loss[p * c.C + c.col0 + e] +=
        step_model(p, t == 0 ? c.L : c.Lout, c.data(t), c.lr[e * c.P + p], c.B, c.mu, c.wd, scratch);
  }
}

// The groups' function for this population's shape: a compiled-in shape when there is one.
using GroupFn = void (*)(int64_t, const Call&, LaneScratch&, const Dynamic&);

template <class S>
void fixed_group(int64_t g0, const Call& c, LaneScratch& sc, const Dynamic&) {
  step_group(S{}, g0, c, sc);
}

void dynamic_group(int64_t g0, const Call& c, LaneScratch& sc, const Dynamic& s) { step_group(s, g0, c, sc); }

template <int... D>
bool is(const Dynamic& s) {
  constexpr int d[] = {D...};
  if (s.n != static_cast<int>(sizeof...(D)) - 1) return false;
  for (int l = 0; l <= s.n; ++l)
    if (s.d[l] != d[l]) return false;
  return true;
}

GroupFn pick_group_fn(const Dynamic& s) {
  if (is<2, 3, 3, 3, 1>(s)) return fixed_group<Fixed<2, 3, 3, 3, 1>>;
  if (is<2, 3, 2, 2, 1>(s)) return fixed_group<Fixed<2, 3, 2, 2, 1>>;
  if (is<2, 6, 3, 2, 1>(s)) return fixed_group<Fixed<2, 6, 3, 2, 1>>;
  if (is<2, 7, 3, 3, 1>(s)) return fixed_group<Fixed<2, 7, 3, 3, 1>>;
  if (is<2, 16, 16, 16, 1>(s)) return fixed_group<Fixed<2, 16, 16, 16, 1>>;
  if (is<2, 4, 4, 4, 1>(s)) return fixed_group<Fixed<2, 4, 4, 4, 1>>;  // phase 1's smallest true-shape bucket
  return dynamic_group;
}

// args: rows (N,S) = x_all (N,I0), y_all, padding; keys (E,P,4) u32; ctl (2) s32 = the first
//       step of the run this call trains and the loss column of its epoch; lr (E,P); loss (P,C);
//       then per layer w, b, mw, mb, kw, kb.  rets: per layer w, b, mw, mb, then the loss (P,C)
//       (the input plus each step's mean minibatch loss before the step, at its epoch's column).
//       Attrs batch = B, steps, steps_per_epoch, layout = 0 (one model at a time) or 1 (models
//       in SIMD lanes).
ffi::Error StepImpl(ffi::ThreadPool pool, ffi::RemainingArgs args, ffi::RemainingRets rets, float mu, float wd,
                    int64_t B, int64_t layout, int64_t steps, int64_t spe) {
  auto rows = args.get<ffi::Buffer<ffi::F32>>(0);
  auto keys = args.get<ffi::Buffer<ffi::U32>>(1);
  auto ctl = args.get<ffi::Buffer<ffi::S32>>(2);
  auto lr = args.get<ffi::Buffer<ffi::F32>>(3);
  auto loss_in = args.get<ffi::Buffer<ffi::F32>>(4);
  if (!rows || !keys || !ctl || !lr || !loss_in)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "expected rows f32, keys u32, ctl s32, lr f32, loss f32");
  const auto xd = rows->dimensions();
  const auto kd = keys->dimensions();
  const auto ld = lr->dimensions();
  const auto cd = loss_in->dimensions();
  if (xd.size() != 2 || kd.size() != 3 || kd[2] != 4 || ld.size() != 2 || ld[0] != kd[0] || ld[1] != kd[1] ||
      cd.size() != 2 || cd[0] != kd[1] || ctl->element_count() != 2)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "rows must be (N, S), keys (E, P, 4), lr (E, P), loss (P, C), ctl (2)");
  const int64_t E = kd[0], P = kd[1], N = xd[0], S = xd[1], C = cd[1];
  const int64_t first = ctl->typed_data()[0], col0 = ctl->typed_data()[1];
  if (steps < 1 || spe < 1 || B < 1 || first < 0 || spe * B > N)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "need steps, steps_per_epoch, batch >= 1, first step >= 0, "
                                                        "steps_per_epoch * batch <= N");
  const int64_t last_epoch = (first + steps - 1) / spe - first / spe;
  if (last_epoch >= E || col0 < 0 || col0 + last_epoch >= C)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "keys, lr or loss have fewer epochs than the steps touch");
  int h = 1;
  while ((int64_t{1} << (2 * h)) < N) ++h;
  const int64_t A0 = 5;
  if ((args.size() - A0) % 6 != 0 || (rets.size() - 1) * 6 != (args.size() - A0) * 4)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "expected 6 inputs and 4 outputs per layer, then the loss");
  const int64_t nl = (args.size() - A0) / 6;
  if (nl < 1 || nl > kMaxLayers) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "1 to 32 layers supported");
  std::vector<Layer> L(nl);
  for (int64_t l = 0; l < nl; ++l) {
    ffi::ErrorOr<ffi::Buffer<ffi::F32>> in[6] = {
        args.get<ffi::Buffer<ffi::F32>>(A0 + 0 + 6 * l), args.get<ffi::Buffer<ffi::F32>>(A0 + 1 + 6 * l),
        args.get<ffi::Buffer<ffi::F32>>(A0 + 2 + 6 * l), args.get<ffi::Buffer<ffi::F32>>(A0 + 3 + 6 * l),
        args.get<ffi::Buffer<ffi::F32>>(A0 + 4 + 6 * l), args.get<ffi::Buffer<ffi::F32>>(A0 + 5 + 6 * l)};
    ffi::ErrorOr<ffi::Result<ffi::Buffer<ffi::F32>>> out[4] = {
        rets.get<ffi::Buffer<ffi::F32>>(4 * l), rets.get<ffi::Buffer<ffi::F32>>(4 * l + 1),
        rets.get<ffi::Buffer<ffi::F32>>(4 * l + 2), rets.get<ffi::Buffer<ffi::F32>>(4 * l + 3)};
    for (auto& a : in) if (!a) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "layer inputs must be f32");
    for (auto& a : out) if (!a) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "layer outputs must be f32");
    const auto wd_ = in[0]->dimensions();
    if (wd_.size() != 3 || wd_[0] != P) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "w must be (P, I, O)");
    L[l] = Layer{in[0]->typed_data(), in[1]->typed_data(), in[2]->typed_data(), in[3]->typed_data(),
                 in[4]->typed_data(), in[5]->typed_data(), (*out[0])->typed_data(), (*out[1])->typed_data(),
                 (*out[2])->typed_data(), (*out[3])->typed_data(), wd_[1], wd_[2]};
  }
  auto loss = rets.get<ffi::Buffer<ffi::F32>>(4 * nl);
  if (!loss || (*loss)->element_count() != P * C)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "the loss output must be f32 (P, C)");
  // Layout 1 runs models in SIMD lanes (small widths only), layout 0 one model at a time.
  Dynamic shape{};
  if (layout == 1) {
    if (nl > kLanesMaxLayers) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "lanes layout: at most 8 layers");
    shape.n = static_cast<int>(nl);
    shape.po[0] = shape.uo[0] = 0;
    for (int64_t l = 0; l < nl; ++l) {
      if (L[l].in > kLanesMaxWidth || L[l].out > kLanesMaxWidth)
        return ffi::Error(ffi::ErrorCode::kInvalidArgument, "lanes layout: widths up to 32 only");
      if (l > 0 && L[l].in != L[l - 1].out) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "layer sizes do not chain");
      shape.d[l] = static_cast<int>(L[l].in);
      shape.d[l + 1] = static_cast<int>(L[l].out);
      shape.po[l + 1] = shape.po[l] + static_cast<int>(L[l].in * L[l].out + L[l].out);
      shape.uo[l + 1] = shape.uo[l] + static_cast<int>(L[l].in);
    }
    if (N * S >= (int64_t{1} << 31)) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "lanes layout: dataset too large");
  } else if (layout != 0) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "layout must be 0 (models) or 1 (lanes)");
  }
  if (S < L[0].in + 1) return ffi::Error(ffi::ErrorCode::kInvalidArgument, "rows must hold x then y: S >= I0 + 1");
  // Blocks of models (layout 0) or of lane groups (layout 1) are claimed from a shared counter
  // by the calling thread and by helper tasks on XLA's pool; a block runs all the call's steps.
  // The caller works too and waits only for claimed blocks to finish, so it never deadlocks when
  // the pool is busy (several devices); a task that starts late finds no block left and touches
  // nothing but the heap state it co-owns.
  struct Shared {
    Call c;
    int64_t block, n_blocks, layout;
    Dynamic shape;
    GroupFn group;
    std::atomic<int64_t> next{0}, done{0};
  };
  auto st = std::make_shared<Shared>();
  Call& c = st->c;
  c.L = L;
  c.Lout = L;
  for (Layer& ly : c.Lout) { ly.w = ly.ow; ly.b = ly.ob; ly.mw = ly.omw; ly.mb = ly.omb; }
  c.rows = rows->typed_data(); c.stride = S; c.n = N; c.h = h;
  c.keys = keys->typed_data(); c.lr = lr->typed_data(); c.loss = (*loss)->typed_data();
  c.C = C; c.col0 = col0; c.first = first; c.steps = steps; c.spe = spe; c.B = B; c.P = P; c.mu = mu; c.wd = wd;
  if (c.loss != loss_in->typed_data()) std::copy_n(loss_in->typed_data(), P * C, c.loss);
  st->layout = layout; st->shape = shape;
  st->group = layout == 1 ? pick_group_fn(shape) : nullptr;
  if (layout == 1) {  // every model on one data order (equal keys: a shared data_seed): its indices once
    const uint32_t* k = c.keys;
    bool one_order = true;
    for (int64_t e = 0; e <= last_epoch && one_order; ++e)
      for (int64_t p = 1; p < P && one_order; ++p)
        for (int r = 0; r < 4; ++r) one_order = one_order && k[(e * P + p) * 4 + r] == k[e * P * 4 + r];
    if (one_order) {
      c.shared_idx.resize(steps * B);
      for (int64_t t = 0; t < steps; ++t) {
        const Data D = c.data(t);
        for (int64_t r = 0; r < B; ++r)
          c.shared_idx[t * B + r] = static_cast<int32_t>(permute(static_cast<uint32_t>(D.start + r), D.keys, h,
                                                                 static_cast<uint32_t>(N)));
      }
    }
  }
  const int64_t units = layout == 1 ? (P + kLanes - 1) / kLanes : P;  // lane groups or models
  st->block = std::max<int64_t>(1, std::min<int64_t>(layout == 1 ? 2 : 16,
                                                     units / std::max<int64_t>(1, 4 * pool.num_threads())));
  st->n_blocks = (units + st->block - 1) / st->block;
  auto work = [](Shared& s) {
    std::vector<float> scratch;
    LaneScratch lanes;
    const int64_t units = s.layout == 1 ? (s.c.P + kLanes - 1) / kLanes : s.c.P;
    for (int64_t k; (k = s.next.fetch_add(1)) < s.n_blocks;) {
      const int64_t hi = std::min(units, (k + 1) * s.block);
      for (int64_t u = k * s.block; u < hi; ++u) {
        if (s.layout == 1)
          s.group(u * kLanes, s.c, lanes, s.shape);
        else
          steps_model(u, s.c, scratch);
      }
      s.done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), st->n_blocks - 1);
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([st, work] { work(*st); });
  work(*st);
  while (st->done.load(std::memory_order_acquire) < st->n_blocks) std::this_thread::yield();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SparsejaxMlpSgdStep, StepImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<float>("momentum")
                                  .Attr<float>("weight_decay")
                                  .Attr<int64_t>("batch")
                                  .Attr<int64_t>("layout")
                                  .Attr<int64_t>("steps")
                                  .Attr<int64_t>("steps_per_epoch"));
