// ggml's 256-weight "K" super-blocks (and IQ4_XS, laid out like them): one block in, 256 floats
// out. Field offsets are ggml-common.h's block_q*_K structs; each decoder computes ggml's
// expression in ggml's order (d * sub-block scale first, then the code, then the minimum).
#include "convert/ggml_quants_blocks.h"

namespace lowbit::ggml_blocks {

namespace {

constexpr int kQK = 256;

// Q4_K / Q5_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit minimum packed into 12
// bytes: sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7
// take their low 4 bits from the nibbles of bytes 8-11 and their top 2 bits from the spare top
// bits of bytes 0-3 (scales) and 4-7 (mins).
void scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
    *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
  }
}

}  // namespace

// Q2_K, 84 bytes: scales[16] (low nibble: scale, high nibble: min, per 16 weights), qs[64]
// (2-bit codes), fp16 d, fp16 dmin. Weight i: byte 32*(i/128) + i%32 of qs, bits 2*((i/32)%4).
void dequantize_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  const float d = le_f16(b + 80), dmin = le_f16(b + 82);
  for (int s = 0; s < kQK / 16; ++s) {
    const float dl = d * (float)(scales[s] & 0xF);
    const float ml = dmin * (float)(scales[s] >> 4);
    for (int i = s * 16; i < s * 16 + 16; ++i) {
      const int q = (qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
      y[i] = dl * (float)q - ml;
    }
  }
}

// Q3_K, 110 bytes: hmask[32] (bit i/32 of byte i%32: the code's third bit), qs[64] (low 2 bits,
// placed as Q2_K's), scales[12] (16 6-bit scales, biased by 32: low 4 bits in the nibbles of
// bytes 0-7, scale s in byte s%8; top 2 bits in bytes 8-11, scale s in byte 8 + s%4 at bit
// 2*(s/4)), fp16 d. The code is (low 2 bits) - 4 when the hmask bit is clear.
void dequantize_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sc = b + 96;
  const float d = le_f16(b + 108);
  for (int s = 0; s < kQK / 16; ++s) {
    const int lo = (sc[s % 8] >> (4 * (s / 8))) & 0xF;
    const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
    const float dl = d * (float)((lo | hi << 4) - 32);
    for (int i = s * 16; i < s * 16 + 16; ++i) {
      const int low = (qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
      const int high = (hmask[i % 32] >> (i / 32)) & 1;
      y[i] = dl * (float)(low - (high ? 0 : 4));
    }
  }
}

// Q4_K, 144 bytes: fp16 d, fp16 dmin, scales[12] (scale_min_k4), qs[128]: weight i in byte
// 32*(i/64) + i%32, low nibble for (i/32) even, high nibble for odd.
void dequantize_q4_k(const uint8_t* b, float* y) {
  const float d = le_f16(b), dmin = le_f16(b + 2);
  const uint8_t* qs = b + 16;
  for (int j = 0; j < kQK / 32; ++j) {
    int sc, m;
    scale_min_k4(b + 4, j, &sc, &m);
    const float d1 = d * (float)sc, m1 = dmin * (float)m;
    for (int i = j * 32; i < j * 32 + 32; ++i) {
      const int q = (qs[32 * (i / 64) + i % 32] >> (4 * (j % 2))) & 0xF;
      y[i] = d1 * (float)q - m1;
    }
  }
}

// Q5_K, 176 bytes: Q4_K's fields with qh[32] between scales and qs: the code's fifth bit is bit
// i/32 of qh[i%32].
void dequantize_q5_k(const uint8_t* b, float* y) {
  const float d = le_f16(b), dmin = le_f16(b + 2);
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int j = 0; j < kQK / 32; ++j) {
    int sc, m;
    scale_min_k4(b + 4, j, &sc, &m);
    const float d1 = d * (float)sc, m1 = dmin * (float)m;
    for (int i = j * 32; i < j * 32 + 32; ++i) {
      const int low = (qs[32 * (i / 64) + i % 32] >> (4 * (j % 2))) & 0xF;
      const int high = (qh[i % 32] >> j) & 1;
      y[i] = d1 * (float)(low | high << 4) - m1;
    }
  }
}

// Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16] (per 16 weights), fp16 d. In each half of
// 128 weights, quarter p (32 weights, lane l) takes its low 4 bits from ql[64*half + 32*(p%2) + l]
// (low nibble for p < 2, high for p >= 2) and its top 2 bits from qh[32*half + l] at bit 2p; the
// code is biased by 32.
void dequantize_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const uint8_t* scales = b + 192;
  const float d = le_f16(b + 208);
  for (int s = 0; s < kQK / 16; ++s) {
    const float dl = d * (float)(int8_t)scales[s];
    for (int i = s * 16; i < s * 16 + 16; ++i) {
      const int half = i / 128, p = (i % 128) / 32, l = i % 32;
      const int low = (ql[64 * half + 32 * (p % 2) + l] >> (4 * (p / 2))) & 0xF;
      const int high = (qh[32 * half + l] >> (2 * p)) & 3;
      y[i] = dl * (float)((low | high << 4) - 32);
    }
  }
}

// IQ4_XS, 136 bytes: fp16 d, u16 scales_h (top 2 bits of sub-block j's scale at bit 2j),
// scales_l[4] (low 4 bits, sub-block j in the nibble j%2 of byte j/2), qs[128] (sub-block j in
// bytes 16j..16j+15: weight 32j + m in the low nibble, 32j + 16 + m in the high one, of byte
// 16j + m); codes index the IQ4_NL levels; scales are biased by 32.
void dequantize_iq4_xs(const uint8_t* b, float* y) {
  const float d = le_f16(b);
  const uint16_t scales_h = le16(b + 2);
  const uint8_t* scales_l = b + 4;
  const uint8_t* qs = b + 8;
  for (int j = 0; j < kQK / 32; ++j) {
    const int ls = ((scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | ((scales_h >> (2 * j)) & 3) << 4;
    const float dl = d * (float)(ls - 32);
    for (int m = 0; m < 16; ++m) {
      y[32 * j + m] = dl * (float)kIq4nlLevels[qs[16 * j + m] & 0xF];
      y[32 * j + 16 + m] = dl * (float)kIq4nlLevels[qs[16 * j + m] >> 4];
    }
  }
}

}  // namespace lowbit::ggml_blocks
