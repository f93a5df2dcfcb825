// The store's blobs (store/blobs.h): kept only whole and right, named by their SHA-256.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <tuple>
#include <vector>
#include <string>

#include <gtest/gtest.h>

#include "../error_of.h"
#include "kernels/error.h"
#include "store/blobs.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using test::code_of;
using test::error_of;

// SHA-256 of "abc" (FIPS 180-4, appendix B.1).
const std::string kAbc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class BlobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("lowbit-blobs-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  // The blob directory's entries: what a failed upload or a staging must not leave.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (fs::exists(root_ / ".blobs"))
      for (const auto& e : fs::directory_iterator(root_ / ".blobs")) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path root_;
};

TEST_F(BlobsTest, AnUploadIsKeptOnlyWhenItsBytesHashToItsName) {
  BlobStore s(root_.string());
  EXPECT_FALSE(s.has(kAbc));
  {
    BlobStore::Writer w(s, kAbc);
    w.write("a", 1);
    w.write("bc", 2);
    w.commit();
  }
  EXPECT_TRUE(s.has(kAbc));
  std::ifstream f(s.path(kAbc));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "abc");
  // Other bytes under that name: refused, naming what they hash to; the blob there stays.
  const std::string other = "sha256:" + std::string(64, '0');
  {
    BlobStore::Writer w(s, other);
    w.write("abc", 3);
    EXPECT_NE(error_of([&] { w.commit(); }).find(kAbc), std::string::npos);
  }
  EXPECT_FALSE(s.has(other));
  {
    BlobStore::Writer abandoned(s, other);  // an upload cut off: nothing of it stays
    abandoned.write("ab", 2);
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"sha256-" + kAbc.substr(7)});
}

TEST_F(BlobsTest, AResumableUploadKeepsWhatItHadAndGoesOnFromThere) {
  BlobStore s(root_.string());
  {
    BlobStore::Writer w(s, kAbc, true);
    EXPECT_EQ(w.size(), 0u);
    w.write("a", 1);  // cut off here
  }
  EXPECT_EQ(entries(), std::vector<std::string>{".partial-" + kAbc.substr(7)});
  {
    BlobStore::Writer w(s, kAbc, true);
    EXPECT_EQ(w.size(), 1u);  // goes on after "a"
    // Meanwhile another resumable writer of the digest writes aside (the partial is locked).
    BlobStore::Writer other(s, kAbc, true);
    EXPECT_EQ(other.size(), 0u);
    w.write("bc", 2);
    w.commit();
  }
  EXPECT_TRUE(s.has(kAbc));
  // A restart drops what came before (a server that sent the whole file again).
  const std::string xyz = "sha256:3608bca1e44ea6c4d268eb6db02260269892c0b42b86bbf1e77a6fa16c3c9282";  // "xyz"
  {
    BlobStore::Writer w(s, xyz, true);
    w.write("xy", 2);
  }
  {
    BlobStore::Writer w(s, xyz, true);
    EXPECT_EQ(w.size(), 2u);
    w.restart();
    w.write("xyz", 3);
    w.commit();
  }
  EXPECT_TRUE(s.has(xyz));
  // Wrong bytes are not kept as a start for the next attempt.
  const std::string other = "sha256:" + std::string(64, '0');
  {
    BlobStore::Writer w(s, other, true);
    w.write("abc", 3);
    EXPECT_EQ(code_of([&] { w.commit(); }), ErrorCode::invalid_argument);
  }
  EXPECT_EQ(entries(), (std::vector<std::string>{"sha256-" + xyz.substr(7), "sha256-" + kAbc.substr(7)}));
}

TEST_F(BlobsTest, DigestsAreSha256InLowerCaseHex) {
  EXPECT_EQ(BlobStore::digest_hex(kAbc), kAbc.substr(7));
  for (const std::string& bad : std::vector<std::string>{"sha256:abc", "md5:" + kAbc.substr(7), "sha256:" + std::string(64, 'A'),
                                "sha256:" + std::string(63, '0') + "/", ""}) {
    EXPECT_EQ(code_of([&] { BlobStore::digest_hex(bad); }), ErrorCode::invalid_argument) << bad;
    EXPECT_NE(error_of([&] { BlobStore::digest_hex(bad); }).find("'" + bad + "'"), std::string::npos);
  }
}

TEST_F(BlobsTest, StagedFilesAreLinksUnderTheirNamesGoneAfterwards) {
  BlobStore s(root_.string());
  {
    BlobStore::Writer w(s, kAbc);
    w.write("abc", 3);
    w.commit();
  }
  std::string dir;
  {
    BlobStore::Staged one(s, {{"model.gguf", kAbc}});
    EXPECT_EQ(fs::path(one.source()).filename(), "model.gguf");
    std::ifstream f(one.source());
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "abc");
    BlobStore::Staged two(s, {{"config.json", kAbc}, {"tokenizer.json", kAbc}});
    EXPECT_EQ(two.source(), two.dir());
    EXPECT_TRUE(fs::is_symlink(fs::path(two.dir()) / "tokenizer.json"));
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"sha256-" + kAbc.substr(7)});  // links gone, blob kept
  const std::string missing = "sha256:" + std::string(64, '1');
  for (const auto& [name, digest, field] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"../x", kAbc, "files.../x"}, {"", kAbc, "files.:"}, {"..", kAbc, "files..."}, {"x", missing, "files.x"},
           {"x", "sha256:1", "files.x"}}) {
    const std::string e = error_of([&] { BlobStore::Staged st(s, {{name, digest}}); });
    EXPECT_EQ(e.rfind(field, 0), 0u) << e;
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"sha256-" + kAbc.substr(7)});
}

}  // namespace
}  // namespace lowbit
