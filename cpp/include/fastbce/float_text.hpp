// A float64 as Python's repr() writes it (the shortest digits that read back as the same double,
// laid out by CPython's rule for repr: exponent form when more than 16 digits would come before
// the decimal point or more than 3 zeros after it), for the JSON of a million groups' reports:
// repr() in Python, about 0.6 us a number, was 12 of the 20 s such a report spent printing.
// Pure C++, no Python.
#pragma once

#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fastbce {

// Appends repr(v) of a finite v to `out` ("1.0", "0.0001", "1e-05", "-1.5e+300", "-0.0").
inline void append_float_repr(std::string& out, double v) {
    char sci[40];  // shortest round-trip digits, scientific: "d[.ddd]e[+-]xx"
    const std::to_chars_result r = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific);
    if (r.ec != std::errc()) throw std::runtime_error("float_repr: to_chars failed");
    const char* p = sci;
    if (*p == '-') out += *p++;
    char digits[24];  // (17 at most)
    int n = 0;
    for (; *p != 'e'; ++p)
        if (*p != '.') digits[n++] = *p;
    int exp10 = 0;  // (the value is d.ddd x 10^exp10)
    const bool negative = p[1] == '-';
    for (p += 2; p < r.ptr; ++p) exp10 = 10 * exp10 + (*p - '0');
    if (negative) exp10 = -exp10;
    const int point = exp10 + 1;         // digits before the decimal point (CPython's decpt)
    if (point <= -4 || point > 16) {     // (CPython's format_float_short, repr mode)
        out += digits[0];
        if (n > 1) out += '.', out.append(digits + 1, size_t(n - 1));
        out += 'e';
        out += exp10 < 0 ? '-' : '+';
        const int e = std::abs(exp10);
        if (e < 10) out += '0';
        out += std::to_string(e);
    } else if (point <= 0) {
        out += "0.";
        out.append(size_t(-point), '0');
        out.append(digits, size_t(n));
    } else if (point < n) {
        out.append(digits, size_t(point));
        out += '.';
        out.append(digits + point, size_t(n - point));
    } else {
        out.append(digits, size_t(n));
        out.append(size_t(point - n), '0');
        out += ".0";
    }
}

}  // namespace fastbce
