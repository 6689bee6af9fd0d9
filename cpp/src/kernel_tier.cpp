// One SIMD tier of the kernel. CMake compiles this file once per tier with that tier's -march
// flags and FASTBCE_TIER set to the tier's namespace (tier_baseline, tier_v2, tier_v3, tier_v4).
#include "fastbce/grad.hpp"
#include "fastbce/kernel.hpp"
#include "fastbce/report.hpp"

namespace fastbce {
namespace FASTBCE_TIER {

const Kernels& kernels() {
    static const Kernels table = make_kernels();
    return table;
}

const ReportKernels& report_kernels() {
    static const ReportKernels table = make_report_kernels();
    return table;
}

const GradKernels& grad_kernels() {
    static const GradKernels table = make_grad_kernels();
    return table;
}

}  // namespace FASTBCE_TIER
}  // namespace fastbce
