#include "store/blobs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "kernels/error.h"

namespace lowbit {
namespace fs = std::filesystem;

namespace {

std::string hex_of(const std::array<uint8_t, 32>& h) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : h) s += {kHex[b >> 4], kHex[b & 15]};
  return s;
}

// A name no other writer in this process or another picks: pid and a counter.
std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  return std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

BlobStore::BlobStore(const std::string& store_root) : dir_((fs::path(store_root) / ".blobs").string()) {}

std::string BlobStore::digest_hex(const std::string& digest) {
  const std::string prefix = "sha256:";
  bool ok = digest.size() == prefix.size() + 64 && digest.compare(0, prefix.size(), prefix) == 0;
  for (size_t i = prefix.size(); ok && i < digest.size(); ++i)
    ok = std::isdigit((unsigned char)digest[i]) || (digest[i] >= 'a' && digest[i] <= 'f');
  if (!ok)
    throw Error(ErrorCode::invalid_argument,
                "digest '" + digest + "' is not \"sha256:\" and 64 lower-case hex digits");
  return digest.substr(prefix.size());
}

std::string BlobStore::path(const std::string& digest) const {
  return (fs::path(dir_) / ("sha256-" + digest_hex(digest))).string();
}

void BlobStore::remove(const std::string& digest) const {
  std::error_code ec;
  fs::remove(path(digest), ec);
}

bool BlobStore::has(const std::string& digest) const {
  std::error_code ec;
  return fs::is_regular_file(path(digest), ec);
}

BlobStore::Writer::Writer(const BlobStore& store, const std::string& digest, bool resumable)
    : hex_(digest_hex(digest)), final_(store.path(digest)) {
  std::error_code ec;
  fs::create_directories(store.dir_, ec);
  if (resumable) {
    // The partial file of an earlier attempt, locked for this Writer's life (another process or
    // thread at it means writing aside instead).
    const std::string partial = (fs::path(store.dir_) / (".partial-" + hex_)).string();
    const int fd = ::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      f_ = ::fdopen(fd, "r+b");
      if (f_) {
        temp_ = partial;
        keep_ = true;
        char buf[1 << 16];
        for (size_t n; (n = std::fread(buf, 1, sizeof buf, f_)) > 0;) {
          hash_.update(buf, n);
          size_ += n;
        }
        std::fseek(f_, 0, SEEK_END);
        return;
      }
    }
    if (fd >= 0) ::close(fd);
  }
  temp_ = (fs::path(store.dir_) / (".tmp-" + hex_ + "-" + unique_suffix())).string();
  f_ = std::fopen(temp_.c_str(), "wb");
  if (!f_) throw Error(ErrorCode::io, temp_ + ": cannot write: " + std::strerror(errno));
}

BlobStore::Writer::~Writer() {
  if (f_) std::fclose(f_);  // closing drops the lock
  if (!temp_.empty() && !keep_) std::remove(temp_.c_str());
}

void BlobStore::Writer::restart() {
  std::fflush(f_);
  if (::ftruncate(::fileno(f_), 0) != 0 || std::fseek(f_, 0, SEEK_SET) != 0)
    throw Error(ErrorCode::io, temp_ + ": cannot start it again: " + std::strerror(errno));
  hash_ = Sha256();
  size_ = 0;
}

void BlobStore::Writer::write(const char* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) throw Error(ErrorCode::io, temp_ + ": write failed: " + std::strerror(errno));
  hash_.update(data, n);
  size_ += n;
}

void BlobStore::Writer::commit() {
  const int closed = std::fclose(f_);
  f_ = nullptr;
  if (closed != 0) throw Error(ErrorCode::io, temp_ + ": write failed: " + std::strerror(errno));
  const std::string got = hex_of(hash_.finish());
  if (got != hex_) {
    keep_ = false;  // wrong bytes are no start for another attempt
    throw Error(ErrorCode::invalid_argument, "the uploaded bytes (" + std::to_string(size_) + ") hash to sha256:" +
                                                 got + ", not to the digest named, sha256:" + hex_);
  }
  std::error_code ec;
  fs::rename(temp_, final_, ec);
  if (ec) throw Error(ErrorCode::io, final_ + ": cannot put the blob in place: " + ec.message());
  temp_.clear();
}

BlobStore::Staged::Staged(const BlobStore& store, const std::map<std::string, std::string>& files) {
  if (files.empty()) throw Error(ErrorCode::invalid_argument, "files: names no file");
  for (const auto& [name, digest] : files) {
    const std::string field = "files." + name;
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos)
      throw Error(ErrorCode::invalid_argument, field + ": a file name without '/' is required");
    std::string blob;
    try {
      blob = store.path(digest);
    } catch (const Error& e) {
      throw Error(ErrorCode::invalid_argument, field + ": " + e.what());
    }
    std::error_code ec;
    if (!fs::is_regular_file(blob, ec))
      throw Error(ErrorCode::invalid_argument,
                  field + ": no blob " + digest + " here (upload it first: POST /api/blobs/" + digest + ")");
  }
  std::error_code ec;
  fs::create_directories(store.dir_, ec);
  const std::string dir = (fs::path(store.dir_) / (".stage-" + unique_suffix())).string();
  fs::create_directory(dir, ec);
  if (ec) throw Error(ErrorCode::io, dir + ": cannot create: " + ec.message());
  dir_ = dir;
  try {
    for (const auto& [name, digest] : files) {
      fs::create_symlink(store.path(digest), fs::path(dir_) / name, ec);
      if (ec) throw Error(ErrorCode::io, (fs::path(dir_) / name).string() + ": cannot link: " + ec.message());
    }
  } catch (...) {  // no destructor runs for a constructor that throws
    fs::remove_all(dir_, ec);
    throw;
  }
  source_ = files.size() == 1 ? (fs::path(dir_) / files.begin()->first).string() : dir_;
}

BlobStore::Staged::~Staged() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);  // the links, never the blobs they point to
}

}  // namespace lowbit
