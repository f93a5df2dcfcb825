// The recognizer under JSON mode (runtime/json_mode.h): whether bytes can still grow into one
// JSON value of a schema (runtime/json_schema.h), byte by byte.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <string_view>
#include <utility>

#include "runtime/json_schema.h"

namespace lowbit {

// Whether the bytes fed so far can still grow into one JSON value of a schema (by default any
// JSON object: JSON mode). Whitespace between tokens is allowed in runs of at most
// kMaxWhitespace bytes (a model in JSON mode can otherwise emit whitespace until its budget runs
// out; llama.cpp's JSON grammar bounds it the same way), and nesting to kMaxDepth levels.
// Where a schema's anyOf leaves several readings open (two object schemas before their keys
// differ), up to kMaxPaths are followed at once; further ones are dropped, which can refuse a
// valid text but never accepts an invalid one.
class JsonPrefix {
 public:
  static constexpr int kMaxWhitespace = 32;
  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxPaths = 16;

  JsonPrefix() : JsonPrefix(JsonSchema::any_object()) {}
  explicit JsonPrefix(const JsonSchema& schema);  // schema must outlive this

  // False: c cannot come next; the state is then unspecified (feed a copy to test a byte).
  bool feed(unsigned char c);
  bool feed(std::string_view s);
  // The bytes so far are a whole value: the end may come now. For an object, array, string or
  // literal nothing else may then follow; a number at the top level could still grow.
  bool complete() const;

 private:
  enum class Mode : uint8_t { value, first_key, key, colon, after_value, first_item, string, escape, unicode, number,
                              literal, option, done };
  enum class Num : uint8_t { minus, zero, integer, dot, fraction, e, e_sign, exponent };
  struct Frame {  // an open object or array
    int32_t node;
    bool object;
    uint32_t items;  // array: values started
    uint64_t seen;   // object: bit i, property i is present
  };
  static constexpr uint64_t kSaturated = 10000000000000000000ull;  // 10^19: past every int64 bound
  static constexpr int kInlineFrames = 4;  // below the top one; deeper frames are shared by copies
  struct Link;
  struct Path {  // one reading of the bytes so far
    Mode mode = Mode::value;
    Num num = Num::minus;
    bool key = false;      // the open string is an object key
    bool integer = false;  // the open number may not have a fraction or exponent
    bool negative = false;  // number: its sign
    uint64_t magnitude = 0;  // number: its digits so far as one integer, saturated at kSaturated
    uint64_t rem = 0;        // integer with multipleOf: magnitude modulo it, exact past saturation
    uint8_t digits = 0;      // number: how many (at most 255 counted)
    int8_t fraction = -1;    // number: how many after the point; -1 before one
    bool gap = false;      // option: whitespace came where only a structural byte may follow it
    bool in_string = false, escaped = false;  // option: where its pos bytes end
    uint8_t depth = 0;     // open containers
    uint8_t whitespace = 0;
    uint8_t left = 0;      // hex digits of \uXXXX still to come
    uint16_t high = 0;     // string: an escaped UTF-16 high surrogate waiting for its low half
    uint32_t code = 0;     // string: the \uXXXX read so far
    int32_t want = 0;      // value: the schema of the value to come; string, option: the open value's
    uint32_t chars = 0;    // string: characters so far
    uint64_t re = 0;       // string with a pattern: the automaton's state (JsonRegex::State)
    uint32_t partial = 0;  // string with a pattern: the bits of a UTF-8 character read so far
    uint8_t cont = 0, utf8_len = 0;  // its continuation bytes still to come, of how many bytes
    uint32_t lo = 0, hi = 0, pos = 0;  // key, option: the candidates [lo, hi) that match pos bytes
    const char* literal = "";          // the rest of "true", "false" or "null"
    Frame top{};                       // the innermost open container, when depth > 0
    Frame below[kInlineFrames]{};      // the ones around it, nearest first
    std::shared_ptr<const Link> deeper;  // and past those (JSON this deep is rare)
  };
  // Up to kMaxPaths readings, only the live ones constructed: a copy per token tried is the
  // hot path of a masked step.
  class Paths {
   public:
    Paths() = default;
    Paths(const Paths& o) {
      for (int i = 0; i < o.n_; ++i) add(Path(o[i]));
    }
    Paths& operator=(const Paths& o) {
      if (this != &o) {
        clear();
        for (int i = 0; i < o.n_; ++i) add(Path(o[i]));
      }
      return *this;
    }
    ~Paths() { clear(); }
    int size() const { return n_; }
    Path& operator[](int i) { return reinterpret_cast<Path*>(buf_)[i]; }
    const Path& operator[](int i) const { return reinterpret_cast<const Path*>(buf_)[i]; }
    void add(Path&& p) {
      if (n_ < kMaxPaths) new (&(*this)[n_++]) Path(std::move(p));
    }
    void resize_down(int n) {  // keeps the first n
      while (n_ > n) (*this)[--n_].~Path();
    }
    void clear() { resize_down(0); }

   private:
    alignas(Path) unsigned char buf_[sizeof(Path) * kMaxPaths];
    int n_ = 0;
  };
  using Extra = std::unique_ptr<Paths>;  // readings an anyOf adds in one step (rare: made on demand)

  // Each steps p in place by one byte: false when p cannot take it.
  bool step(Path& p, unsigned char c, Extra& extra) const;
  bool start_value(Path& p, int32_t node, unsigned char c, Extra& extra) const;
  bool after_value(Path& p, unsigned char c) const;
  // The schema of an array's item at index i: its prefixItems entry, else items.
  static int32_t item_schema(const JsonSchema::Node& array, uint32_t i) {
    return i < array.prefix_items.size() ? array.prefix_items[i] : array.items;
  }
  bool number(Path& p, unsigned char c, Extra& extra) const;
  bool number_digit(Path& p, unsigned char c) const;
  bool number_fits(const Path& p, bool whole) const;
  bool integer_fits(const Path& p, bool whole) const;
  bool multiple_reachable(const Path& p, bool whole) const;
  bool option(Path& p, unsigned char c, Extra& extra) const;
  std::pair<uint32_t, uint32_t> option_run(const Path& p, uint32_t lo, unsigned char c) const;
  bool end_key(Path& p) const;
  bool narrow_key(Path& p, unsigned char c) const;
  bool key_code(Path& p, uint32_t code, bool decoded) const;
  bool key_escape_fits(const Path& p) const;
  bool string_char(Path& p, bool escaped_code) const;
  const JsonRegex* regex(const Path& p) const;
  bool pattern_byte(Path& p, unsigned char c) const;
  bool pattern_code(Path& p, uint32_t code) const;
  bool pattern_escaped(Path& p, uint16_t high) const;
  bool pattern_hex(const Path& p) const;
  bool can_add_key(const Path& p) const;
  bool close(Path& p) const;
  void finish(Path& p) const;

  const JsonSchema* schema_;
  Paths paths_;
};

}  // namespace lowbit
