// Weight types and their traits table. A QType says how a matrix is stored (quant_format.h);
// the table lists every (base, bits, scheme) lowbit implements, with the functions that quantize,
// dequantize and take a reference dot product, so tests and benchmarks iterate it and a new
// bit width is one new row.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/quant_format.h"

namespace lowbit {

enum class Quantizer : uint8_t {
  rtn,     // round to nearest from absmax (sym) or min/max (asym)
  search,  // search the scale (and minimum) minimizing the group's (importance-weighted) squared error
};

struct TypeTraits {
  const char* name;  // "f32", "q4_sym", ...
  Base base;
  uint8_t bits;
  Scheme scheme;
  // Row-level functions; `t` carries the group. codes/scales/mins point into one row of each
  // section (mins is null for sym and float types; scales too for float types). importance:
  // null, or k non-negative weights of each column in the error `search` minimizes (quantize.h).
  void (*quantize_row)(const QType& t, const float* w, int64_t k, uint8_t* codes, uint16_t* scales,
                       uint16_t* mins, Quantizer qz, const float* importance);
  void (*dequantize_row)(const QType& t, const uint8_t* codes, const uint16_t* scales,
                         const uint16_t* mins, int64_t k, float* out);
};

const std::vector<TypeTraits>& type_table();
const TypeTraits& traits(const QType& t);

// 6-bit scale codes (ScaleCode::c6) for one row the f16 type of the same bits and group has
// quantized: scales/mins are that row's fp16 d and m, codes its codes. Picks the row factors
// (D = max d / 63, M = max |m| / 31, in bf16) and each group's codes; with Quantizer::search it
// also tries the codes next to the nearest and the codes nearest the group's min-max (d, m),
// reassigning the weights' codes for each and keeping the least (importance-weighted) squared
// error. Writes codes and the row's scale codes, min codes and two factors.
void code_row_scales(const QType& t, const float* w, int64_t k, uint8_t* codes, const uint16_t* scales,
                     const uint16_t* mins, uint8_t* scale_codes, uint8_t* min_codes, uint16_t* factors,
                     Quantizer qz, const float* importance);
// The two steps of code_row_scales: the row factors from a row's fp16 (d, m), and the groups'
// codes under given factors (GPTQ picks the factors once from the unchanged row, then codes
// each group as the error it carries has changed it).
void scale_factors(const uint16_t* scales, const uint16_t* mins, int64_t groups, uint16_t* factors);
void code_scales(const QType& t, const float* w, int64_t k, uint8_t* codes, const uint16_t* scales,
                 const uint16_t* mins, uint8_t* scale_codes, uint8_t* min_codes, const uint16_t* factors,
                 Quantizer qz, const float* importance);

// Canonical names: "f32", "f16", "bf16", "q4_g32_sym", "q4_row_asym", "q4_g32_asym_s6" (6-bit
// scale codes), ... parse_type also takes the short forms "q8" (= q8_g32_sym), "q4" (= q4_g32_asym).
std::string type_name(const QType& t);
QType parse_type(std::string_view name);
// Throws Error unless t is a type lowbit implements (bits/group/scheme combination).
void check_type(const QType& t);
bool is_quantized(const QType& t);

// Bits of storage per weight including scales and mins, for an n x k matrix.
double bits_per_weight(const QType& t, int64_t n, int64_t k);

const char* quantizer_name(Quantizer q);
Quantizer parse_quantizer(std::string_view name);

}  // namespace lowbit
