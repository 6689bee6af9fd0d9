#pragma once
// softplus(-a) = log1p(exp(-a)) for float a = |x| < 31.5 on AVX-512, by table: 32 polynomials of
// degree 6 (degree 7 for focal losses with gamma > 2: softplus_table), one per interval
// [k - 1/2, k + 1/2), in h = a - k (exact), their coefficients picked per lane with vpermt2ps (a
// 32-entry table in two registers, one instruction). No exp, no log, no division: the float32 logits loss's exp
// and log1p_small cost ~60 vector instructions per 16 elements, this ~20. Only where the tier has
// AVX-512 (AVX2's vpermps holds 8 entries); the other tiers keep exp and log1p_small. An element
// takes this formula or, for |x| >= 31.5 (and NaN), the caller's exp, by its own value alone: its
// loss never depends on its tile or position. The coefficients are ours:
// tools/derive_softplus_table.py derives them and prints the table below; regenerate it there,
// never edit it by hand. Accuracy: docs/vecmath.md.
#include <bit>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "fastbce/vecmath.hpp"

namespace fastbce { namespace FASTBCE_TIER { namespace vm {

#if defined(__AVX512F__)
#define FASTBCE_SOFTPLUS_TABLE 1

// The table's domain: a < 31.5 rounds to an interval k <= 31 (31.5 itself would round to 32).
inline constexpr float softplus_table_max = 31.5f;

namespace detail {
// kSoftplusTable[i][k]: the coefficient of h^i on interval k (as the script printed it: max
// relative error of the rounded polynomials 4.76e-08, 0.799 units of 2^-24)
alignas(64) inline constexpr float kSoftplusTable[8][32] = {
    {0x1.62e43p-1f, 0x1.40c7acp-2f, 0x1.03f2d6p-3f, 0x1.8e071p-5f,
     0x1.295e5p-6f, 0x1.b818dap-8f, 0x1.447e36p-9f, 0x1.dddef4p-11f,
     0x1.5fb2f6p-12f, 0x1.02cb0cp-13f, 0x1.7cd564p-15f, 0x1.1834a8p-16f,
     0x1.9c547p-18f, 0x1.2f603ep-19f, 0x1.be6c64p-21f, 0x1.4875c6p-22f,
     0x1.e355bap-24f, 0x1.639e3p-25f, 0x1.05a628p-26f, 0x1.81057p-28f,
     0x1.1b4866p-29f, 0x1.a0db0ep-31f, 0x1.32b48cp-32f, 0x1.c3527ep-34f,
     0x1.4c1078p-35f, 0x1.e8a37ap-37f, 0x1.67852ap-38f, 0x1.08852ap-39f,
     0x1.853f02p-41f, 0x1.1e642cp-42f, 0x1.a56e0cp-44f, 0x1.36121ep-45f},
    {-0x1.000004p-1f, -0x1.136562p-2f, -0x1.e84156p-4f, -0x1.848344p-5f,
     -0x1.26afap-6f, -0x1.b69f68p-8f, -0x1.441778p-9f, -0x1.dda738p-11f,
     -0x1.5fa3dcp-12f, -0x1.02c6f6p-13f, -0x1.7cd32cp-15f, -0x1.18340ep-16f,
     -0x1.9c541cp-18f, -0x1.2f6028p-19f, -0x1.be6c58p-21f, -0x1.4875c2p-22f,
     -0x1.e355b8p-24f, -0x1.639e2ep-25f, -0x1.05a628p-26f, -0x1.81057p-28f,
     -0x1.1b4866p-29f, -0x1.a0db0ep-31f, -0x1.32b48cp-32f, -0x1.c3527ep-34f,
     -0x1.4c1078p-35f, -0x1.e8a37ap-37f, -0x1.67852ap-38f, -0x1.08852ap-39f,
     -0x1.853f02p-41f, -0x1.1e642cp-42f, -0x1.a56e0cp-44f, -0x1.36121ep-45f},
    {0x1.00013cp-3f, 0x1.92a94ep-4f, 0x1.ae0d62p-5f, 0x1.72163cp-6f,
     0x1.2162fp-7f, 0x1.b3afecp-9f, 0x1.434a2cp-10f, 0x1.dd381p-12f,
     0x1.5f85cep-13f, 0x1.02bebep-14f, 0x1.7ccef8p-16f, 0x1.18331ap-17f,
     0x1.9c53aap-19f, 0x1.2f5fcap-20f, 0x1.be6c2ep-22f, 0x1.4875f8p-23f,
     0x1.e355b2p-25f, 0x1.639e74p-26f, 0x1.05a656p-27f, 0x1.81056ap-29f,
     0x1.1b483cp-30f, 0x1.a0dadp-32f, 0x1.32b48ap-33f, 0x1.c35294p-35f,
     0x1.4c10bep-36f, 0x1.e8a39p-38f, 0x1.67854ap-39f, 0x1.08850cp-40f,
     0x1.853efap-42f, 0x1.1e641ap-43f, 0x1.a56e1cp-45f, 0x1.36122ap-46f},
    {-0x1.64e6ecp-16f, -0x1.f031d8p-7f, -0x1.b4b0ap-7f, -0x1.bea4e6p-8f,
     -0x1.73f988p-9f, -0x1.1e91e6p-10f, -0x1.aceb22p-12f, -0x1.3d9144p-13f,
     -0x1.d4630ep-15f, -0x1.58e8p-16f, -0x1.fbb486p-18f, -0x1.759782p-19f,
     -0x1.12e23ap-20f, -0x1.947e2ep-22f, -0x1.299d16p-23f, -0x1.b5f3c8p-25f,
     -0x1.42391cp-26f, -0x1.da2a88p-28f, -0x1.5cde3cp-29f, -0x1.00ae28p-30f,
     -0x1.79b4fep-32f, -0x1.15e6bcp-33f, -0x1.98f09ap-35f, -0x1.2ce1cep-36f,
     -0x1.bac1d4p-38f, -0x1.45c274p-39f, -0x1.df5cb6p-41f, -0x1.60b0ecp-42f,
     -0x1.037f36p-43f, -0x1.7dda8p-45f, -0x1.18f42p-46f, -0x1.9d6dap-48f},
    {-0x1.4eb7cap-8f, -0x1.821058p-10f, 0x1.a8b9ap-10f, 0x1.67c36cp-10f,
     0x1.58df9p-11f, 0x1.16dc48p-12f, 0x1.a8bdbep-14f, 0x1.3c568p-15f,
     0x1.d3acf8p-17f, 0x1.58c036p-18f, 0x1.fb7ba6p-20f, 0x1.756d88p-21f,
     0x1.12d0d6p-22f, 0x1.949472p-24f, 0x1.299f86p-25f, 0x1.b5d0dap-27f,
     0x1.423788p-28f, 0x1.da01d6p-30f, 0x1.5cc398p-31f, 0x1.00ae0ep-32f,
     0x1.79c88ap-34f, 0x1.15f52cp-35f, 0x1.98ef02p-37f, 0x1.2cd9f8p-38f,
     0x1.ba9a42p-40f, 0x1.45ba96p-41f, 0x1.df48e6p-43f, 0x1.60be54p-44f,
     0x1.037f9cp-45f, 0x1.7de11ap-47f, 0x1.18edecp-48f, 0x1.9d64a8p-50f},
    {-0x1.12a4acp-12f, 0x1.0d3592p-10f, 0x1.65691ep-13f, -0x1.4778c2p-13f,
     -0x1.d34d94p-14f, -0x1.a5f2b2p-15f, -0x1.4d7674p-16f, -0x1.f60b82p-18f,
     -0x1.7496acp-19f, -0x1.13cce6p-20f, -0x1.94fef2p-22f, -0x1.2a0554p-23f,
     -0x1.b703c2p-25f, -0x1.444544p-26f, -0x1.dc7ae6p-28f, -0x1.5d965cp-29f,
     -0x1.01cb64p-30f, -0x1.7a370cp-32f, -0x1.16b3b2p-33f, -0x1.9ad5ap-35f,
     -0x1.2ea4d2p-36f, -0x1.bd5718p-38f, -0x1.4739c8p-39f, -0x1.e14178p-41f,
     -0x1.618d7ap-42f, -0x1.04897ap-43f, -0x1.7f3a04p-45f, -0x1.1a8p-46f,
     -0x1.9f56bap-48f, -0x1.31b1e6p-49f, -0x1.c16be2p-51f, -0x1.4aac32p-52f},
    {0x1.716d38p-11f, -0x1.0f4b36p-14f, -0x1.02b9eap-13f, -0x1.11491ep-17f,
     0x1.aacc36p-17f, 0x1.f5e098p-18f, 0x1.a6fbdep-19f, 0x1.51074p-20f,
     0x1.f76fa6p-22f, 0x1.6fbf2cp-23f, 0x1.147a34p-24f, 0x1.9a769ep-26f,
     0x1.2b272ap-27f, 0x1.ab824ep-29f, 0x1.3e8b52p-30f, 0x1.df7238p-32f,
     0x1.5a1a1cp-33f, 0x1.03e49cp-34f, 0x1.7dc88ap-36f, 0x1.136708p-37f,
     0x1.8fbc32p-39f, 0x1.261752p-40f, 0x1.b72982p-42f, 0x1.450122p-43f,
     0x1.e61614p-45f, 0x1.5fae7ap-46f, 0x1.03e74ep-47f, 0x1.769eb6p-49f,
     0x1.164824p-50f, 0x1.97db86p-52f, 0x1.2f2d98p-53f, 0x1.be0b42p-55f},
    {-0x1.c3431ep-13f, -0x1.a97402p-15f, 0x1.c3429p-16f, 0x1.156ecep-17f,
     -0x1.1d01e4p-20f, -0x1.ad4348p-21f, -0x1.771ea6p-22f, -0x1.96d244p-23f,
     -0x1.43cd4cp-24f, -0x1.7a4cb6p-26f, -0x1.78771p-27f, -0x1.1e762ep-28f,
     -0x1.873accp-30f, -0x1.89663ep-32f, -0x1.55677ep-33f, -0x1.444022p-34f,
     -0x1.86da86p-36f, -0x1.71df54p-37f, -0x1.e787d2p-39f, -0x1.2ef3d8p-40f,
     -0x1.8519bep-42f, -0x1.1ea9b2p-43f, -0x1.e8c724p-45f, -0x1.7bf2c2p-46f,
     -0x1.407472p-47f, -0x1.99130cp-49f, -0x1.3912dp-50f, -0x1.7a6aa4p-52f,
     -0x1.326114p-53f, -0x1.b32b1ep-55f, -0x1.5fc81p-56f, -0x1.0216eap-57f},
};
// kSoftplusTable6: the same on the same intervals with polynomials of degree 6, for plain and
// weighted cross-entropy and the focal loss with gamma <= 2 (sigmoid_by_softplus): one vpermt2ps
// and one FMA fewer per 16 elements; evaluated, within 1.74 ulp of softplus where kSoftplusTable
// is within 1.21 (every float a in [2^-30, 31.5); docs/vecmath.md). Only focal losses with
// gamma > 2 keep kSoftplusTable (their factor takes the sigmoid table, whose errors and
// softplus's add up: 9.9 of the 12-ulp focal budget at gamma 4 with degree 7).
// (max relative error of the rounded polynomials 6.91e-08 (1.159 ulp))
alignas(64) inline constexpr float kSoftplusTable6[7][32] = {
    {0x1.62e43p-1f, 0x1.40c7acp-2f, 0x1.03f2d6p-3f, 0x1.8e071p-5f,
     0x1.295e5p-6f, 0x1.b818dap-8f, 0x1.447e36p-9f, 0x1.dddef4p-11f,
     0x1.5fb2f6p-12f, 0x1.02cb0cp-13f, 0x1.7cd564p-15f, 0x1.1834a8p-16f,
     0x1.9c547p-18f, 0x1.2f603ep-19f, 0x1.be6c64p-21f, 0x1.4875c6p-22f,
     0x1.e355bap-24f, 0x1.639e3p-25f, 0x1.05a628p-26f, 0x1.81057p-28f,
     0x1.1b4866p-29f, 0x1.a0db0ep-31f, 0x1.32b48cp-32f, 0x1.c3527ep-34f,
     0x1.4c1078p-35f, 0x1.e8a37ap-37f, 0x1.67852ap-38f, 0x1.08852ap-39f,
     0x1.853f02p-41f, 0x1.1e642cp-42f, 0x1.a56e0cp-44f, 0x1.36121ep-45f},
    {-0x1.000004p-1f, -0x1.136568p-2f, -0x1.e8414ap-4f, -0x1.84833ep-5f,
     -0x1.26afa2p-6f, -0x1.b69f6ep-8f, -0x1.44177cp-9f, -0x1.dda742p-11f,
     -0x1.5fa3e4p-12f, -0x1.02c6fap-13f, -0x1.7cd336p-15f, -0x1.183416p-16f,
     -0x1.9c5426p-18f, -0x1.2f602ep-19f, -0x1.be6c6p-21f, -0x1.4875cap-22f,
     -0x1.e355c2p-24f, -0x1.639e38p-25f, -0x1.05a62ep-26f, -0x1.810578p-28f,
     -0x1.1b486cp-29f, -0x1.a0db16p-31f, -0x1.32b492p-32f, -0x1.c35288p-34f,
     -0x1.4c108p-35f, -0x1.e8a384p-37f, -0x1.678532p-38f, -0x1.08852ep-39f,
     -0x1.853f0ap-41f, -0x1.1e6432p-42f, -0x1.a56e14p-44f, -0x1.361224p-45f},
    {0x1.0000fap-3f, 0x1.92a934p-4f, 0x1.ae0d82p-5f, 0x1.721656p-6f,
     0x1.2162eap-7f, 0x1.b3afdep-9f, 0x1.434a1ap-10f, 0x1.dd37fp-12f,
     0x1.5f85b4p-13f, 0x1.02beacp-14f, 0x1.7ccedcp-16f, 0x1.183306p-17f,
     0x1.9c538ap-19f, 0x1.2f5fbep-20f, 0x1.be6c12p-22f, 0x1.4875dep-23f,
     0x1.e35594p-25f, 0x1.639e58p-26f, 0x1.05a642p-27f, 0x1.810554p-29f,
     0x1.1b483p-30f, 0x1.a0dabcp-32f, 0x1.32b476p-33f, 0x1.c35278p-35f,
     0x1.4c10a4p-36f, 0x1.e8a37p-38f, 0x1.678532p-39f, 0x1.0884fap-40f,
     0x1.853ee4p-42f, 0x1.1e640ap-43f, 0x1.a56dfcp-45f, 0x1.361214p-46f},
    {-0x1.88e68p-17f, -0x1.f01a6ap-7f, -0x1.b4bcbcp-7f, -0x1.beabc6p-8f,
     -0x1.73f794p-9f, -0x1.1e8ef6p-10f, -0x1.ace682p-12f, -0x1.3d8bfcp-13f,
     -0x1.d45aap-15f, -0x1.58e35ap-16f, -0x1.fbaa7p-18f, -0x1.758facp-19f,
     -0x1.12dd1p-20f, -0x1.947898p-22f, -0x1.2998bcp-23f, -0x1.b5eb58p-25f,
     -0x1.4233f4p-26f, -0x1.da208cp-28f, -0x1.5cd7e6p-29f, -0x1.00aa1cp-30f,
     -0x1.79af7p-32f, -0x1.15e2dp-33f, -0x1.98ea42p-35f, -0x1.2cdcbcp-36f,
     -0x1.bab974p-38f, -0x1.45bd28p-39f, -0x1.df5474p-41f, -0x1.60ac46p-42f,
     -0x1.037b22p-43f, -0x1.7dd494p-45f, -0x1.18efbp-46f, -0x1.9d671p-48f},
    {-0x1.532dp-8f, -0x1.81bcb8p-10f, 0x1.a885fep-10f, 0x1.67ae88p-10f,
     0x1.58e44cp-11f, 0x1.16e1fcp-12f, 0x1.a8cc34p-14f, 0x1.3c6384p-15f,
     0x1.d3c2p-17f, 0x1.58ceb8p-18f, 0x1.fb924ap-20f, 0x1.757db2p-21f,
     0x1.12ddaap-22f, 0x1.949e28p-24f, 0x1.29aaecp-25f, 0x1.b5e5e4p-27f,
     0x1.4243bp-28f, 0x1.da1858p-30f, 0x1.5cd3bep-31f, 0x1.00b7p-32f,
     0x1.79d232p-34f, 0x1.15fd3ep-35f, 0x1.98ff2ep-37f, 0x1.2ce554p-38f,
     0x1.baaf3ep-40f, 0x1.45c7a2p-41f, 0x1.df5c5ap-43f, 0x1.60ccd8p-44f,
     0x1.03888ep-45f, 0x1.7dedf8p-47f, 0x1.18facap-48f, 0x1.9d7678p-50f},
    {-0x1.2cb2fp-15f, 0x1.07629p-10f, 0x1.7de262p-13f, -0x1.4027f6p-13f,
     -0x1.d53feap-14f, -0x1.a8e0e8p-15f, -0x1.4fee72p-16f, -0x1.fb7ea2p-18f,
     -0x1.78ee4cp-19f, -0x1.164978p-20f, -0x1.9a189p-22f, -0x1.2dee52p-23f,
     -0x1.bc49a8p-25f, -0x1.46fe1p-26f, -0x1.e10636p-28f, -0x1.61ef5cp-29f,
     -0x1.046d7p-30f, -0x1.7f3d5ep-32f, -0x1.19f81p-33f, -0x1.9eef28p-35f,
     -0x1.315776p-36f, -0x1.c14102p-38f, -0x1.4a7fd8p-39f, -0x1.e6655cp-41f,
     -0x1.65db14p-42f, -0x1.074636p-43f, -0x1.8371c4p-45f, -0x1.1cfcaep-46f,
     -0x1.a37afcp-48f, -0x1.34a8dap-49f, -0x1.c6167p-51f, -0x1.4e1aeap-52f},
    {0x1.6d455p-12f, -0x1.1e45fp-14f, -0x1.fc2f98p-14f, -0x1.e6b72ap-18f,
     0x1.a770dcp-17f, 0x1.f1c2bcp-18f, 0x1.a1cep-19f, 0x1.4c55b4p-20f,
     0x1.efe014p-22f, 0x1.6a8aa2p-23f, 0x1.10688ep-24f, 0x1.94a7bcp-26f,
     0x1.269052p-27f, 0x1.a80456p-29f, 0x1.3a6e8cp-30f, 0x1.d7e186p-32f,
     0x1.55ba3p-33f, 0x1.ffb8e6p-35f, 0x1.77fbep-36f, 0x1.102d5cp-37f,
     0x1.8c461p-39f, 0x1.233186p-40f, 0x1.b15978p-42f, 0x1.40e9f4p-43f,
     0x1.de8d2ep-45f, 0x1.5af87p-46f, 0x1.00672ep-47f, 0x1.716918p-49f,
     0x1.130e76p-50f, 0x1.933f1ep-52f, 0x1.2a912ep-53f, 0x1.b7a312p-55f},
};
}  // namespace detail

// The interval of a (>= 2^-30) and the offset in it, for every table on these intervals:
// k = round(a) (vpermt2ps reads its low 5 bits) and h = a - k, exact, by vcvtps2dq and vreduceps,
// both to nearest whatever MXCSR says (so that they agree) and raising no flag (an a beyond 2^31,
// or NaN, would raise invalid in k). Two instructions where a + 1.5 2^23 for k, then
// h = a - (that - 1.5 2^23), took three for the same bits: 6% less time for float32 logits, 8%
// for uint8 labels (N(0, 4^2), 1e8 elements, one thread, CPU time, runs alternated on a shared
// machine). (The masked forms: the plain ones pass GCC 12 an "undefined" vector.)
FASTBCE_VM_INLINE void table_interval(__m512 a, __m512i& k, __m512& h) {
    constexpr int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    k = _mm512_maskz_cvt_roundps_epi32(__mmask16(0xffff), a, nearest);
    h = _mm512_maskz_reduce_ps(__mmask16(0xffff), a, nearest);
}

// The pieces every loop over these tables shares (softplus here, sigmoid in sigmoid_table.hpp).
// (The masked forms: GCC 12's plain _mm512_max_epu32 and reductions pass an "undefined" vector
// that -Wmaybe-uninitialized reports.)
FASTBCE_VM_INLINE __m512i max_u32(__m512i a, __m512i b) { return _mm512_mask_max_epu32(a, __mmask16(0xffff), a, b); }

// Large calls (process_block's `ahead`): the table loops ask for the line kAhead elements ahead
// of each input stream into L1 (prefetcht0), one line a stream per 64 bytes they read: the next
// tile's lines, requested at the pace the loop consumes them, while it computes. The touches and
// the tile's burst of prefetches (touch_lines, prefetch_lines) they replace left memory idle
// during the arithmetic and the core waiting on the lines after it. Sapphire Rapids VM, 1e8
// elements, two threads, CPU time, medians of alternated runs on a shared machine: 0.81x the
// time for float32 logits, 0.85x uint8 labels, 0.84x focal; 1 or 4 KiB ahead (float32) 0.87-0.88x,
// 8 KiB 0.89x, prefetcht1/t2 0.86-0.89x. An address past the input's end (the last tile) is
// harmless: a prefetch does not fault. (Inline assembly: see prefetch_lines.)
constexpr int64_t kAhead = 512;
FASTBCE_VM_INLINE void prefetch_ahead(const void* at) { asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(at))); }

// The bits of |x| of 16 floats (ordered as the magnitudes, NaN above every number).
FASTBCE_VM_INLINE __m512i abs_bits_of(__m512 x) {
    return _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff));
}
FASTBCE_VM_INLINE __m512i abs_bits(const float* x) { return abs_bits_of(_mm512_loadu_ps(x)); }

// The tables' argument a from |x|'s bits: a below 2^-30 is taken as 2^-30, where softplus(-a)
// rounds to ln2 and sigmoid(-a) to 1/2 as at 0, and the polynomial's h stays normal (a subnormal
// operand would take a microcode assist on Intel).
FASTBCE_VM_INLINE __m512 table_arg(__m512i a_bits) {
    return _mm512_castsi512_ps(max_u32(a_bits, _mm512_set1_epi32(0x30800000)));
}

// table_arg's value from x itself: max(|x|, 2^-30) in one vrangeps (sign cleared). A compare, not
// arithmetic: no underflow, and subnormal logits take no microcode assist. Not for finding a NaN:
// AMD's Zen 4 gives 2^-30 for a quiet NaN x (Intel's cores the NaN), so a loop that must see NaN
// reads |x|'s bits (abs_bits_of) for that; a NaN lane's value from here is never kept.
FASTBCE_VM_INLINE __m512 table_arg_of(__m512 x) {
    return _mm512_maskz_range_ps(__mmask16(0xffff), x, _mm512_set1_ps(0x1p-30f), 0xb);
}

// A table's 32 polynomials held in registers (each coefficient's 32 values in two), and their
// value at (k, h) of table_interval: Horner's rule, the coefficients picked per lane.
// N: the number of coefficients (the degree plus one).
template <int N>
struct TablePolys {
    __m512 lo[N], hi[N];

    explicit TablePolys(const float (&table)[N][32]) {
        for (int i = 0; i < N; ++i) {
            lo[i] = _mm512_load_ps(&table[i][0]);
            hi[i] = _mm512_load_ps(&table[i][16]);
        }
    }
    FASTBCE_VM_INLINE __m512 operator()(__m512i k, __m512 h) const {
        __m512 p = _mm512_permutex2var_ps(lo[N - 1], k, hi[N - 1]);
        for (int i = N - 2; i >= 0; --i) p = _mm512_fmadd_ps(p, h, _mm512_permutex2var_ps(lo[i], k, hi[i]));
        return p;
    }
};

// The softplus table of a call: kSoftplusTable6 for Six (every call but focal losses with
// gamma > 2, see there), else kSoftplusTable.
template <bool Six>
FASTBCE_VM_INLINE const auto& softplus_table() {
    if constexpr (Six) return detail::kSoftplusTable6;
    else return detail::kSoftplusTable;
}

// The largest of 16 unsigned lanes.
FASTBCE_VM_INLINE uint32_t max_lane(__m512i v) {
    alignas(64) uint32_t lanes[16];
    _mm512_store_si512(lanes, v);
    uint32_t m = 0;
    for (uint32_t u : lanes) m = u > m ? u : m;
    return m;
}
// The smallest of 16 unsigned lanes.
FASTBCE_VM_INLINE uint32_t min_lane(__m512i v) {
    alignas(64) uint32_t lanes[16];
    _mm512_store_si512(lanes, v);
    uint32_t m = ~0u;
    for (uint32_t u : lanes) m = u < m ? u : m;
    return m;
}

// softplus(-|x|) of 16 floats from the bits of |x| (abs_bits), for |x| < softplus_table_max
// (other lanes get garbage): the table's one formula, for every loop that takes it.
template <int N>
FASTBCE_VM_INLINE __m512 softplus_neg_abs(const TablePolys<N>& softplus, __m512i a_bits) {
    __m512i k;
    __m512 h;
    table_interval(table_arg(a_bits), k, h);
    return softplus(k, h);
}

// 2^(j/16), j = 0..15, each rounded to nearest float (exp_neg_abs_band's table; the test checks them)
alignas(64) inline constexpr float kExp2Sixteenths[16] = {
    0x1p+0f,         0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f, 0x1.3dea64p+0f,
    0x1.4bfdaep+0f,  0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
    0x1.ae89fap+0f,  0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f};

// exp(-a) of 16 floats from the bits of a = |x|, for a in [softplus_table_max, normal_exp_max]
// (31.5 to 87.33), where softplus(-|x|) = log1p(exp(-|x|)) rounds to exp(-|x|) in float: the
// plain and weighted losses' one formula there on this tier (loss_loop.hpp, exp_band_lanes, says
// where). Other lanes, NaN included, are clamped into the range (their result is garbage, but
// normal, and raises no flag). A table method in 12 vector operations, where
// exp_nonpositive_normal's reduction by ln2 and polynomial of degree 6 took 19:
// n = -round(16 a / ln2) / 16 from one FMA that adds 1.5 * 2^19 (the sum's last 4 bits hold
// j = 16 n mod 16, the table's index, as vpermps reads it); r = -a - n ln2 by Cody-Waite (ln2_hi
// with 12 significant bits, so that n ln2_hi, 16 n having at most 11, and the first step are
// exact), |r| <= ln2/32; exp(-a) = 2^floor(n) 2^(j/16) exp(r), exp(r) as 1 + r + r^2 (1/2 + r/6)
// (truncation below 2^-26 relative), 2^floor(n) by vscalefps (exact: the result is normal).
// At most 1.07 ulp from exp over every float a in the range (tests/cpp/test_exp_band.cpp).
// Focal and general calls and the other tiers keep exp_nonpositive_normal.
FASTBCE_VM_INLINE __m512 exp_neg_abs_band(__m512i a_bits) {
    constexpr __mmask16 all = 0xffff;
    const __m512i lowest = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(softplus_table_max)));
    const __m512i top = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(normal_exp_max<float>)));
    const __m512 a = _mm512_castsi512_ps(_mm512_mask_min_epu32(a_bits, all, max_u32(a_bits, lowest), top));
    const __m512 magic = _mm512_set1_ps(0x1.8p19f);
    const __m512 t = _mm512_fnmadd_ps(a, _mm512_set1_ps(0x1.715476p+0f), magic);  // (magic - a/ln2, to a sixteenth)
    const __m512 n = _mm512_sub_ps(t, magic);  // -round(16 a / ln2) / 16, exact
    const __m512 rh = _mm512_fnmsub_ps(n, _mm512_set1_ps(0x1.62ep-1f), a);  // -a - n ln2_hi, exact
    const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.0bfbe8p-15f), rh);
    const __m512 table = _mm512_load_ps(kExp2Sixteenths);
    const __m512 two_j = _mm512_maskz_permutexvar_ps(all, _mm512_castps_si512(t), table);
    const __m512 u = _mm512_fmadd_ps(r, _mm512_set1_ps(0x1.555556p-3f), _mm512_set1_ps(0.5f));
    const __m512 v = _mm512_fmadd_ps(_mm512_mul_ps(r, r), u, r);  // exp(r) - 1
    return _mm512_maskz_scalef_ps(all, _mm512_fmadd_ps(two_j, v, two_j), n);
}

// out[j] = softplus(-|x[j]|) for the j with |x[j]| < softplus_table_max (other lanes, NaN
// included, get garbage for the caller to replace); n a multiple of 16.
// Returns the largest bit pattern of |x[j]| (the caller's range checks). Six: softplus_table.
template <bool Six>
inline uint32_t softplus_neg_abs_table(const float* __restrict x, float* __restrict out, int64_t n) {
    const TablePolys softplus(softplus_table<Six>());
    __m512i max_bits = _mm512_setzero_si512();
    for (int64_t j = 0; j < n; j += 16) {
        const __m512i a_bits = abs_bits(x + j);
        max_bits = max_u32(max_bits, a_bits);
        _mm512_storeu_ps(out + j, softplus_neg_abs(softplus, a_bits));
    }
    return max_lane(max_bits);
}
#endif

}}}  // namespace fastbce::FASTBCE_TIER::vm
