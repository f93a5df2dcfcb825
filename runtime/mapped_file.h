// A whole file mapped read-only into memory (POSIX mmap), owned RAII-style and move-only. Used
// for safetensors shards and for the manifest's weights.bin, so a model's weights are paged in
// by the kernel on first touch instead of being copied.
//
// Thread safety: once open, data()/size() may be read from any number of threads. The mapping
// assumes the file is not truncated while mapped (that would fault the reader with SIGBUS, as
// with any mmap).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <span>
#include <string>

namespace lowbit {

class MappedFile {
 public:
  // Maps `path` read-only. Throws Error naming the path and the system's reason (errno text) when
  // the file cannot be opened, is not a regular file, or cannot be mapped. An empty file is
  // fine: size() is 0 and data() points at a valid (zero-length) buffer, never nullptr.
  static MappedFile open(const std::string& path);

  // n bytes of zeroed, writable memory that is not backed by a file (an imported model's
  // weights); label names it in messages. Moves, frees and reads like a mapped file.
  static MappedFile allocate(size_t n, const std::string& label);

  MappedFile() = default;  // an empty, unmapped file
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Only for allocate()d memory; throws Error for a mapped file.
  uint8_t* writable_data();

  // Tells the kernel the pages of [p, p + n) (inside this file) will not be read again soon, so
  // they leave this process's resident set; reading them later pages them back in. The converter
  // calls it after each tensor so its memory stays bounded by the largest tensor, not the model.
  void drop_pages(const void* p, size_t n) const;

 private:
  void release() noexcept;

  const uint8_t* data_ = empty_;  // (size_) bytes of the file, or empty_ when nothing is mapped
  size_t size_ = 0;
  bool mapped_ = false;           // whether data_ came from mmap and must be unmapped
  bool anonymous_ = false;        // allocate()d: writable, and its pages are never dropped
  std::string path_;

  static const uint8_t empty_[1];
};

// The whole of a small file (a config, tokenizer, text or question list) as a string. `what` says
// what the file is for, so an error reads "PATH: cannot open WHAT: REASON" (ErrorCode::not_found
// when it does not exist, io otherwise). Weights are mapped instead (MappedFile::open).
std::string read_file(const std::string& path, const std::string& what);

}  // namespace lowbit
