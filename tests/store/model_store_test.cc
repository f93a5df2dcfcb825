// The model store (store/model_store.h) on real models: names, create from an HF directory and
// a GGUF file, list/find/copy/remove, that a failed create leaves nothing, that a concurrent
// reader never sees a half-written model, and the SHA-256 behind the digests.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../error_of.h"
#include "kernels/error.h"
#include "runtime/manifest.h"
#include "store/model_store.h"
#include "store/sha256.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using test::code_of;
using test::error_of;

const std::string kStories = LOWBIT_SOURCE_DIR "/../shared/models/stories260K";
const std::string kSmolGguf = LOWBIT_SOURCE_DIR "/../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

// A fresh, empty directory per test, removed afterwards.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("lowbit-store-test-" + std::to_string(getpid()) + "-" + info->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root() const { return (root_ / "models").string(); }
  // Everything under the root, relative, sorted: what a failed operation must not leave.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (!fs::exists(root())) return out;
    for (const auto& e : fs::recursive_directory_iterator(root())) out.push_back(fs::relative(e.path(), root()).string());
    std::sort(out.begin(), out.end());
    return out;
  }
  static CreateOptions opts(const std::string& q = "") {
    CreateOptions o;
    o.quantize = q;
    o.threads = 2;
    return o;
  }
  fs::path root_;
};

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// ---- SHA-256: FIPS 180-4's examples (csrc.nist.gov, "SHA256.pdf", "SHA2_Additional.pdf") ----

TEST(Sha256, fips_180_4_examples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Two blocks: the padding spills into a second one.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, pieces_of_any_size_hash_as_the_whole) {
  const std::string text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  for (size_t cut : {0, 1, 54, 55, 56}) {
    Sha256 h;
    h.update(text.data(), cut);
    h.update(text.data() + cut, text.size() - cut);
    const auto d = h.finish();
    char hex[65];
    for (int i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", d[i]);
    EXPECT_EQ(std::string(hex), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") << "cut " << cut;
  }
}

// ---- names ----

TEST(ModelStoreNames, normalize_adds_latest_and_keeps_a_tag) {
  EXPECT_EQ(ModelStore::normalize("smollm2"), "smollm2:latest");
  EXPECT_EQ(ModelStore::normalize("smollm2:135m-q4_1"), "smollm2:135m-q4_1");
  EXPECT_EQ(ModelStore::normalize("library/SmolLM2.v2_x-y:Q4"), "library/SmolLM2.v2_x-y:Q4");
}

TEST(ModelStoreNames, bad_names_are_refused_naming_them) {
  for (const std::string& bad : std::vector<std::string>{":latest", "x:", "a:b:c", "/abs", "x/", "a//b", "../up", "a/../b", "a/./b", ".hidden",
                                "x y", "x:a/b", "x:.t", "semi;colon", "a..b", std::string(300, 'a')}) {
    const std::string msg = error_of([&] { ModelStore::normalize(bad); });
    EXPECT_NE(msg.find(bad.substr(0, 20)), std::string::npos) << bad << " -> " << msg;
    EXPECT_EQ(code_of([&] { ModelStore::normalize(bad); }), ErrorCode::invalid_argument) << bad;
  }
  EXPECT_EQ(code_of([] { ModelStore::normalize(""); }), ErrorCode::invalid_argument);
}

TEST(ModelStoreNames, default_root_follows_the_environment) {
  const char* old = std::getenv("LOWBIT_MODELS");
  const std::string saved = old ? old : "";
  setenv("LOWBIT_MODELS", "/some/where", 1);
  EXPECT_EQ(ModelStore::default_root(), "/some/where");
  unsetenv("LOWBIT_MODELS");
  const char* home = std::getenv("HOME");
  if (home) EXPECT_EQ(ModelStore::default_root(), std::string(home) + "/.lowbit/models");
  if (old) setenv("LOWBIT_MODELS", saved.c_str(), 1);
}

// ---- create, list, find ----

TEST_F(StoreTest, an_empty_store_lists_nothing_and_finds_nothing) {
  ModelStore store(root());
  EXPECT_TRUE(store.list().empty());
  EXPECT_FALSE(store.find("nothing").has_value());
  EXPECT_FALSE(fs::exists(root()));  // nothing is created by reading
}

TEST_F(StoreTest, create_from_an_hf_directory) {
  ModelStore store(root());
  std::vector<std::string> progress;
  const StoredModel m = store.create("stories", kStories, opts(), [&](const std::string& l) { progress.push_back(l); });
  EXPECT_EQ(m.name, "stories:latest");
  EXPECT_EQ(fs::path(m.dir), fs::path(root()) / "stories" / ":latest");
  EXPECT_FALSE(progress.empty());
  // The details, each against its own source: the architecture and the count of weights from
  // the checkpoint's own files, 4 bits (an HF directory's default, asym below 8 bits as
  // `lowbit convert --help` says) for the linears.
  EXPECT_EQ(m.details.format, "lowbit");
  EXPECT_EQ(m.details.family, "llama");
  EXPECT_EQ(m.details.quantization_level, "Q4_G32_ASYM");
  EXPECT_EQ(m.details.parent_model, fs::absolute(kStories).lexically_normal().string());
  {
    // model.safetensors: 8 bytes of header length, then the JSON header with every shape.
    const std::string st = read_all(kStories + "/model.safetensors");
    uint64_t n = 0;
    std::memcpy(&n, st.data(), 8);
    const auto h = nlohmann::json::parse(st.substr(8, n));
    int64_t params = 0;
    for (const auto& [name, t] : h.items()) {
      if (name == "__metadata__") continue;
      int64_t k = 1;
      for (int64_t d : t["shape"]) k *= d;
      params += k;
    }
    char expect[32];
    std::snprintf(expect, sizeof expect, "%.0fK", params / 1e3);  // a few hundred thousand
    EXPECT_EQ(m.details.parameter_size, expect) << params << " parameters";
  }
  int64_t size = 0;
  for (const auto& e : fs::directory_iterator(m.dir)) size += (int64_t)e.file_size();
  EXPECT_EQ(m.size, size);
  EXPECT_EQ(m.digest, sha256_hex(read_all(fs::path(m.dir) / "manifest.json")));
  EXPECT_TRUE(std::regex_match(m.modified_at, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << m.modified_at;
  Manifest::open(m.dir).verify_checksums();

  const auto all = store.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name, "stories:latest");
  EXPECT_EQ(all[0].digest, m.digest);
  const auto found = store.find("stories");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->dir, m.dir);
  EXPECT_EQ(store.resolve("stories"), m.dir);
  EXPECT_EQ(store.resolve("stories:latest"), m.dir);
  EXPECT_EQ(store.resolve(kStories), kStories);  // an existing path is taken as it is
  // Nothing but the model is left in the root (no work directories).
  EXPECT_EQ(entries(), (std::vector<std::string>{"stories", "stories/:latest", "stories/:latest/manifest.json", "stories/:latest/tokenizer.model",
                                                  "stories/:latest/tokenizer_config.json",
                                                  "stories/:latest/weights.bin"}));
}

TEST_F(StoreTest, create_from_a_gguf_keeps_its_types) {
  ModelStore store(root());
  const StoredModel m = store.create("smollm2:135m", kSmolGguf, opts());
  // The file is Q4_1 (its name, and llama.cpp's type: 4-bit codes in blocks of 32 with a scale
  // and a minimum), which lowbit holds exactly as q4_g32_asym; SmolLM2-135M by its name.
  EXPECT_EQ(m.details.quantization_level, "Q4_G32_ASYM");
  EXPECT_EQ(m.details.parameter_size, "135M");
  EXPECT_EQ(m.details.family, "llama");
  EXPECT_EQ(Manifest::open(m.dir).header().recipe["bits"], "source");
}

TEST_F(StoreTest, quantization_names_map_to_no_fewer_bits) {
  ModelStore store(root());
  const std::pair<const char*, const char*> cases[] = {
      {"q8_0", "Q8_G32_SYM"},   {"q6_K", "Q8_G32_SYM"}, {"q5_K_M", "Q8_G32_SYM"}, {"q4_0", "Q4_G32_SYM"},
      {"q4_1", "Q4_G32_ASYM"}, {"Q4_K_M", "Q4_G32_ASYM"}, {"q3_K_S", "Q4_G32_ASYM"}, {"q2_K", "Q2_G32_ASYM"},
      {"8", "Q8_G32_SYM"},     {"2", "Q2_G32_ASYM"},  {"f16", "F16"}};
  for (const auto& [q, level] : cases) {
    const StoredModel m = store.create(std::string("s:") + q, kStories, opts(q));
    EXPECT_EQ(m.details.quantization_level, level) << q;
  }
  const std::string msg = error_of([&] { store.create("s:bad", kStories, opts("q7_X")); });
  EXPECT_NE(msg.find("q7_X"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { store.create("s:bad", kStories, opts("q7_X")); }), ErrorCode::invalid_argument);
  EXPECT_FALSE(store.find("s:bad").has_value());
}

TEST_F(StoreTest, a_name_with_slashes_and_its_directories_come_and_go) {
  ModelStore store(root());
  store.create("library/tiny:v1", kStories, opts("8"));
  store.create("library/tiny", kStories, opts("8"));
  const auto all = store.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "library/tiny:latest");
  EXPECT_EQ(all[1].name, "library/tiny:v1");
  store.remove("library/tiny:v1");
  store.remove("library/tiny");
  EXPECT_TRUE(store.list().empty());
  EXPECT_TRUE(entries().empty());  // the empty name directories went with them
}

TEST_F(StoreTest, create_replaces_a_model_of_the_same_name) {
  ModelStore store(root());
  const StoredModel a = store.create("m", kStories, opts("8"));
  const StoredModel b = store.create("m", kStories, opts("2"));
  const auto all = store.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].details.quantization_level, "Q2_G32_ASYM");
  EXPECT_NE(a.digest, b.digest);
  EXPECT_EQ(entries().size(), 6u);  // one model's directory and files, nothing else
}

// ---- copy, remove ----

TEST_F(StoreTest, copy_shares_the_weights_and_survives_the_original) {
  ModelStore store(root());
  const StoredModel a = store.create("a", kStories, opts("8"));
  const StoredModel b = store.copy("a", "b:copy");
  EXPECT_EQ(b.name, "b:copy");
  EXPECT_EQ(b.digest, a.digest);  // the same manifest: the same contents
  struct stat sa{}, sb{};
  ASSERT_EQ(::stat((fs::path(a.dir) / "weights.bin").c_str(), &sa), 0);
  ASSERT_EQ(::stat((fs::path(b.dir) / "weights.bin").c_str(), &sb), 0);
  EXPECT_EQ(sa.st_ino, sb.st_ino);  // a hard link, not a second copy
  EXPECT_EQ(store.list().size(), 2u);
  store.remove("a");
  EXPECT_FALSE(store.find("a").has_value());
  Manifest::open(store.find("b:copy")->dir).verify_checksums();
  // A stored model's name is a source for create too.
  const StoredModel c = store.create("c", "b:copy", opts());
  EXPECT_EQ(c.details.parent_model, "b:copy");
  Manifest::open(c.dir).verify_checksums();
}

TEST_F(StoreTest, unknown_models_are_not_found_by_name) {
  ModelStore store(root());
  for (const auto& fn : std::vector<std::function<void()>>{[&] { store.remove("ghost"); },
                                                          [&] { store.copy("ghost", "x"); },
                                                          [&] { store.resolve("ghost"); }}) {
    EXPECT_EQ(code_of(fn), ErrorCode::not_found);
    EXPECT_NE(error_of(fn).find("ghost"), std::string::npos) << error_of(fn);
  }
  const std::string msg = error_of([&] { store.resolve("ghost"); });
  EXPECT_NE(msg.find("neither an existing file or directory"), std::string::npos) << msg;
  EXPECT_NE(msg.find(root()), std::string::npos) << msg;
}

// ---- failures leave nothing ----

TEST_F(StoreTest, a_failed_create_leaves_nothing_behind) {
  ModelStore store(root());
  // A source that is not there.
  std::string msg = error_of([&] { store.create("x", root_.string() + "/no-such.gguf", opts()); });
  EXPECT_NE(msg.find("no-such.gguf"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { store.create("x", root_.string() + "/no-such.gguf", opts()); }), ErrorCode::not_found);
  // A GGUF cut short: the header parses, the tensors are past the end.
  fs::create_directories(root_ / "src");
  const std::string gguf = read_all(kSmolGguf);
  const fs::path cut = root_ / "src" / "cut.gguf";
  std::ofstream(cut, std::ios::binary).write(gguf.data(), (std::streamsize)(gguf.size() / 2));
  msg = error_of([&] { store.create("x", cut.string(), opts()); });
  EXPECT_NE(msg.find("cut.gguf"), std::string::npos) << msg;
  // An HF directory whose weights are garbage: fails while converting, after the work began.
  fs::create_directories(root_ / "src" / "hf");
  for (const char* f : {"config.json", "tokenizer.model", "tokenizer_config.json"})
    fs::copy_file(kStories + "/" + f, root_ / "src" / "hf" / f);
  std::ofstream(root_ / "src" / "hf" / "model.safetensors") << "not a safetensors file";
  msg = error_of([&] { store.create("x", (root_ / "src" / "hf").string(), opts()); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_FALSE(store.find("x").has_value());
  EXPECT_TRUE(store.list().empty());
  EXPECT_TRUE(entries().empty()) << entries().front();
  // A failed replace keeps the old model.
  const StoredModel ok = store.create("x", kStories, opts("8"));
  EXPECT_ANY_THROW(store.create("x", cut.string(), opts()));
  ASSERT_TRUE(store.find("x").has_value());
  EXPECT_EQ(store.find("x")->digest, ok.digest);
  EXPECT_EQ(entries().size(), 6u);
}

TEST_F(StoreTest, work_left_by_a_dead_process_is_swept_by_the_next_create) {
  // A child that dies (SIGKILL: no handler, no unwinding) in the middle of a create.
  ModelStore store(root());
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::atomic<bool> never{false};
    CreateOptions o = opts("8");
    o.cancel = &never;
    ModelStore(root()).create("x", kStories, o, [](const std::string&) { ::raise(SIGKILL); });
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_FALSE(entries().empty());  // its work directory is still there
  EXPECT_TRUE(store.list().empty());
  store.create("y", kStories, opts("8"));
  EXPECT_EQ(entries().size(), 6u);  // y's directory and files, the dead one's work gone
}

TEST_F(StoreTest, a_cancelled_create_leaves_nothing_behind) {
  ModelStore store(root());
  std::atomic<bool> cancel{true};
  CreateOptions o = opts();
  o.cancel = &cancel;
  EXPECT_EQ(code_of([&] { store.create("x", kStories, o); }), ErrorCode::cancelled);
  EXPECT_TRUE(entries().empty());
}

TEST_F(StoreTest, a_manifest_is_not_requantized) {
  ModelStore store(root());
  const StoredModel a = store.create("a", kStories, opts("8"));
  const std::string msg = error_of([&] { store.create("b", a.dir, opts("4")); });
  EXPECT_NE(msg.find("not requantized"), std::string::npos) << msg;
  EXPECT_FALSE(store.find("b").has_value());
}

// ---- concurrency: a reader never sees a half-written model ----

TEST_F(StoreTest, list_during_create_sees_only_whole_models) {
  ModelStore writer(root());
  std::atomic<bool> done{false};
  std::string failure;
  std::thread t([&] {
    try {
      for (int i = 0; i < 3; ++i) {
        writer.create("busy", kStories, opts(i % 2 ? "8" : "4"));
        writer.copy("busy", "busy:copy");
        writer.remove("busy:copy");
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    done = true;
  });
  ModelStore reader(root());  // another instance, as another thread or process would have
  int lists = 0, seen = 0;
  while (!done) {
    for (const StoredModel& m : reader.list()) {
      ++seen;
      // Every model listed is complete: a valid manifest over all its weights. open() reads the
      // manifest and the weights by path, so a replace (a directory exchange) between the two
      // reads pairs one model's manifest with the other's weights: that is this reader's race,
      // not a torn model, and shows as a new inode at the path (as the store's own re-read checks).
      struct stat before {};
      const bool had = ::stat(m.dir.c_str(), &before) == 0;
      try {
        Manifest::open(m.dir);
      } catch (const Error& e) {
        // Removed or replaced between list() and open() is allowed; anything else is torn.
        struct stat after {};
        const bool same = had && ::stat(m.dir.c_str(), &after) == 0 && after.st_ino == before.st_ino &&
                          after.st_dev == before.st_dev;
        if (same) ADD_FAILURE() << m.name << ": " << e.what();
      }
      EXPECT_FALSE(m.details.quantization_level.empty()) << m.name;
    }
    ++lists;
  }
  t.join();
  EXPECT_EQ(failure, "");
  EXPECT_GT(lists, 3);
  EXPECT_GT(seen, 0);
  ASSERT_EQ(reader.list().size(), 1u);
}

}  // namespace
}  // namespace lowbit
