// The ROC AUC of an AUC histogram of the evaluation report (docs/report.md), and the most that its
// binning can move it: one pass over the bins, in bin order. No Python, no SIMD.
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

}  // namespace fastbce
