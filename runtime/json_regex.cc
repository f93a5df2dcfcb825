#include "runtime/json_regex.h"

#include <algorithm>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr uint32_t kMaxCode = 0x10FFFF;
constexpr uint32_t kMaxRepeat = 1000;  // a bound above this cannot fit kMaxPositions anyway
constexpr int kMaxGroupDepth = 64;

Ranges normalized(Ranges r) {  // sorted, merged, surrogates left out (no JSON string holds one alone)
  Ranges cut;
  for (auto [lo, hi] : r) {
    if (lo < 0xD800) cut.push_back({lo, std::min(hi, 0xD7FFu)});
    if (hi > 0xDFFF) cut.push_back({std::max(lo, 0xE000u), hi});
  }
  std::sort(cut.begin(), cut.end());
  Ranges out;
  for (auto [lo, hi] : cut) {
    if (lo > hi) continue;
    if (!out.empty() && lo <= out.back().second + 1) out.back().second = std::max(out.back().second, hi);
    else out.push_back({lo, hi});
  }
  return out;
}

Ranges complement(const Ranges& r) {  // of a normalized set
  Ranges out;
  uint32_t next = 0;
  for (auto [lo, hi] : r) {
    if (lo > next) out.push_back({next, lo - 1});
    next = hi + 1;
  }
  if (next <= kMaxCode) out.push_back({next, kMaxCode});
  return normalized(out);
}

// ECMA-262's \d, \w and \s (ASCII digits and word characters; its WhiteSpace and LineTerminator).
Ranges class_escape(char c) {
  Ranges r;
  switch (c | 0x20) {
    case 'd': r = {{'0', '9'}}; break;
    case 'w': r = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; break;
    default:  // 's'
      r = {{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
           {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
  }
  r = normalized(r);
  return c >= 'a' ? r : complement(r);
}

struct Ast {
  enum Kind { empty, chars, concat, alt, repeat } kind = empty;
  Ranges ranges;  // chars
  std::vector<Ast> kids;
  uint32_t min = 0, max = 0;  // repeat; max kUnbounded: no upper bound
  bool has_chars = false;     // a character class inside: repeating it adds positions
};

}  // namespace

// Parses the pattern (UTF-8) into an Ast, then builds the Glushkov automaton from it.
class RegexBuilder {
 public:
  RegexBuilder(const std::string& pattern, const std::string& where, JsonRegex& out) : where_(where), out_(out) {
    for (size_t i = 0; i < pattern.size();) {  // decode; JSON text gave valid UTF-8, a caller may not
      char32_t code;
      bool ok;
      const size_t length = tok::utf8_next(pattern, i, code, ok);
      if (!ok) fail_at(text_.size(), "is not UTF-8 (byte " + std::to_string(i) + ")");
      text_.push_back(code);
      i += length;
    }
  }

  void build() {
    if (!text_.empty() && text_[0] == '^') out_.anchored_start_ = true, at_ = 1;
    const Ast ast = alternation(0);
    if (at_ < text_.size()) fail("an unmatched ')'");
    out_.pos_.assign(1, {});
    const Frag f = glushkov(ast);
    out_.pos_[0].follow = f.first;
    out_.final_ = f.last | (f.nullable ? 1 : 0);
    lengths();
  }

 private:
  struct Frag {
    bool nullable = true;
    uint64_t first = 0, last = 0;
  };

  [[noreturn]] void fail_at(size_t offset, const std::string& why) const {
    throw Error(ErrorCode::invalid_argument, where_ + ": pattern at character " + std::to_string(offset) + " " + why);
  }
  [[noreturn]] void fail(const std::string& why) const { fail_at(at_, "has " + why); }
  bool more() const { return at_ < text_.size(); }
  uint32_t peek() const { return text_[at_]; }

  Ast alternation(int depth) {
    if (depth > kMaxGroupDepth) fail("groups nested deeper than " + std::to_string(kMaxGroupDepth));
    Ast a;
    a.kind = Ast::alt;
    a.kids.push_back(sequence(depth));
    a.has_chars = a.kids.back().has_chars;
    while (more() && peek() == '|') {
      if (depth == 0 && (out_.anchored_start_ || out_.anchored_end_))
        fail("'|' beside an anchor, which would bind to one alternative only: group them, as in ^(a|b)$");
      ++at_;
      top_alternatives_ |= depth == 0;
      a.kids.push_back(sequence(depth));
      a.has_chars |= a.kids.back().has_chars;
    }
    return a;
  }

  Ast sequence(int depth) {
    Ast s;
    s.kind = Ast::concat;
    while (more() && peek() != '|' && peek() != ')') {
      if (peek() == '$') {
        if (depth != 0 || at_ + 1 != text_.size()) fail("'$' other than as the pattern's last character");
        if (top_alternatives_) fail("'$' after a '|', which would bind to one alternative only: group them");
        out_.anchored_end_ = true;
        ++at_;
        break;
      }
      if (peek() == '^') fail("'^' other than as the pattern's first character");
      Ast atom_ast = atom(depth);
      s.kids.push_back(quantified(std::move(atom_ast)));
      s.has_chars |= s.kids.back().has_chars;
    }
    return s;
  }

  Ast quantified(Ast a) {
    if (!more()) return a;
    uint32_t min = 0, max = JsonRegex::kUnbounded;
    const uint32_t c = peek();
    if (c == '*') {
      ++at_;
    } else if (c == '+') {
      min = 1, ++at_;
    } else if (c == '?') {
      max = 1, ++at_;
    } else if (c == '{') {
      braces(min, max);
    } else {
      return a;
    }
    if (more() && peek() == '?') ++at_;  // lazy: the same strings match
    if (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) fail("a quantifier after a quantifier");
    Ast r;
    r.kind = Ast::repeat;
    r.min = min, r.max = max;
    r.has_chars = a.has_chars;
    r.kids.push_back(std::move(a));
    return r;
  }

  void braces(uint32_t& min, uint32_t& max) {
    const size_t open = at_++;
    auto number = [&](uint32_t& v) {
      const size_t from = at_;
      uint64_t n = 0;
      while (more() && peek() >= '0' && peek() <= '9') n = std::min<uint64_t>(n * 10 + (peek() - '0'), 1u << 30), ++at_;
      v = (uint32_t)n;
      return at_ > from;
    };
    bool ok = number(min);
    if (ok && more() && peek() == ',') {
      ++at_;
      if (!number(max)) max = JsonRegex::kUnbounded;
    } else {
      max = min;
    }
    if (!ok || !more() || peek() != '}') fail_at(open, "has a '{' that is not a quantifier (write \\{ for the character)");
    ++at_;
    if (min > max) fail_at(open, "has a quantifier {n,m} with n > m");
    if (min > kMaxRepeat || (max != JsonRegex::kUnbounded && max > kMaxRepeat))
      fail_at(open, "repeats more than " + std::to_string(kMaxRepeat) + " times");
  }

  Ast chars(Ranges r) {
    Ast a;
    a.kind = Ast::chars;
    a.ranges = normalized(std::move(r));
    a.has_chars = true;
    if (a.ranges.empty()) fail("a class that matches no character a JSON string can hold");
    return a;
  }

  Ast atom(int depth) {
    const uint32_t c = text_[at_++];
    switch (c) {
      case '(': {
        if (more() && peek() == '?') {
          ++at_;
          if (more() && peek() == ':') {
            ++at_;
          } else if (more() && peek() == '<' && at_ + 1 < text_.size() && text_[at_ + 1] != '=' && text_[at_ + 1] != '!') {
            while (more() && peek() != '>') ++at_;  // a named group matches as a plain one
            if (!more()) fail("a group name without '>'");
            ++at_;
          } else {
            --at_;
            fail("lookaround or a group kind other than (?:...) and (?<name>...)");
          }
        }
        Ast inner = alternation(depth + 1);
        if (!more() || peek() != ')') fail("a '(' without its ')'");
        ++at_;
        return inner;
      }
      case ')': --at_; fail("an unmatched ')'");
      case '*': case '+': case '?': --at_; fail("a quantifier with nothing to repeat");
      case '{': --at_; fail("a '{' that is not a quantifier (write \\{ for the character)");
      case '.': return chars(complement(normalized({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}})));
      case '[': return chars(bracket());
      case '\\': {
        Ranges r;
        escape(false, r);
        return chars(std::move(r));
      }
      default: return chars({{c, c}});
    }
  }

  // After a backslash; a single character as one range, a class escape as its ranges. Returns
  // whether it was a class escape (\d and kin), which cannot end a range.
  bool escape(bool in_class, Ranges& r) {
    if (!more()) fail("a '\\' at the end");
    const size_t start = at_ - 1;  // the backslash
    const uint32_t c = text_[at_++];
    auto one = [&](uint32_t code) {
      r.push_back({code, code});
      return false;
    };
    auto hex = [&](int digits) {
      uint32_t v = 0;
      for (int i = 0; i < digits; ++i) {
        if (!more()) fail("a \\x or \\u escape with too few hex digits");
        const uint32_t h = peek();
        const int d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : -1;
        if (d < 0) fail("a \\x or \\u escape with too few hex digits");
        v = v * 16 + d, ++at_;
      }
      return v;
    };
    switch (c) {
      case 'd': case 'D': case 'w': case 'W': case 's': case 'S': {
        const Ranges k = class_escape((char)c);
        r.insert(r.end(), k.begin(), k.end());
        return true;
      }
      case 't': return one('\t');
      case 'n': return one('\n');
      case 'v': return one('\v');
      case 'f': return one('\f');
      case 'r': return one('\r');
      case 'x': return one(hex(2));
      case 'u': {
        if (more() && peek() == '{') fail("\\u{...}, which needs the u flag JSON Schema does not give");
        uint32_t code = hex(4);
        // A surrogate pair written as two escapes is one character.
        if (code >= 0xD800 && code < 0xDC00 && at_ + 1 < text_.size() && text_[at_] == '\\' && text_[at_ + 1] == 'u') {
          const size_t back = at_;
          at_ += 2;
          const uint32_t low = hex(4);
          if (low >= 0xDC00 && low < 0xE000) return one(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00));
          at_ = back;
        }
        return one(code);
      }
      case '0':
        if (more() && peek() >= '0' && peek() <= '9') fail("an octal escape");
        return one(0);
      case 'b':
        if (in_class) return one('\b');
        fail_at(start, "has \\b, a word boundary (an assertion, not a character)");
      default: break;
    }
    if (c >= '1' && c <= '9') fail_at(start, "has a backreference, which no regular language can follow");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
      fail_at(start, "has the escape \\" + std::string(1, (char)c) + ", which is not supported");
    return one(c);  // an escaped syntax or other non-word character stands for itself
  }

  Ranges bracket() {
    const size_t open = at_ - 1;
    bool negate = false;
    if (more() && peek() == '^') negate = true, ++at_;
    Ranges r;
    while (true) {
      if (!more()) fail_at(open, "has a '[' without its ']'");
      if (peek() == ']') {
        ++at_;
        break;
      }
      uint32_t lo = 0;
      const bool single = member(r, lo);  // false: a class escape
      if (more() && peek() == '-' && at_ + 1 < text_.size() && text_[at_ + 1] != ']') {
        if (!single) fail("a range with a class escape at an end");
        ++at_;
        uint32_t hi = 0;
        Ranges scratch;
        if (!member(scratch, hi)) fail("a range with a class escape at an end");
        if (hi < lo) fail("a range whose end is below its start");
        r.back().second = hi;
      }
    }
    r = normalized(r);
    return negate ? complement(r) : r;
  }

  // One class member into r; false for a class escape. code: the character, when one.
  bool member(Ranges& r, uint32_t& code) {
    const uint32_t c = text_[at_++];
    if (c == '\\') {
      if (escape(true, r)) return false;
      code = r.back().first;
      return true;
    }
    r.push_back({c, c});
    code = c;
    return true;
  }

  int add_position(const Ranges& ranges) {
    if ((int)out_.pos_.size() > JsonRegex::kMaxPositions)
      fail_at(0, "needs more than " + std::to_string(JsonRegex::kMaxPositions) +
                     " character positions (each character or class counts once per repetition)");
    out_.pos_.push_back({ranges, 0, 0, 0});
    return (int)out_.pos_.size() - 1;
  }

  void link(uint64_t from, uint64_t to) {
    for (int i = 0; i < 64; ++i)
      if ((from >> i) & 1) out_.pos_[i].follow |= to;
  }

  Frag then(const Frag& a, const Frag& b) {
    link(a.last, b.first);
    return {a.nullable && b.nullable, a.first | (a.nullable ? b.first : 0), b.last | (b.nullable ? a.last : 0)};
  }

  Frag glushkov(const Ast& a) {
    switch (a.kind) {
      case Ast::empty: return {};
      case Ast::chars: {
        const uint64_t bit = uint64_t(1) << add_position(a.ranges);
        return {false, bit, bit};
      }
      case Ast::concat: {
        Frag f;
        for (const Ast& k : a.kids) f = then(f, glushkov(k));
        return f;
      }
      case Ast::alt: {
        Frag f{false, 0, 0};
        for (const Ast& k : a.kids) {
          const Frag g = glushkov(k);
          f.nullable |= g.nullable, f.first |= g.first, f.last |= g.last;
        }
        return f;
      }
      case Ast::repeat: {
        // Without characters inside, every repetition is the empty string: one is enough (and
        // nested counts of such groups would otherwise multiply into billions of steps).
        if (!a.kids[0].has_chars) return glushkov(a.kids[0]);
        Frag f;
        for (uint32_t i = 0; i < a.min; ++i) f = then(f, glushkov(a.kids[0]));
        if (a.max == JsonRegex::kUnbounded) {
          Frag g = glushkov(a.kids[0]);
          link(g.last, g.first);
          g.nullable = true;
          return then(f, g);
        }
        for (uint32_t i = a.min; i < a.max; ++i) {
          Frag g = glushkov(a.kids[0]);
          g.nullable = true;
          f = then(f, g);
        }
        return f;
      }
    }
    return {};
  }

  // Each position's fewest and most characters still to come before a match can end.
  void lengths() {
    auto& pos = out_.pos_;
    const int n = (int)pos.size();
    for (auto& p : pos) p.fewest = JsonRegex::kUnbounded, p.most = 0;
    for (int i = 0; i < n; ++i)
      if ((out_.final_ >> i) & 1) pos[i].fewest = 0;
    for (int round = 0; round < n; ++round)
      for (int i = 0; i < n; ++i)
        for (int j = 1; j < n; ++j)
          if (((pos[i].follow >> j) & 1) && pos[j].fewest != JsonRegex::kUnbounded)
            pos[i].fewest = std::min(pos[i].fewest, pos[j].fewest + 1);
    // Longest: past kMaxPositions + 1 steps a path has gone round a cycle, so it can go on.
    const uint32_t cap = JsonRegex::kMaxPositions + 2;
    for (int round = 0; round <= (int)cap + 1; ++round)
      for (int i = 0; i < n; ++i)
        for (int j = 1; j < n; ++j)
          if ((pos[i].follow >> j) & 1) pos[i].most = std::min(cap, std::max(pos[i].most, pos[j].most + 1));
    for (auto& p : pos)
      if (p.most >= cap || !out_.anchored_end_) p.most = JsonRegex::kUnbounded;
    if (!out_.anchored_start_) pos[0].most = JsonRegex::kUnbounded;  // the start takes any prefix
  }

  const std::string where_;
  JsonRegex& out_;
  std::u32string text_;
  size_t at_ = 0;
  bool top_alternatives_ = false;
};

JsonRegex JsonRegex::compile(const std::string& pattern, const std::string& where, uint32_t min_length,
                             uint32_t max_length) {
  JsonRegex r;
  RegexBuilder(pattern, where, r).build();
  if (min_length > 0 && max_length != kUnbounded)
    throw Error(ErrorCode::invalid_argument,
                where + ": a pattern with both minLength and maxLength is not supported (give one, or the "
                        "length in the pattern)");
  r.min_length_ = min_length, r.max_length_ = max_length;
  r.start_ = r.feasible(1, 0);
  if (r.start_ && !r.anchored_end_ && (r.final_ & 1)) r.start_ = kMatched;
  if (!r.start_)
    throw Error(ErrorCode::invalid_argument, where + ": no string within minLength and maxLength matches the pattern");
  return r;
}

uint64_t JsonRegex::feasible(uint64_t cand, uint32_t chars) const {
  uint64_t keep = 0;
  for (uint64_t m = cand; m; m &= m - 1) {
    const int i = __builtin_ctzll(m);
    const Position& p = pos_[i];
    if (p.fewest == kUnbounded) continue;
    if (max_length_ != kUnbounded && (uint64_t)chars + p.fewest > max_length_) continue;
    if (p.most != kUnbounded && (uint64_t)chars + p.most < min_length_) continue;
    keep |= uint64_t(1) << i;
  }
  return keep;
}

JsonRegex::State JsonRegex::step(State s, uint32_t code, uint32_t chars) const {
  if (s & kMatched) return kMatched;
  uint64_t cand = 0;
  for (uint64_t m = s; m; m &= m - 1) cand |= pos_[__builtin_ctzll(m)].follow;
  uint64_t next = 0;
  for (uint64_t m = cand; m; m &= m - 1) {
    const int i = __builtin_ctzll(m);
    const auto& r = pos_[i].ranges;
    const auto it = std::upper_bound(r.begin(), r.end(), std::make_pair(code, kUnbounded));
    if (it != r.begin() && std::prev(it)->second >= code) next |= uint64_t(1) << i;
  }
  if (!anchored_start_) next |= s & 1;  // the start takes any character before a match begins
  next = feasible(next, chars);
  if (!anchored_end_ && (next & final_ & ~uint64_t(1))) return kMatched;
  return next;
}

bool JsonRegex::can_take(State s, uint32_t lo, uint32_t hi, uint32_t chars) const {
  // [lo, hi] less the surrogates, as at most two ranges (no allocation: this runs per byte tried).
  const std::pair<uint32_t, uint32_t> want[2] = {{lo, std::min(hi, 0xD7FFu)}, {std::max(lo, 0xE000u), hi}};
  if (want[0].first > want[0].second && want[1].first > want[1].second) return false;
  if (s & kMatched) return true;
  if (!anchored_start_ && (s & 1) && feasible(1, chars)) return true;  // before a match begins
  uint64_t cand = 0;
  for (uint64_t m = s; m; m &= m - 1) cand |= pos_[__builtin_ctzll(m)].follow;
  cand = feasible(cand, chars);
  for (uint64_t m = cand; m; m &= m - 1)
    for (auto [a, b] : pos_[__builtin_ctzll(m)].ranges)
      for (auto [c, d] : want)
        if (c <= d && a <= d && c <= b) return true;
  return false;
}

bool JsonRegex::matches(const std::u32string& text) const {
  State s = start_;
  uint32_t chars = 0;
  for (char32_t c : text) {
    if (c >= 0xD800 && c < 0xE000) return false;
    s = step(s, (uint32_t)c, ++chars);
    if (!s) return false;
  }
  return accepts(s);
}

}  // namespace lowbit
