// Content-addressed files for the model store: what Ollama's clients upload (POST
// /api/blobs/sha256:<hex>) before /api/create names them in `files` (a GGUF, or the files of an HF
// directory). Kept in ROOT/.blobs/sha256-<hex> (a dot directory, which the store's list() never
// walks); each is written aside and renamed into place only once its bytes hash to its name, so a
// blob that exists is always whole and right.
//
// Thread safety: any number of Writers and readers at once (a blob appears by one rename; two
// uploads of the same blob both write aside, and the later rename replaces equal bytes).
#pragma once

#include <cstddef>
#include <cstdio>
#include <map>
#include <string>

#include "store/sha256.h"

namespace lowbit {

class BlobStore {
 public:
  explicit BlobStore(const std::string& store_root);
  // "sha256:<64 lower-case hex>" -> the hex; else Error(invalid_argument) naming the digest.
  static std::string digest_hex(const std::string& digest);
  bool has(const std::string& digest) const;
  std::string path(const std::string& digest) const;  // where the blob is, or would be
  void remove(const std::string& digest) const;        // if it is there

  // One upload: bytes in, then commit() checks them against the digest and puts the blob in place.
  // A Writer destroyed uncommitted (a failed or abandoned upload) leaves nothing behind, unless it
  // is resumable: then what it has is kept as ROOT/.blobs/.partial-HEX, and the next resumable
  // Writer of that digest starts from it (size() bytes in; a download asks for the rest). One
  // resumable Writer of a digest at a time (a lock on the file); another writes aside, afresh.
  class Writer {
   public:
    Writer(const BlobStore& store, const std::string& digest, bool resumable = false);  // Error(io): cannot write
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    void write(const char* data, size_t n);  // Error(io) on a failed write (a full disk)
    uint64_t size() const { return size_; }
    void restart();  // drop what it has (a server that sent the whole file again)
    // Error(invalid_argument) naming both digests when the bytes hash to another.
    void commit();

   private:
    std::string hex_, final_, temp_;
    bool keep_ = false;  // resumable: an uncommitted partial file stays
    std::FILE* f_ = nullptr;
    Sha256 hash_;
    uint64_t size_ = 0;
  };

  // A directory of links, one per entry of `files` (a file name -> a blob's digest), for importing
  // what the files make up (one GGUF, or an HF directory); removed with this object. Error
  // (invalid_argument) naming "files.<name>" for a name that is not a plain file name or a digest
  // that is malformed or not here.
  class Staged {
   public:
    Staged(const BlobStore& store, const std::map<std::string, std::string>& files);
    ~Staged();
    Staged(const Staged&) = delete;
    Staged& operator=(const Staged&) = delete;
    // The import's source: the one file's link when it is alone, else the directory.
    const std::string& source() const { return source_; }
    const std::string& dir() const { return dir_; }  // the links' directory

   private:
    std::string dir_, source_;
  };

 private:
  std::string dir_;  // ROOT/.blobs
};

}  // namespace lowbit
