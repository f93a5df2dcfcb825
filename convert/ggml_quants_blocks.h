// Internal to convert/ggml_quants*.cc: reading ggml block fields, and the block decoders that live
// in ggml_quants_k.cc (the 256-weight super-block formats). Each decoder turns one block into its
// block_weights floats.
#pragma once

#include <cstdint>

#include "kernels/half.h"

namespace lowbit::ggml_blocks {

// Block fields are little-endian whatever the host.
inline uint16_t le16(const uint8_t* p) { return (uint16_t)(p[0] | p[1] << 8); }
inline uint32_t le32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
inline float le_f16(const uint8_t* p) { return f16_to_f32(le16(p)); }

// IQ4_NL's 16 non-uniform levels (ggml kvalues_iq4nl), shared by IQ4_XS.
inline constexpr int8_t kIq4nlLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,   38,  53,  69,  89,  113};

void dequantize_q2_k(const uint8_t* b, float* y);
void dequantize_q3_k(const uint8_t* b, float* y);
void dequantize_q4_k(const uint8_t* b, float* y);
void dequantize_q5_k(const uint8_t* b, float* y);
void dequantize_q6_k(const uint8_t* b, float* y);
void dequantize_iq4_xs(const uint8_t* b, float* y);

}  // namespace lowbit::ggml_blocks
