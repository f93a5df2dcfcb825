// The safetensors reader (convert/safetensors.h) and the file mapping under it
// (runtime/mapped_file.h): real files read right, and every malformed header rejected before
// any tensor byte is touched, with a one-line message naming the file and the tensor.
#include "tests/error_of.h"
#include "convert/safetensors.h"

#include <string.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hf_test_util.h"
#include "kernels/error.h"
#include "runtime/mapped_file.h"

namespace lowbit {
namespace {

using nlohmann::json;
using test::entry;
using test::safetensors_bytes;
using test::safetensors_json;
using test::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kStories = test::kModels + "/stories260K/model.safetensors";

using test::error_of;

std::string parse_error(const std::string& bytes, const std::string& label = "model.safetensors") {
  return error_of([&] {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), label);
  });
}

SafetensorsHeader parse(const std::string& bytes) {
  return parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "t");
}

// ---- MappedFile -------------------------------------------------------------------------------

TEST(MappedFile, maps_whole_file) {
  const MappedFile f = MappedFile::open(kStories);
  EXPECT_EQ(f.size(), std::filesystem::file_size(kStories));
  EXPECT_EQ(f.path(), kStories);
  const std::string bytes = test::read_file(kStories);
  ASSERT_EQ(bytes.size(), f.size());
  EXPECT_EQ(memcmp(f.data(), bytes.data(), f.size()), 0);
}

TEST(MappedFile, empty_file) {
  TempDir dir;
  test::write_file(dir / "empty", "");
  const MappedFile f = MappedFile::open(dir / "empty");
  EXPECT_EQ(f.size(), 0u);
  EXPECT_NE(f.data(), nullptr);
  EXPECT_TRUE(f.bytes().empty());
}

TEST(MappedFile, move_transfers_the_mapping) {
  MappedFile a = MappedFile::open(kStories);
  const uint8_t* p = a.data();
  const size_t n = a.size();
  MappedFile b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.size(), n);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  MappedFile c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.data()[0], (uint8_t)test::read_file(kStories)[0]);
}

TEST(MappedFile, missing_file_names_path_and_reason) {
  TempDir dir;
  const std::string msg = error_of([&] { MappedFile::open(dir / "nope.bin"); });
  EXPECT_THAT(msg, AllOf(HasSubstr(dir / "nope.bin"), HasSubstr("No such file or directory")));
}

TEST(MappedFile, directory_is_refused) {
  TempDir dir;
  const std::string msg = error_of([&] { MappedFile::open(dir.path()); });
  EXPECT_THAT(msg, AllOf(HasSubstr(dir.path()), HasSubstr("Is a directory")));
}

// ---- valid files ------------------------------------------------------------------------------

TEST(Safetensors, stories260K_header) {
  const SafetensorsFile f = SafetensorsFile::open(kStories);
  ASSERT_EQ(f.tensors().size(), 47u);
  uint64_t prev_end = 0;
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.dtype, DType::f32) << t.name;
    EXPECT_EQ(t.size, (uint64_t)t.numel() * 4) << t.name;
    EXPECT_GE(t.offset, prev_end) << t.name << ": tensors() is in file order";
    prev_end = t.offset + t.size;
    EXPECT_EQ(f.find(t.name), &t);
    EXPECT_EQ(f.bytes(t).size(), t.size);
  }
  EXPECT_EQ(prev_end, std::filesystem::file_size(kStories));  // the data section is fully used
  const TensorInfo* emb = f.find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);  // tied
  EXPECT_EQ(f.find("model.embed_tokens"), nullptr);
}

// Hand-made file: F16 and BF16 bit patterns with exactly known values, a data section that
// starts at an odd offset (the header length is not padded), a scalar and an empty tensor.
TEST(Safetensors, f16_bf16_unaligned_scalar_empty) {
  const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7bff};  // 1, -2, 2^-24, 65504
  const uint16_t bf16[] = {0x3f80, 0x4049, 0xff80};         // 1, 3.140625, -inf
  const float f32 = 0.5f;
  std::string data(reinterpret_cast<const char*>(f16), 8);
  data.append(reinterpret_cast<const char*>(bf16), 6);
  data.append(reinterpret_cast<const char*>(&f32), 4);
  json h;
  h["a"] = entry("F16", {2, 2}, 0, 8);
  h["b"] = entry("BF16", {3}, 8, 14);
  h["s"] = entry("F32", {}, 14, 18);
  h["e"] = entry("F32", {0, 7}, 18, 18);
  h["__metadata__"] = {{"format", "pt"}};
  std::string text = h.dump();
  if (text.size() % 2 == 0) text += " ";  // odd: every element below sits unaligned
  TempDir dir;
  test::write_file(dir / "x.safetensors", safetensors_bytes(text, data));
  const SafetensorsFile f = SafetensorsFile::open(dir / "x.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), 4u);

  EXPECT_EQ(f.read_f32(*f.find("a")), (std::vector<float>{1.0f, -2.0f, 5.9604644775390625e-08f, 65504.0f}));
  const std::vector<float> b = f.read_f32(*f.find("b"));
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], 3.140625f);
  EXPECT_TRUE(std::isinf(b[2]) && b[2] < 0);
  EXPECT_EQ(f.find("s")->numel(), 1);
  EXPECT_EQ(f.read_f32(*f.find("s")), std::vector<float>{0.5f});
  EXPECT_EQ(f.find("e")->numel(), 0);
  EXPECT_TRUE(f.read_f32(*f.find("e")).empty());
}

// A stack of experts' rows (experts, rows, cols), read one expert's rows at a time.
TEST(Safetensors, read_rows_of_a_3d_tensor) {
  std::vector<uint16_t> bf16(2 * 3 * 4);
  for (size_t i = 0; i < bf16.size(); ++i) bf16[i] = (uint16_t)(0x3f80 + 0x80 * i);  // 1, 2, 4, 8, ... exact
  json h;
  h["x"] = entry("BF16", {2, 3, 4}, 0, 48);
  TempDir dir;
  test::write_file(dir / "x.safetensors",
                   safetensors_bytes(h.dump(), std::string(reinterpret_cast<const char*>(bf16.data()), 48)));
  const SafetensorsFile f = SafetensorsFile::open(dir / "x.safetensors");
  const std::vector<float> all = f.read_f32(*f.find("x"));
  EXPECT_EQ(f.read_f32_rows(*f.find("x"), 3, 2), std::vector<float>(all.begin() + 12, all.begin() + 20));
  EXPECT_EQ(f.read_f32_rows(*f.find("x"), 0, 6), all);
  EXPECT_THAT(error_of([&] { f.read_f32_rows(*f.find("x"), 5, 2); }), HasSubstr("rows 5 .. 7 asked of 6"));
}

TEST(Safetensors, empty_header_and_gaps_are_valid) {
  EXPECT_TRUE(parse(safetensors_bytes("{}", "")).tensors.empty());
  // Slack between tensors is allowed (only sharing bytes is not); header padded with spaces.
  json h;
  h["a"] = entry("F32", {1}, 0, 4);
  h["b"] = entry("F32", {1}, 8, 12);
  const SafetensorsHeader p = parse(safetensors_bytes(h.dump() + "   ", std::string(12, '\0')));
  ASSERT_EQ(p.tensors.size(), 2u);
  EXPECT_EQ(p.data_start, 8 + h.dump().size() + 3);
  EXPECT_EQ(p.tensors[1].offset, p.data_start + 8);
}

TEST(Safetensors, to_f32_checks_byte_count) {
  TensorInfo t;
  t.name = "w";
  t.shape = {2};
  t.size = 8;
  float out[2];
  const uint8_t bytes[4] = {};
  EXPECT_THAT(error_of([&] { to_f32(t, std::span<const uint8_t>(bytes, 4), out); }),
              AllOf(HasSubstr("'w'"), HasSubstr("4 bytes given, 8 expected")));
}

// ---- malformed files --------------------------------------------------------------------------

TEST(SafetensorsBad, truncated_real_file) {
  TempDir dir;
  const std::string bytes = test::read_file(kStories);
  test::write_file(dir / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  const std::string msg = error_of([&] { SafetensorsFile::open(dir / "model.safetensors"); });
  EXPECT_THAT(msg, AllOf(HasSubstr(dir / "model.safetensors"), HasSubstr("tensor 'model."),
                         HasSubstr("past end of data")));
}

TEST(SafetensorsBad, shorter_than_length_prefix) {
  EXPECT_THAT(parse_error(std::string("\x05\0\0", 3)),
              AllOf(HasSubstr("model.safetensors: 3 bytes"), HasSubstr("too short")));
  EXPECT_THAT(parse_error(""), HasSubstr("model.safetensors: 0 bytes"));
}

TEST(SafetensorsBad, header_length_past_end_of_file) {
  EXPECT_EQ(parse_error(safetensors_bytes("{}", "", 1000)),
            "model.safetensors: header length 1000 past end of file (10 bytes)");
  EXPECT_THAT(parse_error(safetensors_bytes("{}", "", ~0ull)), HasSubstr("past end of file"));
}

TEST(SafetensorsBad, header_length_over_cap) {
  // A file big enough to hold the declared header, which is still absurdly large.
  const uint64_t n = kMaxSafetensorsHeader + 1;
  std::string bytes = safetensors_bytes(std::string(n, ' '), "", n);
  EXPECT_THAT(parse_error(bytes), AllOf(HasSubstr("model.safetensors: header length"), HasSubstr("limit")));
}

TEST(SafetensorsBad, header_not_json) {
  EXPECT_THAT(parse_error(safetensors_bytes("{\"a\": ", "")),
              AllOf(HasSubstr("model.safetensors: header is not valid JSON"), Not(HasSubstr("\n"))));
  // nlohmann stops at a NUL byte as if the input ended there; valid JSON never holds a raw NUL.
  EXPECT_THAT(parse_error(safetensors_bytes(std::string("{}\0junk", 6), "")),
              HasSubstr("model.safetensors: header holds a NUL byte (at header byte 2)"));
  EXPECT_THAT(parse_error(safetensors_bytes("\xff\xfe", "")), HasSubstr("not valid JSON"));
  EXPECT_THAT(parse_error(safetensors_bytes("[1, 2]", "")), HasSubstr("model.safetensors: header is not a JSON object"));
}

TEST(SafetensorsBad, header_nested_too_deep) {
  std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(parse_error(safetensors_bytes(deep, "")), HasSubstr("nests deeper"));
}

TEST(SafetensorsBad, duplicate_tensor) {
  const std::string h = R"({"w": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                            "w": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_THAT(parse_error(safetensors_bytes(h, std::string(8, '\0'))),
              HasSubstr("model.safetensors: tensor 'w' appears twice"));
  const std::string twice = R"({"w": {"dtype":"F32","shape":[1],"data_offsets":[0,4],"dtype":"I64"},
                                "v": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_EQ(parse_error(safetensors_bytes(twice, std::string(8, '\0'))),
            "model.safetensors: tensor 'w': field 'dtype' appears twice");
  // Keys are per entry: the same field names in two entries are fine.
  EXPECT_EQ(parse(safetensors_bytes(R"({"w": {"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                                        "v": {"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                    std::string(8, '\0'))).tensors.size(), 2u);
}

TEST(SafetensorsBad, entry_fields) {
  auto bad = [](const json& e) {
    json h;
    h["model.norm.weight"] = e;
    return parse_error(safetensors_json(h, std::string(64, '\0')));
  };
  const std::string t = "model.safetensors: tensor 'model.norm.weight': ";
  EXPECT_EQ(bad(json::array()), t + "entry is not a JSON object");
  EXPECT_EQ(bad({{"shape", {1}}, {"data_offsets", {0, 4}}}), t + "field 'dtype' missing");
  EXPECT_EQ(bad({{"dtype", 3}, {"shape", {1}}, {"data_offsets", {0, 4}}}), t + "field 'dtype' is not a string");
  EXPECT_EQ(bad(entry("I64", {2}, 0, 16)), t + "dtype 'I64' not supported (F32, F16, BF16 are)");
  EXPECT_THAT(bad(entry("F64", {2}, 0, 16)), HasSubstr("dtype 'F64' not supported"));
  EXPECT_EQ(bad({{"dtype", "F32"}, {"data_offsets", {0, 4}}}), t + "field 'shape' missing");
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", 4}, {"data_offsets", {0, 16}}}), t + "field 'shape' is not a list");
  const std::string not_ints = t + "field 'shape' is not a list of non-negative integers";
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {-1}}, {"data_offsets", {0, 4}}}), not_ints);
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {1.0}}, {"data_offsets", {0, 4}}}), not_ints);
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {"1"}}, {"data_offsets", {0, 4}}}), not_ints);
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {true}}, {"data_offsets", {0, 4}}}), not_ints);
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {1}}}), t + "field 'data_offsets' missing");
  const std::string not_pair = t + "field 'data_offsets' is not a list of two non-negative integers";
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {0, 4, 8}}}), not_pair);
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", {-4, 0}}}), not_pair);
  EXPECT_EQ(bad({{"dtype", "F32"}, {"shape", {1}}, {"data_offsets", "0-4"}}), not_pair);
  EXPECT_EQ(bad(entry("F32", {1}, 8, 4)), t + "data_offsets [8, 4] end before they begin");
  EXPECT_EQ(bad(entry("F32", {2, 3}, 0, 20)),
            t + "data_offsets [0, 20] hold 20 bytes but shape [2, 3] of F32 needs 24");
  EXPECT_EQ(bad(entry("BF16", {3}, 0, 12)), t + "data_offsets [0, 12] hold 12 bytes but shape [3] of BF16 needs 6");
}

TEST(SafetensorsBad, shape_overflow) {
  // 2^62 * 2^62 elements overflow 64 bits; so do 2^62 elements of 4 bytes.
  const int64_t big = int64_t(1) << 62;
  json h;
  h["w"] = entry("F32", {big, big}, 0, 0);
  EXPECT_THAT(parse_error(safetensors_json(h, "")), AllOf(HasSubstr("tensor 'w'"), HasSubstr("too many elements")));
  h["w"] = entry("F32", {big}, 0, 0);
  EXPECT_THAT(parse_error(safetensors_json(h, "")), AllOf(HasSubstr("tensor 'w'"), HasSubstr("too many elements")));
  // A zero dimension makes the product 0 whatever the others are: valid, and empty.
  h["w"] = entry("F32", {big, 0, big}, 0, 0);
  EXPECT_EQ(parse(safetensors_json(h, "")).tensors.at(0).size, 0u);
  h["w"] = json{{"dtype", "F32"}, {"shape", {18446744073709551615ull}}, {"data_offsets", {0, 4}}};
  EXPECT_THAT(parse_error(safetensors_json(h, "")), HasSubstr("not a list of non-negative integers"));
}

TEST(SafetensorsBad, offsets_past_end_of_data) {
  json h;
  h["model.norm.weight"] = entry("F32", {225}, 0, 900);
  EXPECT_EQ(parse_error(safetensors_json(h, std::string(512, '\0'))),
            "model.safetensors: tensor 'model.norm.weight': data_offsets [0, 900] past end of data (512 bytes)");
  h["model.norm.weight"] = entry("F32", {1}, 512, 516);
  EXPECT_THAT(parse_error(safetensors_json(h, std::string(512, '\0'))), HasSubstr("past end of data"));
  // Offsets near 2^64 must not wrap around into range.
  h["model.norm.weight"] = entry("F32", {1}, ~0ull - 3, ~0ull);
  EXPECT_THAT(parse_error(safetensors_json(h, std::string(512, '\0'))), HasSubstr("past end of data"));
}

TEST(SafetensorsBad, overlapping_tensors) {
  json h;
  h["a"] = entry("F32", {4}, 0, 16);
  h["b"] = entry("F32", {2}, 12, 20);
  EXPECT_EQ(parse_error(safetensors_json(h, std::string(20, '\0'))),
            "model.safetensors: tensors 'a' [0, 16] and 'b' [12, 20] overlap");
  // The same range twice.
  h["b"] = entry("F32", {4}, 0, 16);
  EXPECT_THAT(parse_error(safetensors_json(h, std::string(20, '\0'))), HasSubstr("overlap"));
  // Contained in another.
  h["b"] = entry("F16", {2}, 4, 8);
  EXPECT_THAT(parse_error(safetensors_json(h, std::string(20, '\0'))),
              AllOf(HasSubstr("'a' [0, 16]"), HasSubstr("'b' [4, 8]"), HasSubstr("overlap")));
  // Touching is not overlapping; an empty tensor owns no bytes.
  h["b"] = entry("F32", {1}, 16, 20);
  h["c"] = entry("F32", {0}, 8, 8);
  EXPECT_EQ(parse(safetensors_json(h, std::string(20, '\0'))).tensors.size(), 3u);
}

TEST(SafetensorsBad, metadata_must_be_strings) {
  json h;
  h["__metadata__"] = {{"format", 1}};
  EXPECT_THAT(parse_error(safetensors_json(h, "")), HasSubstr("'__metadata__' entry 'format' is not a string"));
  h["__metadata__"] = "pt";
  EXPECT_THAT(parse_error(safetensors_json(h, "")), HasSubstr("'__metadata__' is not a JSON object"));
}

TEST(SafetensorsBad, control_characters_stay_on_one_line) {
  json h;
  h["evil\nname"] = entry("I8", {1}, 0, 1);
  const std::string msg = parse_error(safetensors_json(h, "x"));
  EXPECT_THAT(msg, AllOf(HasSubstr("tensor 'evil\\x0aname'"), Not(HasSubstr("\n"))));
}

}  // namespace
}  // namespace lowbit
