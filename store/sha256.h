// SHA-256 (FIPS 180-4), for the store's digests: Ollama names a model's contents by the sha256 of
// its manifest, and clients compare those strings. The library links no crypto library (OpenSSL
// is not a dependency), and one hash of a few-kB file needs no speed, so this is the plain
// specification, checked against the FIPS 180-4 examples and Python's hashlib in the tests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> finish();  // the object is spent afterwards

 private:
  void block(const uint8_t* p);  // one 64-byte block into state_
  uint32_t state_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;  // bytes hashed
};

std::string sha256_hex(std::string_view data);  // 64 lower-case hex digits
// The file's bytes; throws Error(not_found / io) naming the path.
std::string sha256_file_hex(const std::string& path);

}  // namespace lowbit
