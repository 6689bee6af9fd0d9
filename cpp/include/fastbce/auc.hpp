// The evaluation report's per-group keys that are computed in C++ (docs/report.md): the ROC AUC of
// an AUC histogram and the most that its binning can move it (one pass over the bins, in bin
// order), and the entropy of a base rate (normalized_entropy's denominator). No Python, no SIMD.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace fastbce {

// hist: `bins` pairs (weight of positives, weight of negatives), bins in ascending prediction.
// auc = sum over bins of pos (negatives below + neg / 2) / (P N), ties within a bin counted 1/2;
// bound = sum of pos neg / (2 P N). Both NaN unless P > 0 and N > 0.
inline void histogram_auc(const double* hist, int64_t bins, double& auc, double& bound) {
    double below = 0.0, pairs = 0.0, tied = 0.0, positives = 0.0;
    for (int64_t b = 0; b < bins; ++b) {
        const double pos = hist[2 * b], neg = hist[2 * b + 1];
        pairs += pos * (below + 0.5 * neg);
        tied += pos * neg;
        below += neg;
        positives += pos;
    }
    if (!(positives > 0.0 && below > 0.0)) {  // (NaN too)
        auc = bound = std::numeric_limits<double>::quiet_NaN();
        return;
    }
    const double denominator = positives * below;
    auc = pairs / denominator;
    bound = tied / (2.0 * denominator);
}

// H(b) = -b ln b - (1 - b) ln(1 - b) for b in (0, 1), 0 at 0 and 1, NaN elsewhere (NaN too).
// The C library's log and log1p, as Python's math module calls them, in the same order (built
// without FMA contraction): the bits of the Python expression, a million groups in 10 ms
// rather than a second of per-group Python calls.
inline double binary_entropy(double b) {
    if (!(b > 0.0 && b < 1.0)) return b == 0.0 || b == 1.0 ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    return -b * std::log(b) - (1.0 - b) * std::log1p(-b);
}

}  // namespace fastbce
