// ggml's tensor types as numbers: dequantization of the block formats a GGUF file holds, and the
// exact repacking of those that are lowbit types in another byte order. Pure functions over bytes
// (little-endian blocks, row after row, as a GGUF tensor stores them); they know no file.
//
// Values are those of ggml's dequantize_row_* and gguf-py's gguf.quants.dequantize, bit for bit:
// every type here decodes a weight as d * (integer), or d * (integer) +- (min product), where d
// is an fp16 value (11 significant bits) and the integer (sub-block scale times code) is below
// 2^12 in magnitude, so every product is exact in fp32 and only the final add or subtract rounds,
// as in ggml. Exact products also make the result the same whether or not a compiler fuses a
// multiply and an add (checked with -march=native -ffp-contract=fast).
//
// Block layouts: ggml's ggml-common.h; sizes: convert/ggml_types.h. `pool` (null: the calling
// thread) spreads the work over blocks / rows; the functions are otherwise stateless and
// thread-safe.
#pragma once

#include <cstdint>
#include <optional>

#include "convert/ggml_types.h"
#include "kernels/quant_format.h"

namespace lowbit {

class ThreadPool;

// True for the types ggml_dequantize decodes: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, TQ1_0, TQ2_0, IQ4_NL, IQ4_XS.
bool ggml_can_dequantize(GgmlType t);

// Decodes n weights (a whole number of t's blocks) from `blocks` (n / block_weights blocks of
// block_bytes each) into out[0, n). Throws Error naming the type when it is not one
// ggml_can_dequantize accepts or n is not a whole number of blocks; the caller adds the tensor.
void ggml_dequantize(GgmlType t, const uint8_t* blocks, int64_t n, float* out,
                     ThreadPool* pool = nullptr);

// The lowbit type that holds t's values exactly, or nullopt:
//   F32 -> f32, F16 -> f16, BF16 -> bf16 (the same bytes);
//   Q8_0 -> q8_g32_sym, Q4_0 -> q4_g32_sym, Q4_1 -> q4_g32_asym (the same codes and fp16 d, m);
//   TQ2_0, TQ1_0 -> q2_g256_sym (ternary: see ggml_repack).
std::optional<QType> ggml_exact_type(GgmlType t);

// Writes a rows x cols matrix of type t (row-major blocks, cols a whole number of blocks) as
// q_layout(*ggml_exact_type(t), rows, cols).bytes bytes at dst, padding zero, such that lowbit's
// dequantize_row (kernels/quantize.h) of the result equals ggml_dequantize of the source: the
// same fp32 bit patterns, except that a weight of value zero may come back as +0 where ggml
// computes -0 (ggml multiplies a zero level by a negative d; lowbit adds d*q and -z*d, which is
// +0). Throws Error for a type without an exact form, for cols not a whole number of blocks, and,
// for the symmetric types (Q8_0, Q4_0, TQ*), for a non-finite d (block and row named), whose
// products lowbit's d*q - z*d would turn into NaN where ggml's (q - z)*d does not; the caller
// adds the tensor name and may fall back to ggml_dequantize and its own non-finite policy.
void ggml_repack(GgmlType t, const uint8_t* blocks, int64_t rows, int64_t cols, uint8_t* dst,
                 ThreadPool* pool = nullptr);

}  // namespace lowbit
