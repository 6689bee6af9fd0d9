#!/usr/bin/env python3
"""Derive the table of cpp/include/fastbce/sigmoid_table.hpp: sigmoid(-a) = 1 / (1 + exp(a)) for
0 <= a < 31.5, by the method of derive_softplus_table.py (32 polynomials of degree 7, one per
interval [k - 1/2, k + 1/2), in h = a - k), on the same intervals: the focal loss takes both from
one k and h.

Usage:  python3 tools/derive_sigmoid_table.py      (needs mpmath only; ~10 s)
"""

from __future__ import annotations

import mpmath as mp

from derive_softplus_table import print_table


def sigmoid_neg(a):
    return 1 / (1 + mp.exp(a))


if __name__ == "__main__":
    print_table(sigmoid_neg, "kSigmoidTable")
