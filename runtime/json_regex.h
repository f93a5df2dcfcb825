// A JSON Schema "pattern" compiled for constrained generation (runtime/json_prefix.h): the
// regular expression of a string's characters (code points), decided one character at a time,
// or a range of them while a UTF-8 sequence or a \u escape is still being written.
//
// Syntax: ECMA-262 (what JSON Schema names), the part that is a regular language: literals,
// `.`, classes `[...]`/`[^...]` with ranges, the escapes \d \D \w \W \s \S \t \n \v \f \r \0
// \xHH \uHHHH and escaped syntax characters, groups `(...)`, `(?:...)`, `(?<name>...)`,
// alternation, and the quantifiers * + ? {n} {n,} {n,m} (lazy forms too: laziness does not
// change what matches). `^` is an anchor only as the pattern's first character and `$` only as
// its last; without them the pattern may match anywhere in the string, as JSON Schema says
// (a search, not a full match). Refused with an error naming the construct: lookaround,
// backreferences, \b and \B, anchors elsewhere, \p{...}, \cX, a `{` that is not a quantifier,
// and a pattern that needs more than kMaxPositions character positions (counted repetitions
// multiply theirs).
//
// The automaton is Glushkov's: one position per character class of the (repetition-expanded)
// expression, so a state is a set of positions, a 64-bit mask, and a step has no epsilon moves.
// Length bounds of the string (minLength, maxLength) are folded in per position: each knows the
// fewest and the most characters that can still follow it to a match, so a state never keeps a
// position from which the bounds cannot be met.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lowbit {

class JsonRegex {
 public:
  using State = uint64_t;  // bit 0: the start; bit i: position i; kMatched: a match has ended
  static constexpr int kMaxPositions = 62;
  static constexpr State kMatched = State(1) << 63;  // unanchored end: whatever follows matches
  static constexpr uint32_t kUnbounded = UINT32_MAX;

  // Throws Error(invalid_argument) "WHERE: ..." naming the construct and its offset.
  // min_length/max_length: the string's bounds in characters (kUnbounded: none).
  static JsonRegex compile(const std::string& pattern, const std::string& where, uint32_t min_length = 0,
                           uint32_t max_length = kUnbounded);

  // The state before any character; 0 when no string within the bounds matches.
  State start() const { return start_; }
  // After a character, which makes the string `chars` characters long; 0: it cannot come.
  State step(State s, uint32_t code, uint32_t chars) const;
  // Whether some character in [lo, hi] (surrogates left out) could come and make the string
  // `chars` long: how a partly written character is decided.
  bool can_take(State s, uint32_t lo, uint32_t hi, uint32_t chars) const;
  // Whether the string that led to s matches (it may end here; its length bounds are the
  // caller's to check, as for a string without a pattern).
  bool accepts(State s) const { return (s & (kMatched | final_)) != 0; }
  // The whole string (code points): used for enum/const values and tests.
  bool matches(const std::u32string& text) const;

 private:
  struct Position {
    std::vector<std::pair<uint32_t, uint32_t>> ranges;  // the class: sorted, disjoint, inclusive
    uint64_t follow = 0;                                // positions that may come next
    uint32_t fewest = 0, most = 0;  // characters after this one to a match (most: kUnbounded)
  };
  friend class RegexBuilder;
  // Positions whose bounds a string `chars` long (this one included) can still meet.
  uint64_t feasible(uint64_t cand, uint32_t chars) const;

  std::vector<Position> pos_;  // [0]: the start, no class
  uint64_t final_ = 0;         // positions at which a match may end (bit 0: the empty string)
  bool anchored_start_ = false, anchored_end_ = false;
  uint32_t min_length_ = 0, max_length_ = kUnbounded;
  State start_ = 0;
};

}  // namespace lowbit
