#pragma once
// sigmoid(-a) = 1 / (1 + exp(a)) for float a = |x| < 31.5 on AVX-512, by table, as
// softplus_table.hpp computes softplus(-a): 32 polynomials of degree 7 on the same intervals
// [k - 1/2, k + 1/2), in h = a - k, their coefficients picked per lane with vpermt2ps. The float
// focal loss of logits needs 1 - p_t besides the cross-entropy: from this table and the softplus
// table it takes neither exp, nor log1p_small, nor the division of 1 - p_t = z / (1 + z) (each
// element by its own value: for |x| >= 31.5 exp(-|x|) instead, see sigmoid_neg_abs_table).
// The coefficients are ours: tools/derive_sigmoid_table.py derives them and prints the table
// below; regenerate it there, never edit it by hand. Accuracy: docs/vecmath.md.
#include <bit>
#include <cstdint>

#include "fastbce/softplus_table.hpp"

namespace fastbce { namespace FASTBCE_TIER { namespace vm {

#if defined(FASTBCE_SOFTPLUS_TABLE)

namespace detail {
// kSigmoidTable[i][k]: the coefficient of h^i on interval k
// (as the script printed it: max relative error of the rounded polynomials 4.57e-08 (0.766 ulp))
alignas(64) inline constexpr float kSigmoidTable[8][32] = {
    {0x1p-1f, 0x1.136562p-2f, 0x1.e84152p-4f, 0x1.848344p-5f,
     0x1.26afa2p-6f, 0x1.b69f68p-8f, 0x1.441778p-9f, 0x1.dda738p-11f,
     0x1.5fa3dep-12f, 0x1.02c6f6p-13f, 0x1.7cd32ep-15f, 0x1.18341p-16f,
     0x1.9c541ep-18f, 0x1.2f6026p-19f, 0x1.be6c58p-21f, 0x1.4875c4p-22f,
     0x1.e355b8p-24f, 0x1.639e3p-25f, 0x1.05a628p-26f, 0x1.81057p-28f,
     0x1.1b4866p-29f, 0x1.a0db0ep-31f, 0x1.32b48cp-32f, 0x1.c3527ep-34f,
     0x1.4c1078p-35f, 0x1.e8a37ap-37f, 0x1.67852ap-38f, 0x1.08852ap-39f,
     0x1.853f02p-41f, 0x1.1e642cp-42f, 0x1.a56e0cp-44f, 0x1.36121ep-45f},
    {-0x1p-2f, -0x1.92a948p-3f, -0x1.ae0dcp-4f, -0x1.721652p-5f,
     -0x1.2162c2p-6f, -0x1.b3afe2p-8f, -0x1.434a54p-9f, -0x1.dd37dp-11f,
     -0x1.5f85aep-12f, -0x1.02becap-13f, -0x1.7ccecp-15f, -0x1.1832dep-16f,
     -0x1.9c5378p-18f, -0x1.2f5ff8p-19f, -0x1.be6c4p-21f, -0x1.4875bep-22f,
     -0x1.e355b4p-24f, -0x1.639e2ep-25f, -0x1.05a628p-26f, -0x1.81057p-28f,
     -0x1.1b4866p-29f, -0x1.a0db0ep-31f, -0x1.32b48cp-32f, -0x1.c3527ep-34f,
     -0x1.4c1078p-35f, -0x1.e8a37ap-37f, -0x1.67852ap-38f, -0x1.08852ap-39f,
     -0x1.853f02p-41f, -0x1.1e642cp-42f, -0x1.a56e0cp-44f, -0x1.36121ep-45f},
    {0x1.28a396p-26f, 0x1.74266ap-5f, 0x1.478706p-5f, 0x1.4efbc6p-6f,
     0x1.16f9c6p-7f, 0x1.addad8p-9f, 0x1.41b0d4p-10f, 0x1.dc5968p-12f,
     0x1.5f4932p-13f, 0x1.02ae4ap-14f, 0x1.7cc5fcp-16f, 0x1.18305ap-17f,
     0x1.9c521ap-19f, 0x1.2f5fd6p-20f, 0x1.be6bf4p-22f, 0x1.487594p-23f,
     0x1.e355bap-25f, 0x1.639e52p-26f, 0x1.05a64cp-27f, 0x1.810566p-29f,
     0x1.1b483cp-30f, 0x1.a0dadp-32f, 0x1.32b48ap-33f, 0x1.c35294p-35f,
     0x1.4c10bep-36f, 0x1.e8a39p-38f, 0x1.67854ap-39f, 0x1.08850cp-40f,
     0x1.853efap-42f, 0x1.1e641ap-43f, 0x1.a56e1cp-45f, 0x1.36122ap-46f},
    {0x1.55537cp-6f, 0x1.81df14p-8f, -0x1.a85ef4p-8f, -0x1.67b258p-8f,
     -0x1.58f54p-9f, -0x1.16df36p-10f, -0x1.a8aa66p-12f, -0x1.3c6928p-13f,
     -0x1.d3c012p-15f, -0x1.58bbbcp-16f, -0x1.fb9bfp-18f, -0x1.758e7p-19f,
     -0x1.12df7ep-20f, -0x1.948042p-22f, -0x1.299cb2p-23f, -0x1.b5f112p-25f,
     -0x1.42394cp-26f, -0x1.da299p-28f, -0x1.5cddf4p-29f, -0x1.00ae1ap-30f,
     -0x1.79b4fep-32f, -0x1.15e6bcp-33f, -0x1.98f09ap-35f, -0x1.2ce1cep-36f,
     -0x1.bac1d4p-38f, -0x1.45c274p-39f, -0x1.df5cb6p-41f, -0x1.60b0ecp-42f,
     -0x1.037f36p-43f, -0x1.7dda8p-45f, -0x1.18f42p-46f, -0x1.9d6dap-48f},
    {0x1.190c4ep-18f, -0x1.50fecap-8f, -0x1.c6e46ap-11f, 0x1.9923c6p-11f,
     0x1.252ca8p-11f, 0x1.07b9dep-12f, 0x1.a0548ap-14f, 0x1.3a0ab2p-15f,
     0x1.d28d18p-17f, 0x1.5876c6p-18f, 0x1.fb5d9ap-20f, 0x1.758f4ep-21f,
     0x1.12deccp-22f, 0x1.945e6ep-24f, 0x1.29a13cp-25f, 0x1.b5fd2ep-27f,
     0x1.423384p-28f, 0x1.da1234p-30f, 0x1.5cc89ap-31f, 0x1.00aee6p-32f,
     0x1.79c834p-34f, 0x1.15f514p-35f, 0x1.98eef6p-37f, 0x1.2cd9f6p-38f,
     0x1.ba9a4p-40f, 0x1.45ba94p-41f, 0x1.df48e6p-43f, 0x1.60be54p-44f,
     0x1.037f9cp-45f, 0x1.7de11ap-47f, 0x1.18edecp-48f, 0x1.9d64a8p-50f},
    {-0x1.1395c2p-9f, 0x1.ba65aep-12f, 0x1.7bd9a4p-11f, 0x1.5df9acp-15f,
     -0x1.392b92p-14f, -0x1.76990ep-15f, -0x1.40acd2p-16f, -0x1.ee763p-18f,
     -0x1.73a124p-19f, -0x1.139958p-20f, -0x1.952f4p-22f, -0x1.2b481ep-23f,
     -0x1.b7f97p-25f, -0x1.42c1f4p-26f, -0x1.dc998ep-28f, -0x1.5edf7ap-29f,
     -0x1.01ae12p-30f, -0x1.7aafdep-32f, -0x1.16d7ecp-33f, -0x1.9ae172p-35f,
     -0x1.2ea28cp-36f, -0x1.bd55d4p-38f, -0x1.473976p-39f, -0x1.e1415cp-41f,
     -0x1.618d6cp-42f, -0x1.04896ep-43f, -0x1.7f3a04p-45f, -0x1.1a8p-46f,
     -0x1.9f56bap-48f, -0x1.31b1e6p-49f, -0x1.c16be2p-51f, -0x1.4aac32p-52f},
    {0x1.740b66p-15f, 0x1.8dd7ccp-12f, -0x1.2527e4p-13f, -0x1.da8302p-15f,
     0x1.9cda3ap-21f, 0x1.74f15p-18f, 0x1.80281ep-19f, 0x1.45ee1p-20f,
     0x1.e82bd8p-22f, 0x1.6a52bp-23f, 0x1.119c4p-24f, 0x1.8cb688p-26f,
     0x1.2609p-27f, 0x1.ba9b2ap-29f, 0x1.3deb94p-30f, 0x1.d279aep-32f,
     0x1.5b4168p-33f, 0x1.018344p-34f, 0x1.7c4ce6p-36f, 0x1.132c58p-37f,
     0x1.8fe12ap-39f, 0x1.2621b8p-40f, 0x1.b72e98p-42f, 0x1.4501d4p-43f,
     0x1.e616f4p-45f, 0x1.5faf82p-46f, 0x1.03e74ap-47f, 0x1.769eb4p-49f,
     0x1.164824p-50f, 0x1.97db86p-52f, 0x1.2f2d98p-53f, 0x1.be0b42p-55f},
    {0x1.5db5e8p-13f, -0x1.a13d2cp-14f, -0x1.a7c9ccp-17f, 0x1.fa668p-17f,
     0x1.53500cp-19f, -0x1.25cf1ap-22f, -0x1.a4b96p-23f, -0x1.8c9f42p-23f,
     -0x1.e2a42ap-25f, -0x1.448714p-26f, -0x1.547b78p-27f, -0x1.78195ep-29f,
     -0x1.3dc0ecp-30f, -0x1.325618p-31f, -0x1.4c9b1p-33f, -0x1.cbf922p-35f,
     -0x1.97b1dcp-36f, -0x1.4f61aap-37f, -0x1.d27dacp-39f, -0x1.2bd838p-40f,
     -0x1.8717c6p-42f, -0x1.1f3898p-43f, -0x1.e90e42p-45f, -0x1.7bfd16p-46f,
     -0x1.407ab8p-47f, -0x1.991f6p-49f, -0x1.39129ep-50f, -0x1.7a6a8ap-52f,
     -0x1.326114p-53f, -0x1.b32b1ep-55f, -0x1.5fc81p-56f, -0x1.0216eap-57f},
};
// Q of sigmoid_by_softplus, lowest coefficient first (as tools/derive_sigmoid_table.py printed
// it: max relative error of 1 + s Q(s) 1.11e-08 (0.185 ulp))
inline constexpr float kSigmoidBySoftplus[5] = {-0x1.ffffd2p-2f, 0x1.554e3cp-3f, -0x1.549baap-5f, 0x1.08a0c8p-7f, -0x1.0ffa7p-10f};
}  // namespace detail

// sigmoid(-a) from s = softplus(-a) (the table's value, s in (0, ln 2]): 1 + exp(-a) = exp(s), so
// sigmoid(-a) = 1 - exp(-s) = -expm1(-s) = s + s (s Q(s)), Q of degree 4 with broadcast
// coefficients: six operations where the sigmoid table took eight vpermt2ps and seven FMAs. Its
// condition number in s is at most 1, so s's error passes on (at most 1.21 ulp), plus the
// polynomial's: at most 1.97 ulp, against the table's 1.16 (float32 emulation, 6.3e6 points of
// [0, 31.5)). Focal losses with gamma <= 2 take it (the factor's error is about gamma times
// this, the cross-entropy's that of s; at gamma 4 the two, correlated, came to 12.3 ulp with
// the products, over the accuracy budget, against 9.9 with the table).
FASTBCE_VM_INLINE __m512 sigmoid_by_softplus(__m512 s) {
    const auto& c = detail::kSigmoidBySoftplus;
    __m512 q = _mm512_set1_ps(c[4]);
    for (int i = 3; i >= 0; --i) q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(c[i]));
    return _mm512_fmadd_ps(s, _mm512_mul_ps(s, q), s);
}

// soft[j] = softplus(-|x[j]|) and sig[j] = sigmoid(-|x[j]|) for the j with |x[j]| <
// softplus_table_max (other lanes, NaN included, get garbage), from one k and h: the operations
// of softplus_neg_abs_table and sigmoid_neg_abs_table (BySoftplus: sigmoid_by_softplus), so the
// same bits (BySoftplus: from kSoftplusTable6, as focal_fused_loop). n a multiple of 16. Returns
// the largest bit pattern of |x[j]|. Ahead: prefetches
// x's and the labels' (y) lines kAhead elements ahead (prefetch_ahead).
template <bool BySoftplus = false, bool Ahead = false>
inline uint32_t softplus_sigmoid_neg_abs_table(const float* __restrict x, float* __restrict soft,
                                               float* __restrict sig, int64_t n,
                                               [[maybe_unused]] const float* y = nullptr) {
    const TablePolys softplus(softplus_table<BySoftplus>()), sigmoid(detail::kSigmoidTable);
    __m512i max_bits = _mm512_setzero_si512();
    for (int64_t j = 0; j < n; j += 16) {
        if constexpr (Ahead) prefetch_ahead(x + j + kAhead), prefetch_ahead(y + j + kAhead);
        const __m512i a_bits = abs_bits(x + j);
        max_bits = max_u32(max_bits, a_bits);
        __m512i k;
        __m512 h;
        table_interval(table_arg(a_bits), k, h);
        const __m512 s = softplus(k, h);
        _mm512_storeu_ps(soft + j, s);
        _mm512_storeu_ps(sig + j, BySoftplus ? sigmoid_by_softplus(s) : sigmoid(k, h));
    }
    return max_lane(max_bits);
}

// z[j] = sigmoid_by_softplus(z[j]) for the j with |x[j]| < softplus_table_max, where z[j] holds
// the softplus table's value; the other lanes keep z[j] (exp(-|x[j]|), as sigmoid_neg_abs_table
// leaves them). n a multiple of 16. (Those lanes enter the polynomial as 1/2: their exp can be
// tiny, and a product of it would underflow, a microcode assist on Intel and the flag raised.)
inline void sigmoid_by_softplus_table(const float* __restrict x, float* __restrict z, int64_t n) {
    const __m512i a_max = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(softplus_table_max)));
    const __m512 harmless = _mm512_set1_ps(0.5f);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 in = _mm512_cmplt_epu32_mask(abs_bits(x + j), a_max);
        _mm512_mask_storeu_ps(z + j, in, sigmoid_by_softplus(_mm512_mask_loadu_ps(harmless, in, z + j)));
    }
}

// z[j] = sigmoid(-|x[j]|) for the j with |x[j]| < softplus_table_max; the other lanes (NaN
// included) keep z[j], which the caller has made exp(-|x[j]|) there: sigmoid(-a) = e / (1 + e)
// with e = exp(-a) < 2^-45 rounds to e, as softplus(-a) = log1p(e) does. n a multiple of 16.
inline void sigmoid_neg_abs_table(const float* __restrict x, float* __restrict z, int64_t n) {
    const TablePolys sigmoid(detail::kSigmoidTable);
    const __m512i a_max = _mm512_set1_epi32(int(std::bit_cast<uint32_t>(softplus_table_max)));
    for (int64_t j = 0; j < n; j += 16) {
        const __m512i a_bits = abs_bits(x + j);
        __m512i k;
        __m512 h;
        table_interval(table_arg(a_bits), k, h);
        _mm512_mask_storeu_ps(z + j, _mm512_cmplt_epu32_mask(a_bits, a_max), sigmoid(k, h));
    }
}
#endif

}}}  // namespace fastbce::FASTBCE_TIER::vm
