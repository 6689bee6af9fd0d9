#pragma once
// Branch-free exp, log and log1p for float and double, written so that GCC and Clang
// auto-vectorise a plain `for` loop that calls them (SSE4.2, AVX2, AVX-512): no libm calls, no
// table look-ups (gathers), no control flow, only arithmetic, integer ops on the bit patterns and
// selects.  Special values are patched in with selects at the end.
//
// Accuracy target: <= 1 ulp (contract: <= 2 ulp), with and without FMA contraction, normal and
// subnormal results, measured by tests/cpp/test_vecmath.cpp (see docs/vecmath.md for the table).
// The polynomial coefficients are ours: tools/derive_vecmath_coefficients.py derives them (Remez
// minimax in mpmath) and prints the arrays below; regenerate them there, never edit them by hand.
//
// Do not compile with -ffast-math / -ffinite-math-only / -fassociative-math: the rounding tricks
// (magic-constant rounding, the exact error of 1 + x) and the NaN/inf selects rely on IEEE
// semantics.  The library is compiled with -ffp-contract=off: a multiply-add is fused only where
// it is written as mul_add (one FMA where the tier has one), so that every loop and template
// instantiation rounds the same expression the same way (with contraction GCC fused them
// differently in different inlining contexts, and an element's loss depended on its loop).
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>

#ifndef FASTBCE_TIER
#define FASTBCE_TIER generic
#endif

#ifndef FASTBCE_VM_INLINE
#if defined(__GNUC__) || defined(__clang__)
#define FASTBCE_VM_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FASTBCE_VM_INLINE __forceinline
#else
#define FASTBCE_VM_INLINE inline
#endif
#endif

namespace fastbce { namespace FASTBCE_TIER { namespace vm {

namespace detail {

template <class T>
struct traits;

template <>
struct traits<float> {
    using uint = std::uint32_t;
    static constexpr int mant_bits = 23;
    static constexpr uint bias = 127;
    static constexpr uint one_bits = 0x3f800000u;        // 1.0f
    static constexpr uint sqrt_half_bits = 0x3f3504f3u;  // sqrt(2)/2 = 0x1.6a09e6p-1f
    static constexpr float int_magic = 0x1p23f;          // 2^23: bits(2^23) | k == 2^23 + k
    static constexpr float round_magic = 0x1.8p23f;      // 1.5 * 2^23: x + it rounds to integer
    static constexpr float min_normal = 0x1p-126f;
    static constexpr float subnormal_scale = 0x1p25f;  // makes every subnormal normal
    static constexpr float subnormal_scale_log2 = 25.0f;
    // Below these magnitudes a polynomial's argument changes nothing (poly(x) == c[0] bit for
    // bit, every c[0] being in [1/2, 1)) and log1p_small(x) == x; the functions then work on
    // larger or zero values, so that no power of a small argument underflows (docs/vecmath.md).
    static constexpr float poly_tiny = 0x1p-30f;
    // exp: an |r| below exp_tiny counts as 0 (and r^4 c_4 stays normal above it)
    static constexpr float exp_tiny = 0x1p-28f;
    static constexpr float log1p_tiny = 0x1p-26f;

    // exp: below exp_lo the result is < 2^-150 (rounds to 0); exp_max is the largest x whose
    // exp(x) rounds to a finite float (ln(FLT_MAX) = 88.7228391).
    static constexpr float exp_lo = -104.0f;  // ln(2^-150) = -103.97
    static constexpr float exp_max = 0x1.62e42ep+6f;
    // exp_nonpositive_normal's domain, up to where exp(-x) stops being normal (126 ln2 =
    // 87.3365): n >= -125 there, or n = -126 with r >= 0 and so p >= 1; p 2^n is normal either way
    static constexpr float normal_exp_max = 87.33f;
    // from here on exp(-x) rounds to +0 (below 2^-150; 150 ln2 = 103.9721)
    static constexpr float zero_exp_min = 103.975f;
    static constexpr float log2e = 0x1.715476p+0f;
    // Cody-Waite split of ln2: ln2_hi has 15 significant bits so n * ln2_hi is exact (|n| <= 151).
    static constexpr float ln2_hi = 0x1.62e4p-1f;
    static constexpr float ln2_lo = 0x1.7f7d1cp-20f;
    // exp(r) ~= 1 + r + r^2 P(r), P(r) = 1/2 + r Q(r) (1/2 exact), Q degree 3 on
    // [-0.3466, 0.3466]; max relative error 3.84e-9 (<= 0.064 ulp).
    static constexpr float exp_coeffs[] = {0x1p-1f, 0x1.5554a4p-3f, 0x1.555688p-5f,
                                           0x1.122f84p-7f, 0x1.6b6e44p-10f};
    // log(1+f) = 2s + s^3 Q(s^2), s = f/(2+f), Q degree 2 in s^2 on [0, 0.0295];
    // max relative error 9.36e-10 (<= 0.016 ulp).
    static constexpr float log_coeffs[] = {0x1.55557ap-1f, 0x1.995e8ep-2f, 0x1.31e862p-2f};
    // log1p_small: 2 atanh(s) = 2s + s^3 Q(s^2), Q degree 4 in s^2 on [0, 0.1112];
    // max relative error 5.06e-10 (<= 0.0085 ulp).
    static constexpr float log1p_small_coeffs[] = {0x1.555558p-1f, 0x1.9996aep-2f, 0x1.250902p-2f,
                                                   0x1.b6df46p-3f, 0x1.f1921ap-3f};
};

template <>
struct traits<double> {
    using uint = std::uint64_t;
    static constexpr int mant_bits = 52;
    static constexpr uint bias = 1023;
    static constexpr uint one_bits = 0x3ff0000000000000u;
    static constexpr uint sqrt_half_bits = 0x3fe6a09e667f3bcdu;  // sqrt(2)/2 = 0x1.6a09e667f3bcdp-1
    static constexpr double int_magic = 0x1p52;
    static constexpr double round_magic = 0x1.8p52;
    static constexpr double min_normal = 0x1p-1022;
    static constexpr double subnormal_scale = 0x1p54;
    static constexpr double subnormal_scale_log2 = 54.0;
    static constexpr double poly_tiny = 0x1p-60;
    static constexpr double exp_tiny = 0x1p-60;
    static constexpr double log1p_tiny = 0x1p-55;

    static constexpr double exp_lo = -746.0;  // ln(2^-1075) = -745.13
    static constexpr double exp_max = 0x1.62e42fefa39efp+9;  // ln(DBL_MAX) = 709.782712893384
    static constexpr double normal_exp_max = 700.0;  // n >= -1010 (see float)
    static constexpr double zero_exp_min = 745.134;  // 1075 ln2 = 745.1332
    static constexpr double log2e = 0x1.71547652b82fep+0;
    // ln2_hi has 41 significant bits so n * ln2_hi is exact (|n| <= 1076).
    static constexpr double ln2_hi = 0x1.62e42fefa3p-1;
    static constexpr double ln2_lo = 0x1.3de6af278ece6p-42;
    // exp(r) ~= 1 + r + r^2 P(r), P(r) = 1/2 + r Q(r) (1/2 exact), Q degree 8 on
    // [-0.3466, 0.3466]; max relative error 5.76e-18 (<= 0.052 ulp).
    static constexpr double exp_coeffs[] = {
        0x1p-1,                0x1.5555555555501p-3,  0x1.5555555553208p-5,  0x1.1111111128867p-7,
        0x1.6c16c17cc2ae1p-10, 0x1.a01a011c282fbp-13, 0x1.a019ab2efd23p-16,
        0x1.71df553977957p-19, 0x1.289f88ea7db01p-22, 0x1.ad201d6bbbe91p-26};
    // log(1+f) = 2s + s^3 Q(s^2), Q degree 6 in s^2 on [0, 0.0295];
    // max relative error 1.32e-18 (<= 0.012 ulp).
    static constexpr double log_coeffs[] = {
        0x1.5555555555593p-1, 0x1.999999997f988p-2, 0x1.2492494232cbcp-2, 0x1.c71c51cf1c596p-3,
        0x1.74664bd018fe5p-3, 0x1.39a0564a15a4dp-3, 0x1.2f144cef14b13p-3};
    // log1p_small: Q degree 9 in s^2 on [0, 0.1112]; max relative error 1.86e-18 (<= 0.017 ulp).
    static constexpr double log1p_small_coeffs[] = {
        0x1.5555555555535p-1, 0x1.99999999a0799p-2, 0x1.2492492089fa7p-2, 0x1.c71c741da8adap-3,
        0x1.745cb3d3a458cp-3, 0x1.3b1ddf4a6f4c8p-3, 0x1.106790bdd9089p-3, 0x1.efdba55da486p-4,
        0x1.55a1e88e3e66cp-4, 0x1.5c876a6890977p-3};
};

// Whether this tier is x86-64 without SSE4.2 (baseline: SSE2). SSE2 has no 64-bit integer compare,
// and GCC 12 vectorises no select of 64-bit integers there (it turns `U(0) - U(c)` into one):
// a float64 loop with a select or a 64-bit max stayed scalar, and its ternaries became branches
// on the data (the mixed focal loop and the float64 loss loop ran 2-4x slower than on v2).
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(__SSE4_2__)
#define FASTBCE_VM_SSE2_ONLY 1
#else
#define FASTBCE_VM_SSE2_ONLY 0
#endif

// c ? a : b, as a bitwise blend rather than a ternary.  With a ternary GCC sinks the work that
// only one arm needs into a conditional block (or threads a constant through it), and then, under
// its default -ftrapping-math, refuses to if-convert that block back because FP operations "could
// trap": "not vectorized: control flow in loop" on SSE4.2/AVX2 (AVX-512 masks hide the problem).
// The blend uses both operands unconditionally, so the loop body stays one basic block.
// (SSE2, float64: the mask is a select of doubles, which SSE2 blends, and GCC sees a select: a
// clamp before a computation whose result is selected away may then be left out, as GCC may with
// a ternary; below_mask makes such a clamp where it matters, see log1p_small_impl.)
template <class T>
FASTBCE_VM_INLINE T select(bool c, T a, T b) {
    using U = typename traits<T>::uint;
#if FASTBCE_VM_SSE2_ONLY
    const U m = sizeof(T) == 8 ? std::bit_cast<U>(c ? std::bit_cast<T>(~U(0)) : T(0)) : U(0) - U(c);
#else
    const U m = U(0) - U(c);
#endif
    return std::bit_cast<T>((std::bit_cast<U>(a) & m) | (std::bit_cast<U>(b) & ~m));
}

// All ones where ua < ub as unsigned integers, else 0, from the borrow out of ua - ub: integer
// subtracts and bit operations only, which SSE2 has at 64 bits, and no compare that GCC could
// read as a condition.
template <class U>
FASTBCE_VM_INLINE U below_mask(U ua, U ub) {
    return U(0) - (((~ua & ub) | (~(ua ^ ub) & (ua - ub))) >> (8 * sizeof(U) - 1));
}

// The larger of a and b by their bit patterns as unsigned integers: max(a, b) for a, b >= +0 (and
// a NaN with either sign wins), min(a, b) for a, b <= -0. One integer instruction. A float clamp
// written as a ternary is control flow to GCC, which may thread it into computing the whole
// function on both the constant and the unclamped value (and raise the very underflow the clamp
// was to avoid); an integer max is a plain operation.
template <class T>
FASTBCE_VM_INLINE T max_by_bits(T a, T b) {
    using U = typename traits<T>::uint;
    const U ua = std::bit_cast<U>(a), ub = std::bit_cast<U>(b);
    if constexpr (FASTBCE_VM_SSE2_ONLY && sizeof(U) == 8) {
        const U m = below_mask(ub, ua);  // (SSE2: no 64-bit max)
        return std::bit_cast<T>((ua & m) | (ub & ~m));
    }
    return std::bit_cast<T>(ua > ub ? ua : ub);
}

// a * b + c, fused (one rounding) on tiers with FMA, else two roundings: the same bits wherever
// a given tier evaluates it. (std::fma without FMA hardware would be a slow library call.)
template <class T>
FASTBCE_VM_INLINE T mul_add(T a, T b, T c) {
#if defined(__FMA__)
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
}

// Estrin's scheme: c[B] + c[B+1] x + ... + c[B+N-1] x^(N-1) evaluated as
// (low half) + x^H (high half), H the largest power of two below N, recursively.  Its dependency
// chain is ~log2(N) multiply-adds deep instead of Horner's N - 1: exp and log1p chained in one
// loop (softplus) were latency-bound with Horner (the out-of-order window could not overlap
// enough iterations).  pw[k] = x^(2^k).  Unrolled at compile time: no inner loop for the
// vectoriser to trip over.
template <std::size_t B, std::size_t N, class T, std::size_t M>
FASTBCE_VM_INLINE T estrin_rec(const T (&c)[M], const T* pw) {
    if constexpr (N == 1) {
        return c[B];
    } else {
        constexpr std::size_t H = std::bit_floor(N - 1);
        return mul_add(pw[std::countr_zero(H)], estrin_rec<B + H, N - H>(c, pw), estrin_rec<B, H>(c, pw));
    }
}

template <class T, std::size_t N, std::size_t... K>
FASTBCE_VM_INLINE T poly_impl(T x, const T (&c)[N], std::index_sequence<K...>) {
    T pw[sizeof...(K) + 1] = {x};
    ((pw[K + 1] = pw[K] * pw[K]), ...);  // x^2, x^4, ...
    return estrin_rec<0, N>(c, pw);
}

template <class T, std::size_t N>
FASTBCE_VM_INLINE T poly(T x, const T (&c)[N]) {
    constexpr std::size_t levels = N > 1 ? std::bit_width(N - 1) : 1;
    return poly_impl(x, c, std::make_index_sequence<levels - 1>{});
}

// Integer k (0 <= k < 2^mant_bits) to T without an int->fp conversion instruction: AVX2 has none
// for int64 -> double, so 2^52 + k is assembled from its bits and 2^52 subtracted (exact).
template <class T>
FASTBCE_VM_INLINE T small_uint_to_fp(typename traits<T>::uint k) {
    using Tr = traits<T>;
    return std::bit_cast<T>(std::bit_cast<typename Tr::uint>(Tr::int_magic) | k) - Tr::int_magic;
}

// exp(x) = 2^n exp(r): the argument reduction and the polynomial, shared by every exp below.
// `t` holds n in its low bits; p = exp(r) is in about [0.7, 1.42].
template <class T>
struct ExpReduced {
    T t;
    T p;
};

// GuardR: an |r| below exp_tiny counts as 0 (r^2 ... r^8 would underflow; q is then below half
// an ulp of e1 = r and a = 1, so the bits are the same). Without it the caller keeps |x| >=
// exp_tiny: for every float x in [-104, -2^-28], |r| >= 2^-29 (checked over all of them), where
// c_4 r^4 >= 2^-125.5 is normal; double reductions are no smaller than ~2^-60.
template <class T, bool GuardR = true>
FASTBCE_VM_INLINE ExpReduced<T> exp_reduce(const T x) {
    using Tr = traits<T>;
    // n = round(x / ln2), |r| <= ln2/2 (+ a rounding margin).  Adding 1.5 * 2^mant_bits rounds
    // to the nearest integer and leaves n in the low bits of t.
    const T t = mul_add(x, Tr::log2e, Tr::round_magic);
    const T n = t - Tr::round_magic;
    // Cody-Waite: n * ln2_hi is exact and so is rh = x - n * ln2_hi (Sterbenz).  r = rh - n ln2_lo
    // is rounded once, an error of at most half an ulp of r, <= 0.35 ulp of exp(r) before the
    // polynomial's rounding. Carrying it along (rl = (rh - r) - n ln2_lo, as an earlier version
    // did) cost 4 operations on the kernel's critical path for 0.04 ulp (float, exhaustive:
    // 0.792 -> 0.829) and 0.07 ulp (double, sampled: 0.768 -> 0.834) of worst-case error.
    const T rh = mul_add(-n, Tr::ln2_hi, x);
    const T r = mul_add(-n, Tr::ln2_lo, rh);

    // exp(r) = 1 + r + r^2 P(r), P(r) = 1/2 + r Q(r).  1 + r is split exactly into a + e1
    // (Fast2Sum, |r| < 1), so the only large rounding left is the final add (0.5 ulp); the
    // bracket is < 0.07 and its own rounding adds ~0.1 ulp at most.
    T rq = r;
    if constexpr (GuardR && FASTBCE_VM_SSE2_ONLY && sizeof(T) == 8) {
        // (SSE2, float64: GCC makes this select a branch around the polynomial. Taken for r = 0
        // too, it was a branch on the data wherever lanes mix r = 0 and r != 0 (a focal factor
        // t^gamma = exp(gamma log t) with t = 1 for wrong predictions and t < 1 for correct
        // ones, baseline focal gamma = 2.7 at |x| = 20-60: 1.3-1.45x the time of other
        // magnitudes). r = 0 needs no guard (its powers are 0, exact): as one unsigned compare
        // the branch is taken for a tiny nonzero r only, that is almost never. A mask of integer
        // operations instead, no branch, cost 25% there everywhere.)
        using U = typename Tr::uint;
        const U a = std::bit_cast<U>(std::abs(r));
        rq = select(a - 1u < std::bit_cast<U>(Tr::exp_tiny) - 1u, T(0), r);
    } else if constexpr (GuardR) {
        rq = select(std::abs(r) < Tr::exp_tiny, T(0), r);
    }
    const T a = T(1) + r;
    const T e1 = (T(1) - a) + r;
    return {t, a + mul_add(rq * rq, poly(rq, Tr::exp_coeffs), e1)};
}

// NonPositive: the caller guarantees x <= 0 (or NaN), so the overflow select is left out.
// No operation produces a subnormal or underflows, not even where the result is subnormal (on
// Intel cores each such operation takes a microcode assist of ~100 cycles).
template <class T, bool NonPositive = false>
FASTBCE_VM_INLINE T exp_impl(const T x0) {
    using Tr = traits<T>;
    using U = typename Tr::uint;
    // x is clamped to [exp_lo, exp_max] with selects (a clamp by min/max lets GCC thread a path
    // on which x is the constant bound into conditional blocks, which it cannot if-convert on
    // SSE/AVX2 under -ftrapping-math); the selects at the end put in +0 and +inf. NaN flows.
    // (NonPositive: x in [-exp_tiny, 0] gives exp(x) = 1 as x = -exp_tiny does; see exp_reduce)
    T x = select(x0 < Tr::exp_lo, Tr::exp_lo, x0);
    if constexpr (!NonPositive) x = select(x0 > Tr::exp_max, Tr::exp_max, x);
    else x = max_by_bits(x, -Tr::exp_tiny);  // min(x, -exp_tiny): x <= 0, or -NaN
    const auto [t, p] = exp_reduce<T, !NonPositive>(x);

    // Normal results: 2^n added into p's exponent field (exact; the low bits of t, shifted into
    // place, wrap to n), as exp_normal_impl. p < 1 wherever n is at its largest (x <= exp_max).
    T y = std::bit_cast<T>(std::bit_cast<U>(p) + (std::bit_cast<U>(t) << Tr::mant_bits));
    // Subnormal results: their bit pattern is the integer K = round(p 2^(n + bias - 1 +
    // mant_bits)), one rounding of the exact p 2^n as IEEE's gradual underflow does. w below is
    // exact and normal (>= 2^-2, with n clamped to <= 2 - bias where the result is normal anyway),
    // and adding 2^mant_bits rounds it to that integer. Unsigned arithmetic only (AVX2 has no
    // 64-bit arithmetic shift): nb = n + 2 (bias + 1) > 0.
    const U nb = std::bit_cast<U>(t) - std::bit_cast<U>(Tr::round_magic) + 2 * (Tr::bias + 1);
    constexpr U nb_max = Tr::bias + 4;  // n = 2 - bias: p 2^n >= 0.7 * 2^(3 - bias) is normal
    const U nl = nb < nb_max ? nb : nb_max;  // integer min, no select
    const T w = p * std::bit_cast<T>((nl + Tr::mant_bits - 3) << Tr::mant_bits);
    const U k = std::bit_cast<U>(w + Tr::int_magic) - std::bit_cast<U>(Tr::int_magic);
    y = select(w < Tr::int_magic, std::bit_cast<T>(k), y);
    if constexpr (!NonPositive) y = select(x0 > Tr::exp_max, std::numeric_limits<T>::infinity(), y);
    y = select(x0 < Tr::exp_lo, T(0), y);
    return select(x0 != x0, x0, y);  // (the exponent add makes garbage of a NaN)
}

// exp(x) for x in [-normal_exp_max, 0] only, where the result is a normal number: 2^n is added
// into p's exponent field with one integer add (the low bits of t, shifted into place, wrap
// modulo 2^bits to n), no multiply and no select; the same bits as exp_impl there (its scaling
// is exact for normal results). Outside that range the result is garbage (NaN included): the
// caller checks the range and takes exp_nonpositive there.
template <class T>
FASTBCE_VM_INLINE T exp_normal_impl(const T x0) {
    using U = typename traits<T>::uint;
    const T x = max_by_bits(x0, -traits<T>::exp_tiny);  // (as exp_impl)
    const auto [t, p] = exp_reduce<T, false>(x);
    return std::bit_cast<T>(std::bit_cast<U>(p) + (std::bit_cast<U>(t) << traits<T>::mant_bits));
}

// e ln2 + log(1 + f) + c for f in [sqrt(2)/2 - 1, sqrt(2) - 1], s = f / (2 + f) and a tiny
// correction c.  log(1+f) = 2 atanh(s) = 2s + s^3 Q(s^2), and since 2s = f - s f,
//   log(1+f) = f - f^2/2 + s (f^2/2 + s^2 Q(s^2)),
// where f is exact and the rest is small, so the division and Q only affect low-order bits
// (the classic arrangement, e.g. Muller, "Elementary Functions", 3rd ed., section on log).
template <class T>
FASTBCE_VM_INLINE T log_core(T f, T s, T e, T c) {
    using Tr = traits<T>;
    const T z = s * s;
    const T hf = T(0.5) * f * f;
    const T lo = mul_add(s, mul_add(z, poly(z, Tr::log_coeffs), hf), mul_add(e, Tr::ln2_lo, c));
    return mul_add(e, Tr::ln2_hi, f - (hf - lo));
}

// A positive normal x as 2^e m with m in [sqrt(2)/2, sqrt(2)): adding (1 - sqrt(2)/2) in the
// bit domain carries into the exponent field exactly when the mantissa is >= that of sqrt(2), so
// the biased exponent k = e + bias, and the low bits give m once sqrt(2)/2 is added back.
template <class T>
struct ExponentSplit {
    typename traits<T>::uint k;  // e + bias
    T m;
};

template <class T>
FASTBCE_VM_INLINE ExponentSplit<T> split_exponent(T x) {
    using Tr = traits<T>;
    using U = typename Tr::uint;
    const U u = std::bit_cast<U>(x) + (Tr::one_bits - Tr::sqrt_half_bits);
    const U mant_mask = (U(1) << Tr::mant_bits) - 1;
    return {u >> Tr::mant_bits, std::bit_cast<T>((u & mant_mask) + Tr::sqrt_half_bits)};
}

template <class T>
FASTBCE_VM_INLINE T log_impl(T x0) {
    using Tr = traits<T>;
    constexpr T inf = std::numeric_limits<T>::infinity();
    constexpr T nan = std::numeric_limits<T>::quiet_NaN();

    // Subnormal inputs: scale into the normal range first, correct the exponent below.
    const bool sub = x0 < Tr::min_normal;
    const T x = select(sub, x0 * Tr::subnormal_scale, x0);

    // x = 2^e m (split_exponent); f = m - 1 is exact (Sterbenz).
    const auto [k, m] = split_exponent(x);
    const T f = m - T(1);
    const T e = small_uint_to_fp<T>(k) -
                select(sub, T(Tr::bias) + Tr::subnormal_scale_log2, T(Tr::bias));

    T y = log_core(f, f / (T(2) + f), e, T(0));
    // log(+-0) = -inf, log(<0) = log(-inf) = NaN, log(inf) = inf, NaN in -> the same NaN out
    y = select(x0 > T(0), y, select(x0 == T(0), -inf, nan));
    y = select(x0 == inf, inf, y);
    y = select(x0 != x0, x0, y);
    return y;
}

template <class T>
FASTBCE_VM_INLINE T log1p_impl(T x) {
    using Tr = traits<T>;
    using U = typename Tr::uint;
    constexpr T inf = std::numeric_limits<T>::infinity();
    constexpr T nan = std::numeric_limits<T>::quiet_NaN();

    // u = fl(1 + x) and its exact rounding error d (Knuth's TwoSum: no assumption on |x|, no
    // branch, no multiply for -ffp-contract to fuse): 1 + x = u + d exactly.
    const T u = T(1) + x;
    const T b = u - T(1);
    const T d = (T(1) - (u - b)) + (x - b);

    // u = 2^e m (split_exponent; u >= 2^-p for x > -1, never subnormal).
    const auto [k, m] = split_exponent(u);
    const T e = small_uint_to_fp<T>(k) - T(Tr::bias);

    // e == 0 (x in about [-0.29, 0.41]): log1p(x) = log(1 + f) with f = x exactly, no correction
    // (this keeps log1p(tiny) = tiny, subnormals included).  Otherwise f = m - 1 is exact and the
    // lost part of 1 + x is 2^-e d: log(1 + f + 2^-e d) = log(1 + f) + 2^-e d / (1 + f) + O(d^2),
    // with 1 / (1 + f) = (1 - s) / (1 + s) ~= 1 - 2s + 2s^2 (relative error < 1.2%, on a term
    // of at most ~2 ulp of the result).  2^-e is built from bits, clamped to stay normal: beyond
    // e = 2 bias - 1 the correction is far below an ulp anyway.
    const bool near_one = k == Tr::bias;
    const T f = select(near_one, x, m - T(1));
    const U kc = k < 2 * Tr::bias - 1 ? k : U(2 * Tr::bias - 1);  // integer min, no select
    const T scale = std::bit_cast<T>((2 * Tr::bias - kc) << Tr::mant_bits);  // 2^-e
    const T s = f / (T(2) + f);
    const T c = select(near_one, T(0), (d * scale) * mul_add(T(-2) * s, T(1) - s, T(1)));

    T y = log_core(f, s, e, c);
    // log1p(-1) = -inf, log1p(< -1) = NaN, log1p(inf) = inf, log1p(-0) = -0, NaN -> same NaN
    y = select(x > T(-1), y, select(x == T(-1), -inf, nan));
    y = select(x == inf, inf, y);
    y = select(x == T(0), x, y);
    y = select(x != x, x, y);
    return y;
}

// log1p(x) for x in [-1/2, 1] only: with s = x / (2 + x), |s| <= 1/3, and log1p(x) =
// 2 atanh(s) = 2s + s^3 Q(s^2) on the whole range, so no exponent split and no correction term;
// one division and a short polynomial. Outside [-1/2, 1] the result is inaccurate (never a
// crash); NaN propagates. The caller must know its argument is in range (e.g. exp(-|x|)).
template <class T, bool NonNegative = false>
FASTBCE_VM_INLINE T log1p_small_impl(T x0) {
    using Tr = traits<T>;
    // s = x / (2 + x) with the rounding of 2 + x taken back: 2 + x = t + e exactly (Fast2Sum,
    // |x| <= 2), and x / (t + e) = s0 (1 - e/t + ...). e/t is below an ulp, so a rough 1/t is
    // enough: 0.523 - 0.209 x is within 5.9% of 1/(2 + x) on [-1/2, 1] (the best such line, by
    // a grid search; the quadratic it replaced was within 12.5%, at one more multiply-add).
    // Without the correction the worst case was 1.97 ulp (float, exhaustive).
    // Below log1p_tiny log1p(x) rounds to x: the work is done on 0 instead, and s, s^2 and the
    // polynomial's powers of a tiny x would underflow; the polynomial's argument is kept at or
    // above poly_tiny, where it changes nothing.
    // (NonNegative: x0 >= 0 or NaN, and the work is done on log1p_tiny instead, one operation less)
    // (the clamps are integer maxima where they can be, one instruction on the critical path)
    const bool tiny = (NonNegative ? x0 : std::abs(x0)) < Tr::log1p_tiny;
    T x;
    if constexpr (NonNegative) {
        x = max_by_bits(x0, Tr::log1p_tiny);
    } else if constexpr (FASTBCE_VM_SSE2_ONLY && sizeof(T) == 8) {
        // (SSE2: select's mask is a select GCC reads, and seeing x unused where tiny it divided
        // x0 itself, a subnormal quotient; this mask it cannot read)
        using U = typename Tr::uint;
        const U bits = std::bit_cast<U>(x0);
        x = std::bit_cast<T>(bits & ~below_mask(bits & (~U(0) >> 1), std::bit_cast<U>(Tr::log1p_tiny)));
    } else {
        x = select(tiny, T(0), x0);
    }
    const T t = T(2) + x;
    const T e = (T(2) - t) + x;
    const T s0 = x / t;
    const T inv_t = mul_add(x, T(-0.209), T(0.523));
    const T s = mul_add(-s0, e * inv_t, s0);
    const T z = s * s;
    // 2s + s^3 Q = x - s (x - s^2 Q), since 2s = x - x s: x is exact, so the rounding of s only
    // enters through x s, a fraction of the result (<= 0.44 of it on [-1/2, 1], ~x/2 near 0).
    const T z_poly = max_by_bits(z, Tr::poly_tiny);  // (z >= 0)
    return select(tiny, x0, mul_add(-s, mul_add(-z, poly(z_poly, Tr::log1p_small_coeffs), x), x));
}

}  // namespace detail

// float and double only (detail::traits has no other types)
template <class T>
FASTBCE_VM_INLINE T exp(T x) {
    return detail::exp_impl(x);
}
template <class T>
FASTBCE_VM_INLINE T log(T x) {
    return detail::log_impl(x);
}
template <class T>
FASTBCE_VM_INLINE T log1p(T x) {
    return detail::log1p_impl(x);
}

// exp for x <= 0 (or NaN) only, where it cannot overflow: exp without the overflow select (the
// kernel's exp(-|x|); 4% of a plain logits call). A positive x gives garbage, never a crash.
template <class T>
FASTBCE_VM_INLINE T exp_nonpositive(T x) {
    return detail::exp_impl<T, true>(x);
}

// exp(x) for -normal_exp_max<T> <= x <= 0 only (87.33 for float, 700 for double), where exp(x)
// is normal: exp_nonpositive without the two-factor scaling and the underflow select (a quarter of
// its time on AVX2), with the same bits. Elsewhere, NaN included, the result is garbage, never a
// crash.
template <class T>
FASTBCE_VM_INLINE T exp_nonpositive_normal(T x) {
    return detail::exp_normal_impl(x);
}
template <class T>
constexpr T normal_exp_max = detail::traits<T>::normal_exp_max;
// exp_nonpositive(-a) is +0 for every a >= zero_exp_min<T> (103.975 for float, 745.134 for double)
template <class T>
constexpr T zero_exp_min = detail::traits<T>::zero_exp_min;

// log1p on [-1/2, 1] only (see detail::log1p_small_impl): about 3x cheaper than log1p.
template <class T>
FASTBCE_VM_INLINE T log1p_small(T x) {
    return detail::log1p_small_impl(x);
}
// log1p_small for x in [0, 1] (or NaN) only, e.g. exp(-|x|): slightly cheaper.
template <class T>
FASTBCE_VM_INLINE T log1p_small_nonnegative(T x) {
    return detail::log1p_small_impl<T, true>(x);
}

}}}  // namespace fastbce::FASTBCE_TIER::vm
