#include "runtime/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "kernels/error.h"

namespace lowbit {

const uint8_t MappedFile::empty_[1] = {0};

namespace {

[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw Error(path + ": " + what + ": " + strerror(err));
}

// Closes the descriptor on every path out of open(); the mapping outlives it.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile MappedFile::open(const std::string& path) {
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail(path, "cannot open", errno);
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) fail(path, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) fail(path, "cannot map", S_ISDIR(st.st_mode) ? EISDIR : EINVAL);

  MappedFile f;
  f.path_ = path;
  if (st.st_size == 0) return f;  // mmap refuses length 0; an empty file needs no mapping
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) fail(path, "cannot map", EFBIG);
  void* p = ::mmap(nullptr, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (p == MAP_FAILED) fail(path, "cannot map", errno);
  f.data_ = static_cast<const uint8_t*>(p);
  f.size_ = (size_t)st.st_size;
  f.mapped_ = true;
  return f;
}

MappedFile MappedFile::allocate(size_t n, const std::string& label) {
  MappedFile f;
  f.path_ = label;
  f.anonymous_ = true;
  if (n == 0) return f;
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail(label, "cannot allocate memory for", errno);
  f.data_ = static_cast<const uint8_t*>(p);
  f.size_ = n;
  f.mapped_ = true;
  return f;
}

uint8_t* MappedFile::writable_data() {
  if (!anonymous_) throw Error(path_ + ": a mapped file is read-only");
  return const_cast<uint8_t*>(data_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, empty_)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, false)),
      anonymous_(std::exchange(other.anonymous_, false)),
      path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, empty_);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, false);
    anonymous_ = std::exchange(other.anonymous_, false);
    path_ = std::move(other.path_);
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() noexcept {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = empty_;
  size_ = 0;
  mapped_ = false;
}

void MappedFile::drop_pages(const void* p, size_t n) const {
  if (!mapped_ || anonymous_ || n == 0) return;  // anonymous pages dropped would read back as zeros
  const auto page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t begin = std::max((uintptr_t)p & ~(page - 1), (uintptr_t)data_);
  const uintptr_t end = std::min((uintptr_t)p + n, (uintptr_t)data_ + size_);
  if (end > begin) madvise((void*)begin, end - begin, MADV_DONTNEED);  // advice only: errors ignored
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw Error(err == ENOENT ? ErrorCode::not_found : ErrorCode::io,
                path + ": cannot open " + what + ": " + strerror(err));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::io, path + ": cannot read " + what);
  return s.str();
}

}  // namespace lowbit
