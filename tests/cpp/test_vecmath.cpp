// Accuracy and special-value test of cpp/include/fastbce/vecmath.hpp (no Python, no framework).
//
// Build and run from the repository root, once per SIMD tier:
//   g++ -std=c++20 -O3 -march=x86-64-v3 -ffp-contract=fast -I cpp/include
//       tests/cpp/test_vecmath.cpp -o /tmp/tv && /tmp/tv
//   tiers: -march=x86-64-v2 (SSE4.2, no FMA) | -march=x86-64-v3 (AVX2, FMA)
//          | -march=x86-64-v4 -mprefer-vector-width=512 (AVX-512)
//   -O3 tests the vectorised loops; at -O2 GCC 12 does not vectorise them, so -O2 tests the
//   scalar code.  -ffp-contract=off on v3/v4 tests FMA hardware without contraction.
//   -DFASTBCE_VM_EXHAUSTIVE: float32 over all 2^32 inputs per function (minutes) instead of a
//   sampled sweep (every 61st bit pattern plus dense windows around the critical points).
//   -DFASTBCE_VM_DOUBLE_N=<n>: points per category of the double tests (default 1000000).
//
// References: float against the double-precision std:: functions (error <= 2^-29 float ulp);
// double against the x87 long double std::expl / logl / log1pl (error ~2^-11 double ulp).
// The error of a result y is |y - ref| / ulp(ref) with ulp taken in the target format (2^-149 /
// 2^-1074 in the subnormal range).  Results are computed through loops over arrays (the
// vectorised code the kernel runs) and, on a subsample, through a non-inlined scalar call.
// Exit status: 0 when every worst error is <= FASTBCE_VM_MAX_ULP (default 1.0; the contract is
// 2; the composition log1p(exp(-|x|)) is held to 2) and every special value is right, else 1.
#include "fastbce/vecmath.hpp"

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <vector>

#ifndef FASTBCE_VM_MAX_ULP
#define FASTBCE_VM_MAX_ULP 1.0
#endif
#ifndef FASTBCE_VM_DOUBLE_N
#define FASTBCE_VM_DOUBLE_N 1000000
#endif

namespace vm = fastbce::FASTBCE_TIER::vm;

namespace {

// --- the code under test, as the kernel uses it (loops) and as a plain scalar call -------------

// softplus_tail is the composition the kernel uses: softplus(t) = max(t, 0) + log1p(exp(-|t|)),
// with log1p_small (exp(-|t|) is in [0, 1]). log1p_small is tested on its domain [-1/2, 1].
enum class Fn { exp, log, log1p, log1p_small, softplus_tail };
constexpr const char* fn_name(Fn f) {
    return f == Fn::exp     ? "exp"
           : f == Fn::log   ? "log"
           : f == Fn::log1p ? "log1p"
           : f == Fn::log1p_small ? "log1p_small"
                                  : "l1p(e(-|x|))";
}
template <Fn F, class T>
bool in_domain(T x) {
    return F != Fn::log1p_small || (x >= T(-0.5) && x <= T(1));
}

template <Fn F, class T>
__attribute__((noinline)) void batch(const T* in, T* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (F == Fn::exp) out[i] = vm::exp(in[i]);
        if constexpr (F == Fn::log) out[i] = vm::log(in[i]);
        if constexpr (F == Fn::log1p) out[i] = vm::log1p(in[i]);
        if constexpr (F == Fn::log1p_small) out[i] = vm::log1p_small(in[i]);
        if constexpr (F == Fn::softplus_tail) out[i] = vm::log1p_small(vm::exp_nonpositive(-std::abs(in[i])));
    }
}

template <Fn F, class T>
__attribute__((noinline)) T scalar(T x) {
    if constexpr (F == Fn::exp) return vm::exp(x);
    if constexpr (F == Fn::log) return vm::log(x);
    if constexpr (F == Fn::log1p) return vm::log1p(x);
    if constexpr (F == Fn::log1p_small) return vm::log1p_small(x);
    return vm::log1p_small(vm::exp_nonpositive(-std::abs(x)));
}

template <Fn F>
double ref(float x) {
    if constexpr (F == Fn::exp) return std::exp(double(x));
    if constexpr (F == Fn::log) return std::log(double(x));
    if constexpr (F == Fn::log1p || F == Fn::log1p_small) return std::log1p(double(x));
    return std::log1p(std::exp(-std::fabs(double(x))));
}

template <Fn F>
long double ref(double x) {
    if constexpr (F == Fn::exp) return std::exp((long double)x);
    if constexpr (F == Fn::log) return std::log((long double)x);
    if constexpr (F == Fn::log1p || F == Fn::log1p_small) return std::log1p((long double)x);
    return std::log1p(std::exp(-std::fabs((long double)x)));
}

// --- ulp error ---------------------------------------------------------------------------------

constexpr double kInf = std::numeric_limits<double>::infinity();

double ulp_error(float y, double r) {
    if (std::isnan(r)) return std::isnan(y) ? 0.0 : kInf;
    if (y == float(r)) return 0.0;  // also covers matching infinities and zeros
    if (!std::isfinite(y) || std::isnan(y)) return kInf;
    const double a = std::fabs(r);
    const int e = a < 0x1p-126 ? -126 : std::min(std::ilogb(a), 127);
    return std::fabs(double(y) - r) / std::ldexp(1.0, e - 23);
}

double ulp_error(double y, long double r) {
    if (std::isnan(r)) return std::isnan(y) ? 0.0 : kInf;
    if (y == double(r)) return 0.0;
    if (!std::isfinite(y) || std::isnan(y)) return kInf;
    const long double a = std::fabs(r);
    const int e = a < 0x1p-1022L ? -1022 : std::min(std::ilogb(a), 1023);
    return double(std::fabs((long double)y - r) / std::ldexp(1.0L, e - 52));
}

// --- statistics --------------------------------------------------------------------------------

struct Stats {
    double worst = 0;
    double worst_x = 0;
    double worst_normal = 0;  // over the points whose exact result is a normal number
    double worst_normal_x = 0;
    std::uint64_t points = 0;
    std::uint64_t above_half = 0;      // results that are not correctly rounded (err > 0.5 ulp)
    std::uint64_t scalar_checked = 0;  // points also run through the scalar call
    std::uint64_t scalar_differs = 0;  // ... whose result differs bitwise from the loop's
};

template <class T>
std::uint64_t bits_of(T v) {
    if constexpr (sizeof(T) == 4) return std::bit_cast<std::uint32_t>(v);
    else return std::bit_cast<std::uint64_t>(v);
}

template <Fn F, class T>
void check_block(Stats& st, const std::vector<T>& in, std::vector<T>& out) {
    out.resize(in.size());
    batch<F, T>(in.data(), out.data(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const auto r = ref<F>(in[i]);
        const double err = ulp_error(out[i], r);
        ++st.points;
        if (err > 0.5) ++st.above_half;
        if (err > st.worst || std::isnan(err)) {
            st.worst = std::isnan(err) ? kInf : err;
            st.worst_x = double(in[i]);
        }
        if (std::fabs(r) >= std::numeric_limits<T>::min() && err > st.worst_normal) {
            st.worst_normal = err;
            st.worst_normal_x = double(in[i]);
        }
        if (i % 16 == 0) {
            const T ys = scalar<F, T>(in[i]);
            ++st.scalar_checked;
            const bool same = bits_of(ys) == bits_of(out[i]) || (ys != ys && out[i] != out[i]);
            if (!same) {
                ++st.scalar_differs;
                const double es = ulp_error(ys, ref<F>(in[i]));
                if (es > st.worst || std::isnan(es)) {
                    st.worst = std::isnan(es) ? kInf : es;
                    st.worst_x = double(in[i]);
                }
            }
        }
    }
}

// --- float32: sampled or exhaustive sweep over bit patterns, plus dense windows --------------

template <Fn F>
Stats sweep_float() {
    Stats st;
    std::vector<float> in, out;
    in.reserve(1 << 16);
    auto flush = [&] {
        check_block<F, float>(st, in, out);
        in.clear();
    };
    auto add = [&](std::uint32_t b) {
        if (!in_domain<F>(std::bit_cast<float>(b))) return;
        in.push_back(std::bit_cast<float>(b));
        if (in.size() == (1u << 16)) flush();
    };
#ifdef FASTBCE_VM_EXHAUSTIVE
    for (std::uint64_t b = 0; b <= 0xffffffffu; ++b) add(std::uint32_t(b));
#else
    for (std::uint64_t b = 0; b <= 0xffffffffu; b += 61) add(std::uint32_t(b));
    // every float in 2^18-wide windows (in bit space) around the critical points
    const float centres[] = {1.0f,      -1.0f,       0.5f,       2.0f,        0x1.6a09e6p-1f,
                             0x1.6a09e6p0f, 0x1.6a09e6p0f - 1, 0x1.6a09e6p-1f - 1, -0.5f,
                             88.72f,    -87.33f,     -103.97f,   -100.0f,     0.34657f,
                             -0.34657f, 1e-30f,      0x1p-126f,  0x1p-140f,   0x1.6a09e6p20f - 1};
    for (float c : centres) {
        const std::uint32_t cb = std::bit_cast<std::uint32_t>(c);
        for (std::uint32_t d = 0; d < (1u << 18); ++d) add(cb - (1u << 17) + d);
    }
#endif
    flush();
    return st;
}

// --- float64: random and structured inputs -----------------------------------------------------

struct Rng {  // splitmix64
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        return z ^ (z >> 31);
    }
    double uniform() { return double(next() >> 11) * 0x1p-53; }  // [0, 1)
    double uniform(double a, double b) { return a + (b - a) * uniform(); }
    // |value| log-uniform in [2^lo, 2^hi)
    double log_uniform(int lo, int hi) {
        return std::ldexp(1.0 + uniform(), lo + int(next() % std::uint64_t(hi - lo)));
    }
};

// the bit patterns within +-k ulp of v
void around(std::vector<double>& v, double c, int k) {
    const std::uint64_t b = std::bit_cast<std::uint64_t>(c);
    for (int d = -k; d <= k; ++d)
        v.push_back(std::bit_cast<double>(b + std::uint64_t(std::int64_t(d))));
}

template <Fn F>
std::vector<double> double_inputs() {
    const std::size_t n = FASTBCE_VM_DOUBLE_N;
    Rng g{0x5eed0000u + std::uint64_t(F)};
    std::vector<double> v;
    const double ln2 = 0x1.62e42fefa39efp-1;
    for (std::size_t i = 0; i < n; ++i) v.push_back(std::bit_cast<double>(g.next()));  // any bits
    for (int k = -1074; k <= 1023; ++k) around(v, std::ldexp(1.0, k), 2);  // powers of two
    for (std::size_t i = 0; i < n / 8; ++i)  // subnormals
        v.push_back(std::bit_cast<double>(g.next() & 0x800fffffffffffffu));
    if constexpr (F == Fn::log1p_small) {  // its domain [-1/2, 1], dense near 0 and the ends
        for (std::size_t i = 0; i < n; ++i) v.push_back(g.uniform(-0.5, 1.0));
        for (std::size_t i = 0; i < n; ++i)
            v.push_back((g.next() & 1 ? -0.5 : 1.0) * g.log_uniform(-1074, 0));
        for (double c : {-0.5, 1.0, 0.0, -0.0}) around(v, c, 64);
    }
    if constexpr (F == Fn::exp || F == Fn::softplus_tail) {
        for (std::size_t i = 0; i < n; ++i) v.push_back(g.uniform(-746.0, 710.0));
        for (std::size_t i = 0; i < n; ++i) v.push_back(g.uniform(-1.0, 1.0));
        for (std::size_t i = 0; i < n; ++i)
            v.push_back((g.next() & 1 ? -1 : 1) * g.log_uniform(-60, 0));
        for (std::size_t i = 0; i < n; ++i)  // where subnormal results begin and end
            v.push_back(g.uniform(-745.2, -700.0));
        // where x/ln2 is half-way between integers: |r| is largest
        for (int k = -1076; k <= 1025; ++k) around(v, (k + 0.5) * ln2, 3);
        const double edges[] = {709.782712893384, 709.7827128933841, 709.78271289338397,
                                -708.3964185322641, -744.4400719213812, -745.1332191019411,
                                -745.1332191019412, 0.0, -0.0};
        for (double c : edges) around(v, c, 64);
    } else {
        for (std::size_t i = 0; i < n; ++i) v.push_back(g.log_uniform(-1074, 1024));
        for (std::size_t i = 0; i < n; ++i)  // near 0 for log1p, near 1 for log
            v.push_back((F == Fn::log ? 1.0 : 0.0) +
                        (g.next() & 1 ? -1 : 1) * g.log_uniform(-60, -1));
        for (std::size_t i = 0; i < n; ++i) v.push_back(g.uniform(0.25, 4.0));
        // where the reduction switches exponent: m = sqrt(2)/2 2^k
        const double sqrt_half = 0x1.6a09e667f3bcdp-1;
        for (int k = -1022; k <= 1023; ++k) around(v, std::ldexp(sqrt_half, k), 2);
        if constexpr (F == Fn::log1p) {
            for (std::size_t i = 0; i < n; ++i)  // (-1, 0), log-dense towards -1
                v.push_back(-1.0 + g.log_uniform(-53, 0));
            for (std::size_t i = 0; i < n; ++i) v.push_back(g.uniform(-1.0, 1.0));
            for (std::size_t i = 0; i < n; ++i) v.push_back(g.log_uniform(-1, 60));
            for (int k = -60; k <= 1023; ++k) around(v, std::ldexp(sqrt_half, k) - 1.0, 3);
            around(v, -1.0, 64);
        }
    }
    return v;
}

template <Fn F>
Stats sweep_double() {
    Stats st;
    std::vector<double> all = double_inputs<F>(), in, out;
    std::erase_if(all, [](double x) { return !in_domain<F>(x); });
    for (std::size_t i = 0; i < all.size(); i += (1u << 16)) {
        in.assign(all.begin() + std::ptrdiff_t(i),
                  all.begin() + std::ptrdiff_t(std::min(all.size(), i + (1u << 16))));
        check_block<F, double>(st, in, out);
    }
    return st;
}

// --- special values ----------------------------------------------------------------------------

int special_failures = 0;

template <class T>
bool same_value(T a, T b) {  // NaN matches NaN; zeros must match in sign
    if (a != a || b != b) return a != a && b != b;
    return a == b && std::signbit(a) == std::signbit(b);
}

template <Fn F, class T>
void expect(T x, T want, const char* what) {
    // through the scalar call and through a loop long enough to run the vector body
    const T ys = scalar<F, T>(x);
    std::vector<T> in(203, x), out(203);
    batch<F, T>(in.data(), out.data(), in.size());
    bool ok = same_value(ys, want);
    for (T y : out) ok = ok && same_value(y, want);
    if (!ok) {
        ++special_failures;
        std::printf("FAIL special %s<%s>(%a) [%s]: want %a, scalar %a, loop %a\n", fn_name(F),
                    sizeof(T) == 4 ? "float" : "double", double(x), what, double(want),
                    double(ys), double(out[0]));
    }
}

template <Fn F, class T>
void expect_close(T x, double max_ulp, const char* what) {  // against the reference
    const T ys = scalar<F, T>(x);
    std::vector<T> in(203, x), out(203);
    batch<F, T>(in.data(), out.data(), in.size());
    double err = ulp_error(ys, ref<F>(x));
    for (T y : out) err = std::max(err, ulp_error(y, ref<F>(x)));
    if (!(err <= max_ulp)) {
        ++special_failures;
        std::printf("FAIL special %s<%s>(%a) [%s]: %.3f ulp (scalar %a, loop %a, ref %La)\n",
                    fn_name(F), sizeof(T) == 4 ? "float" : "double", double(x), what, err,
                    double(ys), double(out[0]), (long double)ref<F>(x));
    }
}

template <class T>
void specials() {
    using L = std::numeric_limits<T>;
    const T inf = L::infinity(), nan = L::quiet_NaN(), tiny = L::denorm_min(), big = L::max();
    const bool f32 = sizeof(T) == 4;
    expect<Fn::exp, T>(-inf, T(0), "exp(-inf) = 0");
    expect<Fn::exp, T>(inf, inf, "exp(inf) = inf");
    expect<Fn::exp, T>(nan, nan, "exp(NaN) = NaN");
    expect<Fn::exp, T>(-nan, nan, "exp(-NaN) = NaN");
    expect<Fn::exp, T>(T(0), T(1), "exp(0) = 1");
    expect<Fn::exp, T>(-T(0), T(1), "exp(-0) = 1");
    expect<Fn::exp, T>(T(f32 ? 89 : 710), inf, "overflow");
    expect<Fn::exp, T>(T(1000), inf, "overflow");
    expect<Fn::exp, T>(big, inf, "overflow");
    expect<Fn::exp, T>(T(f32 ? -104 : -746), T(0), "underflow to +0");
    expect<Fn::exp, T>(T(f32 ? -103.98 : -745.14), T(0), "underflow to +0");
    expect<Fn::exp, T>(T(-1000), T(0), "underflow to +0");
    expect<Fn::exp, T>(-big, T(0), "underflow to +0");
    expect<Fn::exp, T>(T(1e-30), T(1), "exp(tiny) = 1");
    expect<Fn::exp, T>(tiny, T(1), "exp(subnormal) = 1");
    expect_close<Fn::exp, T>(T(-100), 1.0, "exp(-100): subnormal in float");
    expect_close<Fn::exp, T>(T(f32 ? -103.9 : -745.0), 1.0, "smallest subnormal results");
    expect_close<Fn::exp, T>(T(f32 ? -87.5 : -708.5), 1.0, "just below the normal range");
    expect_close<Fn::exp, T>(T(f32 ? 88.7 : 709.7), 1.0, "near overflow");
    expect_close<Fn::exp, T>(T(1), 1.0, "e");

    expect<Fn::log, T>(T(0), -inf, "log(0) = -inf");
    expect<Fn::log, T>(-T(0), -inf, "log(-0) = -inf");
    expect<Fn::log, T>(T(-1), nan, "log(<0) = NaN");
    expect<Fn::log, T>(-tiny, nan, "log(<0) = NaN");
    expect<Fn::log, T>(-inf, nan, "log(-inf) = NaN");
    expect<Fn::log, T>(inf, inf, "log(inf) = inf");
    expect<Fn::log, T>(nan, nan, "log(NaN) = NaN");
    expect<Fn::log, T>(T(1), T(0), "log(1) = +0");
    expect_close<Fn::log, T>(tiny, 1.0, "smallest subnormal");
    expect_close<Fn::log, T>(L::min() / 3, 1.0, "subnormal");
    expect_close<Fn::log, T>(L::min(), 1.0, "smallest normal");
    expect_close<Fn::log, T>(big, 1.0, "largest finite");
    expect_close<Fn::log, T>(T(2), 1.0, "ln 2");

    expect<Fn::log1p, T>(T(-1), -inf, "log1p(-1) = -inf");
    expect<Fn::log1p, T>(T(-1.5), nan, "log1p(<-1) = NaN");
    expect<Fn::log1p, T>(-inf, nan, "log1p(-inf) = NaN");
    expect<Fn::log1p, T>(inf, inf, "log1p(inf) = inf");
    expect<Fn::log1p, T>(nan, nan, "log1p(NaN) = NaN");
    expect<Fn::log1p, T>(T(0), T(0), "log1p(0) = +0");
    expect<Fn::log1p, T>(-T(0), -T(0), "log1p(-0) = -0");
    expect<Fn::log1p, T>(T(1e-30), T(1e-30), "log1p(tiny) = tiny");
    expect<Fn::log1p, T>(T(-1e-30), T(-1e-30), "log1p(-tiny) = -tiny");
    expect<Fn::log1p, T>(tiny, tiny, "log1p(subnormal) = subnormal");
    expect<Fn::log1p, T>(-tiny, -tiny, "log1p(subnormal) = subnormal");
    expect<Fn::log1p, T>(L::min(), L::min(), "log1p(min normal)");
    expect_close<Fn::log1p, T>(-1 + L::epsilon() / 2, 1.0, "closest to -1");
    expect_close<Fn::log1p, T>(T(-0.75), 1.0, "(-1, -0.5)");
    expect_close<Fn::log1p, T>(big, 1.0, "largest finite");
    expect_close<Fn::log1p, T>(T(1), 1.0, "ln 2");

    // log1p of every subnormal (float: all of them; double: a stride) is the input itself
    const std::uint64_t n_sub = f32 ? (1u << 23) : (1ull << 52);
    const std::uint64_t step = f32 ? 1 : (1ull << 52) / 1000003;
    std::vector<T> in, out;
    for (std::uint64_t m = 1; m < n_sub; m += step) {
        if constexpr (sizeof(T) == 4) {
            in.push_back(std::bit_cast<float>(std::uint32_t(m)));
            in.push_back(-std::bit_cast<float>(std::uint32_t(m)));
        } else {
            in.push_back(std::bit_cast<double>(m));
            in.push_back(-std::bit_cast<double>(m));
        }
    }
    out.resize(in.size());
    batch<Fn::log1p, T>(in.data(), out.data(), in.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < in.size(); ++i) bad += !same_value(out[i], in[i]);
    if (bad) {
        ++special_failures;
        std::printf("FAIL log1p<%s>(subnormal) != input for %zu of %zu\n", f32 ? "float" : "double",
                    bad, in.size());
    }
}

// The kernel's exp(-|x|) takes exp_nonpositive_normal where |x| <= normal_exp_max and
// exp_nonpositive elsewhere: on that range the two must give the same bits (float: every 61st
// bit pattern, or all of them with FASTBCE_VM_EXHAUSTIVE; double: a sample), so the accuracy of
// the composition below holds for both paths.
template <class T>
__attribute__((noinline)) void exp_pair(const T* in, T* fast, T* general, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) fast[i] = vm::exp_nonpositive_normal(in[i]);
    for (std::size_t i = 0; i < n; ++i) general[i] = vm::exp_nonpositive(in[i]);
}

template <class T>
int normal_exp_failures() {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    const T lo = -vm::normal_exp_max<T>;
    std::vector<T> in, fast, general;
    if constexpr (sizeof(T) == 4) {
#ifdef FASTBCE_VM_EXHAUSTIVE
        const std::uint32_t step = 1;
#else
        const std::uint32_t step = 61;
#endif
        for (std::uint32_t b = 0x80000000u; b <= std::bit_cast<std::uint32_t>(lo); b += step)
            in.push_back(std::bit_cast<float>(b));
        // every float at the end of the range, where the smallest normal results are (n = -126)
        for (std::uint32_t b = std::bit_cast<std::uint32_t>(-86.0f); b <= std::bit_cast<std::uint32_t>(lo); ++b)
            in.push_back(std::bit_cast<float>(b));
    } else {
        Rng g{0x5eedfa57u};
        for (std::size_t i = 0; i < FASTBCE_VM_DOUBLE_N; ++i) in.push_back(g.uniform(lo, 0.0));
        for (std::size_t i = 0; i < FASTBCE_VM_DOUBLE_N; ++i) in.push_back(-g.log_uniform(-1074, 0));
    }
    in.push_back(lo);
    in.push_back(T(0));
    fast.resize(in.size());
    general.resize(in.size());
    std::uint64_t differ = 0;
    for (std::size_t i = 0; i < in.size(); i += (1u << 20)) {
        const std::size_t n = std::min<std::size_t>(in.size() - i, 1u << 20);
        exp_pair(in.data() + i, fast.data() + i, general.data() + i, n);
        for (std::size_t j = i; j < i + n; ++j)
            if (std::bit_cast<U>(fast[j]) != std::bit_cast<U>(general[j])) {
                if (!differ)
                    std::printf("FAIL exp_nonpositive_normal<%s>(%a) = %a, exp_nonpositive %a\n",
                                sizeof(T) == 4 ? "float" : "double", double(in[j]), double(fast[j]),
                                double(general[j]));
                ++differ;
            }
    }
    std::printf("exp_nonpositive_normal %-6s %10zu points in [%g, 0]: %" PRIu64 " differ from exp_nonpositive\n",
                sizeof(T) == 4 ? "float" : "double", in.size(), double(lo), differ);
    return differ ? 1 : 0;
}

// The kernel treats exp(-a) as +0 for every a >= zero_exp_min (a whole tile of such logits skips
// the general exp): exp_nonpositive must give exactly +0 there (float: every float from
// zero_exp_min to 105; double: a sample up to 747), and a positive value just below it.
template <class T>
__attribute__((noinline)) void exp_general_loop(const T* in, T* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = vm::exp_nonpositive(in[i]);
}

template <class T>
int zero_exp_failures() {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    const T lo = vm::zero_exp_min<T>, hi = sizeof(T) == 4 ? T(105) : T(747);
    std::vector<T> in;
    if constexpr (sizeof(T) == 4) {
        for (U b = std::bit_cast<U>(lo); b <= std::bit_cast<U>(hi); ++b) in.push_back(-std::bit_cast<T>(b));
    } else {
        Rng g{0x2e20e4u};
        for (std::size_t i = 0; i < FASTBCE_VM_DOUBLE_N; ++i) in.push_back(-g.uniform(lo, hi));
        for (U b = std::bit_cast<U>(lo); b < std::bit_cast<U>(lo) + 100000u; ++b) in.push_back(-std::bit_cast<T>(b));
    }
    std::vector<T> out(in.size());
    exp_general_loop(in.data(), out.data(), in.size());
    std::uint64_t nonzero = 0;
    for (std::size_t i = 0; i < in.size(); ++i)
        if (std::bit_cast<U>(out[i]) != 0) {
            if (!nonzero)
                std::printf("FAIL exp_nonpositive<%s>(%a) = %a, not +0\n", sizeof(T) == 4 ? "float" : "double",
                            double(in[i]), double(out[i]));
            ++nonzero;
        }
    T below = -lo * T(0.9999), below_out;
    exp_general_loop(&below, &below_out, 1);
    if (!(below_out > T(0))) {
        std::printf("FAIL exp_nonpositive<%s>(%a) = 0: zero_exp_min is not tight\n",
                    sizeof(T) == 4 ? "float" : "double", double(below));
        ++nonzero;
    }
    std::printf("exp_nonpositive        %-6s %10zu points in [%g, %g]: %" PRIu64 " not +0\n",
                sizeof(T) == 4 ? "float" : "double", in.size(), double(-hi), double(-lo), nonzero);
    return nonzero ? 1 : 0;
}

int report(Fn f, const char* type, const char* mode, const Stats& st, double limit) {
    const bool ok = st.worst <= limit;
    std::printf("%-12s %-6s %-10s %10" PRIu64 " points  worst %.3f ulp at %-24a normal results "
                "%.3f at %-24a %.3g%% > 0.5 ulp; scalar/loop differ %" PRIu64 "/%" PRIu64 "%s\n",
                fn_name(f), type, mode, st.points, st.worst, st.worst_x, st.worst_normal,
                st.worst_normal_x, 100.0 * double(st.above_half) / double(st.points),
                st.scalar_differs, st.scalar_checked, ok ? "" : "  FAIL");
    return ok ? 0 : 1;
}

}  // namespace

int main() {
    std::printf("vecmath test: %s, FMA %s, %s\n",
#if defined(__AVX512F__)
                "AVX-512",
#elif defined(__AVX2__)
                "AVX2",
#elif defined(__SSE4_2__)
                "SSE4.2",
#else
                "baseline",
#endif
#ifdef __FMA__
                "yes",
#else
                "no",
#endif
#ifdef FASTBCE_VM_EXHAUSTIVE
                "float32 exhaustive"
#else
                "float32 sampled"
#endif
    );
    specials<float>();
    specials<double>();
    int fails = special_failures;
    fails += normal_exp_failures<float>();
    fails += normal_exp_failures<double>();
    fails += zero_exp_failures<float>();
    fails += zero_exp_failures<double>();
#ifdef FASTBCE_VM_EXHAUSTIVE
    const char* fmode = "exhaustive";
#else
    const char* fmode = "sampled";
#endif
    const double lim = FASTBCE_VM_MAX_ULP;
    fails += report(Fn::exp, "float", fmode, sweep_float<Fn::exp>(), lim);
    fails += report(Fn::log, "float", fmode, sweep_float<Fn::log>(), lim);
    fails += report(Fn::log1p, "float", fmode, sweep_float<Fn::log1p>(), lim);
    fails += report(Fn::exp, "double", "random", sweep_double<Fn::exp>(), lim);
    fails += report(Fn::log, "double", "random", sweep_double<Fn::log>(), lim);
    fails += report(Fn::log1p, "double", "random", sweep_double<Fn::log1p>(), lim);
    // log1p_small trades the correction of 1 + x for speed: held to the contract's 2 ulp
    fails += report(Fn::log1p_small, "float", fmode, sweep_float<Fn::log1p_small>(), 2.0);
    fails += report(Fn::log1p_small, "double", "random", sweep_double<Fn::log1p_small>(), 2.0);
    // the composition adds the errors of both functions: held to the contract's 2 ulp
    fails += report(Fn::softplus_tail, "float", fmode, sweep_float<Fn::softplus_tail>(), 2.0);
    fails += report(Fn::softplus_tail, "double", "random", sweep_double<Fn::softplus_tail>(), 2.0);
    std::printf("%s (%d special-value failures)\n", fails ? "FAILED" : "PASSED", special_failures);
    return fails ? 1 : 0;
}
