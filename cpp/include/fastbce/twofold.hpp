// Double-double arithmetic (a value as an unevaluated sum hi + lo, |lo| <= ulp(hi)/2): about 106
// bits, for the few float64 quantities whose terms cancel (the focal Hessian near its zeros,
// docs/gradients.md). Branch-free, so it vectorises like the rest of the kernel.
//
// The exact product error comes from a fused multiply-add where the tier has one (v3, v4), and
// from Dekker's splitting elsewhere (no FMA instruction, so -ffp-contract cannot fuse anything
// there). Under -ffp-contract=fast every sum below stays exact: none contains a product the
// compiler could fuse except in the FMA branch, where fusing only removes a rounding.
// Inputs must stay below 2^995 in magnitude (the splitting multiplies by 2^27 + 1).
#pragma once

#include <cmath>

namespace fastbce {
namespace FASTBCE_TIER {
namespace twofold {

struct DD {
    double hi, lo;
};

// a + b exactly (Knuth's TwoSum: any magnitudes)
inline DD two_sum(double a, double b) {
    const double s = a + b;
    const double bb = s - a;
    return {s, (a - (s - bb)) + (b - bb)};
}

// a * b exactly
inline DD two_prod(double a, double b) {
    const double p = a * b;
#if defined(__FMA__)
    return {p, std::fma(a, b, -p)};
#else
    constexpr double split = 134217729.0;  // 2^27 + 1
    const double ta = split * a, tb = split * b;
    const double ah = ta - (ta - a), bh = tb - (tb - b);
    const double al = a - ah, bl = b - bh;
    return {p, ((ah * bh - p) + ah * bl + al * bh) + al * bl};
#endif
}

// renormalises hi + lo for |hi| >= |lo| (Fast2Sum)
inline DD fast(double hi, double lo) {
    const double s = hi + lo;
    return {s, lo - (s - hi)};
}

inline DD add(DD a, DD b) {
    const DD s = two_sum(a.hi, b.hi);
    return fast(s.hi, s.lo + (a.lo + b.lo));
}

inline DD add(DD a, double b) {
    const DD s = two_sum(a.hi, b);
    return fast(s.hi, s.lo + a.lo);
}

inline DD neg(DD a) { return {-a.hi, -a.lo}; }

inline DD mul(DD a, double b) {
    const DD p = two_prod(a.hi, b);
    return fast(p.hi, p.lo + a.lo * b);
}

inline DD mul(DD a, DD b) {
    const DD p = two_prod(a.hi, b.hi);
    return fast(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

}  // namespace twofold
}  // namespace FASTBCE_TIER
}  // namespace fastbce
