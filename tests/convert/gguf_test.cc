// The GGUF reader against files built byte by byte here: a valid one read back field by field,
// and a corrupt-file corpus in the spirit of llama.cpp's test-gguf (bad magic and version, counts
// and lengths past the end, huge lengths, unknown types, duplicate keys and names, misaligned,
// overlapping and out-of-file tensors, dims whose product overflows), each rejected with a message
// that names what is wrong. The same cases seed the fuzzer (tests/fuzz/corpus_gguf).
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "convert/gguf.h"
#include "kernels/error.h"
#include "tests/error_of.h"

namespace lowbit {
namespace {

using test::error_of;

// Raw GGUF bytes, field by field, so a test can write any (also wrong) value anywhere.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& pad_to(size_t align) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
};

constexpr uint32_t kStr = 8, kU32 = 4, kF32 = 6, kArr = 9, kI32 = 5;

// A valid file: 3 metadata entries and two tensors (an F32 vector and a Q8_0 matrix).
struct Valid {
  Bytes header(uint64_t vec_offset = 0, uint64_t mat_offset = 64, uint32_t mat_type = 8) const {
    Bytes h;
    h.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(2).put<uint64_t>(3);
    h.str("general.architecture").put(kStr).str("llama");
    h.str("llama.block_count").put(kU32).put<uint32_t>(30);
    h.str("tokenizer.ggml.scores").put(kArr).put(kF32).put<uint64_t>(3).put(1.5f).put(-2.0f).put(0.25f);
    h.str("norm.weight").put<uint32_t>(1).put<uint64_t>(16).put<uint32_t>(0).put<uint64_t>(vec_offset);
    h.str("mat.weight").put<uint32_t>(2).put<uint64_t>(64).put<uint64_t>(2).put<uint32_t>(mat_type).put<uint64_t>(mat_offset);
    return h;
  }
  std::vector<uint8_t> file() const {
    Bytes f = header();
    f.pad_to(32);
    for (int i = 0; i < 64; ++i) f.put<uint8_t>(i);  // norm: 16 f32
    for (int i = 0; i < 4 * 34; ++i) f.put<uint8_t>(i & 0x7f);  // 4 Q8_0 blocks
    return f.b;
  }
};

GgufHeader parse(const std::vector<uint8_t>& b) { return parse_gguf_header(b.data(), b.size(), "t.gguf"); }

std::string parse_error(const std::vector<uint8_t>& b) {
  return error_of([&] { parse(b); });
}

TEST(Gguf, ReadsAValidFile) {
  const std::vector<uint8_t> bytes = Valid().file();
  const GgufFile f = GgufFile::view(bytes.data(), bytes.size(), "t.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores"), (std::vector<float>{1.5f, -2.0f, 0.25f}));
  ASSERT_EQ(f.header().tensors.size(), 2u);
  const GgufTensorInfo* mat = f.find_tensor("mat.weight");
  ASSERT_NE(mat, nullptr);
  EXPECT_EQ(mat->type, GgmlType::q8_0);
  EXPECT_EQ(mat->dims, (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(mat->bytes, 4u * 34);
  EXPECT_EQ(mat->offset, f.header().data_start + 64);
  EXPECT_EQ(f.tensor_bytes(*mat)[1], 1);
  EXPECT_EQ(f.header().data_start % 32, 0u);
  EXPECT_EQ(f.find_tensor("absent"), nullptr);
  EXPECT_NE(error_of([&] { f.get_int("general.architecture"); }).find("'general.architecture' is a string, not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { f.get_string("missing.key"); }).find("'missing.key' is missing"), std::string::npos);
}

TEST(Gguf, VersionTwoReadsTheSame) {
  std::vector<uint8_t> b = Valid().file();
  b[4] = 2;
  EXPECT_EQ(parse(b).version, 2u);
}

// Every byte short of the whole header is a truncated file, rejected with a message (never a
// read past the end: ASan in the fuzz build checks the same).
TEST(Gguf, EveryTruncationIsRejected) {
  const std::vector<uint8_t> whole = Valid().file();
  for (size_t n = 0; n < whole.size(); ++n) {
    std::vector<uint8_t> cut(whole.begin(), whole.begin() + n);
    const std::string e = parse_error(cut);
    EXPECT_NE(e, "") << "accepted a file cut at " << n << " bytes";
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
}

struct Case {
  const char* name;
  std::vector<uint8_t> bytes;
  const char* message;
};

std::vector<Case> corrupt_cases() {
  std::vector<Case> cases;
  const Valid v;
  auto with = [&](size_t at, std::vector<uint8_t> patch) {
    std::vector<uint8_t> b = v.file();
    std::copy(patch.begin(), patch.end(), b.begin() + at);
    return b;
  };
  auto u64 = [](uint64_t x) {
    std::vector<uint8_t> p(8);
    std::memcpy(p.data(), &x, 8);
    return p;
  };
  auto u32 = [](uint32_t x) {
    std::vector<uint8_t> p(4);
    std::memcpy(p.data(), &x, 4);
    return p;
  };
  cases.push_back({"bad_magic", with(0, {'G', 'G', 'M', 'L'}), "not a GGUF file"});
  cases.push_back({"version_1", with(4, u32(1)), "GGUF version 1 is not supported"});
  cases.push_back({"version_4", with(4, u32(4)), "GGUF version 4 is not supported"});
  cases.push_back({"big_endian", with(4, u32(0x03000000)), "big-endian"});
  cases.push_back({"huge_tensor_count", with(8, u64(1ull << 62)), "tensor count"});
  cases.push_back({"huge_kv_count", with(16, u64(UINT64_MAX)), "metadata count"});
  // The first key's length (offset 24) past the end of the file, and huge.
  cases.push_back({"key_length_past_end", with(24, u64(1 << 20)), "at most 65536"});
  cases.push_back({"key_length_huge", with(24, u64(UINT64_MAX - 3)), "bytes long"});
  // The first value's type: 24 + 8 + 20 ("general.architecture") = 52.
  cases.push_back({"unknown_value_type", with(52, u32(13)), "unknown value type 13"});
  // The first value's string length (offset 56).
  cases.push_back({"string_past_end", with(56, u64(1ull << 40)), "runs past the end of the file"});
  {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(2);
    b.str("a").put(kU32).put<uint32_t>(1);
    b.str("a").put(kU32).put<uint32_t>(2);
    cases.push_back({"duplicate_key", b.b, "metadata key 'a' appears twice"});
  }
  {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
    b.str("arr").put(kArr).put(kI32).put<uint64_t>(1ull << 62);
    cases.push_back({"array_count_overflow", b.b, "elements run past the end of the file"});
  }
  {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
    b.str("arr").put(kArr).put(kStr).put<uint64_t>(1ull << 40);
    cases.push_back({"string_array_count_huge", b.b, "strings cannot fit in the file"});
  }
  {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
    b.str("arr").put(kArr).put(kArr).put<uint64_t>(1);
    cases.push_back({"nested_array", b.b, "arrays of arrays are not supported"});
  }
  {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
    b.str("general.alignment").put(kU32).put<uint32_t>(48);
    cases.push_back({"alignment_not_power_of_two", b.b, "general.alignment 48 is not a power of two"});
  }
  {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
    b.str("general.alignment").put(kStr).str("32");
    cases.push_back({"alignment_wrong_type", b.b, "general.alignment must be a u32"});
  }
  // A file of two tensor infos (written by `infos`), no metadata, and data_bytes of data.
  auto tensors = [&](const std::function<void(Bytes&)>& infos, size_t data_bytes) {
    Bytes b;
    b.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(2).put<uint64_t>(0);
    Bytes t;
    infos(t);
    b.b.insert(b.b.end(), t.b.begin(), t.b.end());
    b.pad_to(32);
    b.b.resize(b.b.size() + data_bytes);
    return b.b;
  };
  auto info = [](Bytes& b, const char* name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    b.str(name).put<uint32_t>((uint32_t)dims.size());
    for (uint64_t d : dims) b.put<uint64_t>(d);
    b.put<uint32_t>(type).put<uint64_t>(offset);
  };
  cases.push_back({"duplicate_tensor", tensors([&](Bytes& b) {
                     info(b, "w", {32}, 0, 0);
                     info(b, "w", {32}, 0, 128);
                   }, 256), "tensor name 'w' appears twice"});
  cases.push_back({"misaligned_offset", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {32}, 0, 130);
                   }, 512), "tensor 'b': offset 130 is not a multiple of the alignment 32"});
  cases.push_back({"overlapping_tensors", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {32}, 0, 64);
                   }, 512), "tensors 'a' and 'b' overlap"});
  cases.push_back({"tensor_past_end", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {64}, 0, 128);
                   }, 256), "tensor 'b': bytes [128, 384) of the data section run past the end of the file"});
  cases.push_back({"unknown_tensor_type", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {32}, 4, 128);
                   }, 512), "tensor 'b': unknown tensor type 4"});
  cases.push_back({"dims_product_overflows", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {1ull << 32, 1ull << 32}, 0, 128);
                   }, 512), "tensor 'b': the product of its dims overflows 64 bits"});
  cases.push_back({"bytes_overflow", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {1ull << 62}, 0, 128);
                   }, 512), "tensor 'b': its byte size overflows 64 bits"});
  cases.push_back({"zero_dim", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {32, 0}, 0, 128);
                   }, 512), "tensor 'b': dim 1 is 0"});
  cases.push_back({"five_dims", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {1, 1, 1, 1, 1}, 0, 128);
                   }, 512), "tensor 'b': 5 dims (1 to 4 allowed)"});
  cases.push_back({"partial_block", tensors([&](Bytes& b) {
                     info(b, "a", {32}, 0, 0);
                     info(b, "b", {48}, 2, 128);
                   }, 512), "tensor 'b': rows of 48 weights are not whole Q4_0 blocks of 32"});
  return cases;
}

class GgufCorrupt : public ::testing::TestWithParam<Case> {};

TEST_P(GgufCorrupt, IsRejectedWithItsMessage) {
  const std::string e = parse_error(GetParam().bytes);
  EXPECT_NE(e.find(GetParam().message), std::string::npos) << "message: " << e;
  EXPECT_EQ(e.rfind("t.gguf: ", 0), 0u) << "message names the file: " << e;
}

INSTANTIATE_TEST_SUITE_P(Corpus, GgufCorrupt, ::testing::ValuesIn(corrupt_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace lowbit
