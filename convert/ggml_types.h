// The tensor types a GGUF file may hold (ggml's `ggml_type`), as facts about their storage: the
// id written in the file, the name, how many weights one block holds and how many bytes it takes.
// Ids and sizes are ggml's (gguf-py `GGMLQuantizationType` and `GGML_QUANT_SIZES`); ids 4, 5 and
// 31-33, 36-38 were retired by ggml and are not types.
//
// The table only describes layouts, so the GGUF reader can size and bound every tensor, including
// those of a type lowbit cannot import (IQ*, MXFP4, ...): the importer refuses those by name
// (convert/ggml_quants.h says which types dequantize).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lowbit {

enum class GgmlType : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22,
  iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
  tq1_0 = 34, tq2_0 = 35, mxfp4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;   // as llama.cpp spells it: "Q4_K", "F16", ...
  uint32_t block_weights;  // weights per block (1 for plain types)
  uint32_t block_bytes;    // bytes per block
};

// The layout of a type id read from a file; nullopt for an id that is no ggml type.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t id);
// Its name, or "type <id>" for an unknown id.
std::string ggml_type_name(uint32_t id);

}  // namespace lowbit
