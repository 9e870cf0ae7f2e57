/* Shared by every generated kernel: C ports of src/backend/cpu/math.rs (same operations in
 * the same order, so results are bitwise identical to the Rust versions when compiled without
 * contraction), plus the callback table for operations kept in Rust. */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Full 512-bit vectors where the CPU has them. GCC's default tuning for AVX-512 CPUs halves
 * them (to spare Intel's clocks), and GCC 12 tunes a Zen 5 as a Rocket Lake: the lse eval's
 * exp-and-sum loop ran at 0.83x the time of its 256-bit build. Lane order is unchanged (no
 * reductions are vectorised across lanes without `-ffast-math`), so the bits are the same. */
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("prefer-vector-width=512")
#endif

typedef unsigned char u8;
typedef struct {
    float (*un32)(int32_t, float);
    double (*un64)(int32_t, double);
    float (*bin32)(int32_t, float, float);
    double (*bin64)(int32_t, double, double);
} ct_callbacks;

#define CT_INLINE static inline __attribute__((always_inline))

CT_INLINE float ct_f32_from_bits(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
CT_INLINE double ct_f64_from_bits(uint64_t b) { double f; memcpy(&f, &b, 8); return f; }
/* Bitwise selects: exactly `c ? a : b`, written so that the vectoriser never sees a branch
 * (GCC fails to vectorise loops where several selects share one condition). */
CT_INLINE float ct_sel_f32(int c, float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    const uint32_t m = (uint32_t)0 - (uint32_t)(c != 0);
    const uint32_t r = (x & m) | (y & ~m);
    float f;
    memcpy(&f, &r, 4);
    return f;
}
CT_INLINE double ct_sel_f64(int c, double a, double b) {
    uint64_t x, y;
    memcpy(&x, &a, 8);
    memcpy(&y, &b, 8);
    const uint64_t m = (uint64_t)0 - (uint64_t)(c != 0);
    const uint64_t r = (x & m) | (y & ~m);
    double f;
    memcpy(&f, &r, 8);
    return f;
}
CT_INLINE u8 ct_sel_u8(int c, u8 a, u8 b) {
    const u8 m = (u8)((u8)0 - (u8)(c != 0));
    return (u8)((a & m) | (b & (u8)~m));
}

CT_INLINE float ct_round_f32(float x) { const float m = 12582912.0f; return (x + m) - m; }
CT_INLINE double ct_round_f64(double x) { const double m = 6755399441055744.0; return (x + m) - m; }

CT_INLINE float ct_exp_f32(float x) {
    float xc = x < -104.0f ? -104.0f : (x > 89.0f ? 89.0f : x);
    xc = x != x ? 0.0f : xc; /* NaN: any n will do (the result is x), but keep the cast defined */
    const float n = ct_round_f32(xc * 1.44269504088896340735992468100189214f);
    const float r = (xc - n * 0.6933594f) - n * -2.1219444e-4f;
    const float r2 = r * r;
    float p = 1.9875691e-4f;
    p = p * r + 1.3981999e-3f;
    p = p * r + 8.333452e-3f;
    p = p * r + 4.1665796e-2f;
    p = p * r + 1.6666665e-1f;
    p = p * r + 5.0000001e-1f;
    const float e = p * r2 + r + 1.0f;
    const int32_t ni = (int32_t)n;
    const int32_t a = ni >> 1, b = ni - a;
    const float y = e * ct_f32_from_bits((uint32_t)(a + 127) << 23) * ct_f32_from_bits((uint32_t)(b + 127) << 23);
    return x != x ? x : (x > 88.72284f ? INFINITY : (x < -103.97208f ? 0.0f : y));
}

/* The twin of `math::exp_f64`: clamping keeps NaN (NaN propagates through the arithmetic),
 * sends +inf and overflowing arguments to 2^1024 (inf) and -inf and underflowing ones below
 * half the smallest subnormal (0), so no final selects; n's integer is read from the bits of
 * the rounding sum, not converted. */
CT_INLINE double ct_exp_f64(double x) {
    double xc = 710.0 < x ? 710.0 : x;
    xc = -746.0 > xc ? -746.0 : xc;
    const double m = 6755399441055744.0;
    const double kn = xc * 1.4426950408889634073599246810018921 + m;
    const double n = kn - m;
    const double r = (xc - n * 6.93145751953125e-1) - n * 1.428606820309417232e-6;
    const double r2 = r * r;
    const double p = ((1.2617719307481059e-4 * r2 + 3.0299440770744196e-2) * r2 + 9.9999999999999999e-1) * r;
    const double q = ((3.0019850513866446e-6 * r2 + 2.524483403496841e-3) * r2 + 2.2726554820815503e-1) * r2 + 2.0;
    const double e = 1.0 + 2.0 * p / (q - p);
    uint64_t kb, mb;
    memcpy(&kb, &kn, 8);
    memcpy(&mb, &m, 8);
    const int64_t ni = (int64_t)(kb - mb);
    const int64_t a = ni >> 1, b = ni - a;
    return e * ct_f64_from_bits((uint64_t)(a + 1023) << 52) * ct_f64_from_bits((uint64_t)(b + 1023) << 52);
}

/* `ct_exp_f64` without its clamps and with one scaling factor, for |x| <= CT_EXP_F64_FAST
 * only (the kernels' fast pass flags other arguments, NaN included, and redoes the pass with
 * `ct_exp_f64`). Bitwise equal to it there: the clamps do nothing, n = round(x·log2 e) lies
 * in [-1021, 1021], so 2^n is normal and e·2^n (e in [0.7, 1.42]) is normal, hence exact, as
 * are both of `ct_exp_f64`'s products e·2^a and (e·2^a)·2^b. Saves the clamps (which GCC
 * vectorises as compares and blends, not min/max) and the second product: about 0.8x the
 * time of `ct_exp_f64` in a vectorised loop. */
#define CT_EXP_F64_FAST 708.0
/* Calls of a kernel run exactly at once after one whose fast pass had to be redone (see
 * `needs_exact_rerun` in codegen.rs). */
#define CT_EXACT_RUNS 32
CT_INLINE double ct_exp_f64_fast(double x) {
    const double m = 6755399441055744.0;
    const double kn = x * 1.4426950408889634073599246810018921 + m;
    const double n = kn - m;
    const double r = (x - n * 6.93145751953125e-1) - n * 1.428606820309417232e-6;
    const double r2 = r * r;
    const double p = ((1.2617719307481059e-4 * r2 + 3.0299440770744196e-2) * r2 + 9.9999999999999999e-1) * r;
    const double q = ((3.0019850513866446e-6 * r2 + 2.524483403496841e-3) * r2 + 2.2726554820815503e-1) * r2 + 2.0;
    const double e = 1.0 + 2.0 * p / (q - p);
    uint64_t kb, mb;
    memcpy(&kb, &kn, 8);
    memcpy(&mb, &m, 8);
    return e * ct_f64_from_bits((kb - mb + 1023u) << 52);
}

CT_INLINE float ct_tanh_f32(float x) {
    const float a = fabsf(x);
    const float z = x * x;
    const float small =
        ((((-5.7049887e-3f * z + 2.0639089e-2f) * z - 5.3739716e-2f) * z + 1.3331442e-1f) * z - 3.3333282e-1f) * z * x + x;
    const float a20 = a < 20.0f ? a : 20.0f; /* f32::min: NaN gives 20 */
    float large = 1.0f - 2.0f / (ct_exp_f32(2.0f * a20) + 1.0f);
    large = x < 0.0f ? -large : large;
    return (a < 0.625f || x != x) ? copysignf(small, x) : large;
}

/* The twin of `math::tanh_f64` (same operations in the same order, fma for `mul_add`). */
CT_INLINE double ct_tanh_f64(double x) {
    const double a = fabs(x);
    const double z = a * a;
    const double p = fma(fma(-9.643991794250523e-1, z, -9.928772310019186e1), z, -1.6146876844170845e3);
    const double q = fma(fma(z + 1.1281167849163293e2, z, 2.2354883906010046e3), z, 4.844063053251255e3);
    const double num_small = a * z * p;
    const double m = 6755399441055744.0;
    const double t = 2.0 * (a < 40.0 ? a : 40.0); /* f64::min: NaN gives 40 */
    const double kn = fma(t, 1.4426950408889634073599246810018921, m);
    const double n = kn - m;
    const double r = fma(-n, 1.428606820309417232e-6, fma(-n, 6.93145751953125e-1, t));
    const double r2 = r * r;
    const double pe = fma(fma(1.2617719307481059e-4, r2, 3.0299440770744196e-2), r2, 9.9999999999999999e-1) * r;
    const double qe = fma(fma(fma(3.0019850513866446e-6, r2, 2.524483403496841e-3), r2, 2.2726554820815503e-1), r2, 2.0);
    uint64_t kb, mb;
    memcpy(&kb, &kn, 8);
    memcpy(&mb, &m, 8);
    const double two_n = ct_f64_from_bits((kb - mb + 1023u) << 52);
    const double dm = qe - pe;
    const double num_large = 2.0 * dm;
    const double den_large = fma(qe + pe, two_n, dm);
    const int is_small = !(a >= 0.625); /* NaN takes the small branch */
    const double d = ct_sel_f64(is_small, num_small, num_large) / ct_sel_f64(is_small, q, den_large);
    return copysign(ct_sel_f64(is_small, a + d, 1.0 - d), x);
}

CT_INLINE float ct_logistic_f32(float x) {
    const float e = ct_exp_f32(-fabsf(x));
    const float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

CT_INLINE double ct_logistic_f64(double x) {
    const double e = ct_exp_f64(-fabs(x));
    const double s = 1.0 / (1.0 + e);
    return x >= 0.0 ? s : e * s;
}

/* Valid for |x| <= 8192 (the callers check); `cos` selects the cosine. */
CT_INLINE float ct_sin_cos_f32(float x, int cos) {
    const float a = fabsf(x);
    const float t = a * 0.636619772367581343075535053490057448f * 2.0f;
    int32_t j = (int32_t)(t < 1.0e9f ? t : 0.0f); /* NaN and huge values: any j (the caller checks |x|) */
    j += j & 1;
    const float y = (float)j;
    const float r = ((a - y * 0.78515625f) - y * 2.4187565e-4f) - y * 3.774895e-8f;
    const float z = r * r;
    const float sin_poly = ((-1.9515296e-4f * z + 8.332161e-3f) * z - 1.6666655e-1f) * z * r + r;
    const float cos_poly = ((2.4433157e-5f * z - 1.3887316e-3f) * z + 4.1666646e-2f) * z * z - 0.5f * z + 1.0f;
    int32_t q = (j >> 1) & 3;
    q = cos ? ((q + 1) & 3) : q;
    float v = (q & 1) == 1 ? cos_poly : sin_poly;
    v = q >= 2 ? -v : v;
    return (!cos && x < 0.0f) ? -v : v;
}

/* What padded loads read outside their bounds in a segment of at most CT_SEGMENT elements
   (the value is replaced by the fill; reading here keeps the loads unconditional, so the
   segment's loop vectorises). */
#define CT_SEGMENT 512
static const float ct_zero_float[CT_SEGMENT];
static const double ct_zero_double[CT_SEGMENT];
static const u8 ct_zero_u8[CT_SEGMENT];
static const int32_t ct_zero_int32_t[CT_SEGMENT];
static const int64_t ct_zero_int64_t[CT_SEGMENT];
