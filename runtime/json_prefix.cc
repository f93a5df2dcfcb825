#include "runtime/json_prefix.h"

#include <algorithm>
#include <cstring>

namespace lowbit {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_escape(unsigned char c) {
  return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't';
}
uint32_t unescape(unsigned char c) {  // of an is_escape byte
  return c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
}

}  // namespace

struct JsonPrefix::Link {
  Frame frame;
  std::shared_ptr<const Link> deeper;
};

JsonPrefix::JsonPrefix(const JsonSchema& schema) : schema_(&schema) {
  Path p;
  p.want = schema.root();
  paths_.add(std::move(p));
}

bool JsonPrefix::feed(std::string_view s) {
  for (unsigned char c : s)
    if (!feed(c)) return false;
  return true;
}

// Each reading steps in place (the usual case is one); a byte that opens a value of an anyOf may
// add readings, which join the others after them.
bool JsonPrefix::feed(unsigned char c) {
  Extra extra;
  int kept = 0;
  for (int i = 0; i < paths_.size(); ++i) {
    if (!step(paths_[i], c, extra)) continue;
    if (kept != i) paths_[kept] = std::move(paths_[i]);
    ++kept;
  }
  paths_.resize_down(kept);
  if (extra)
    for (int i = 0; i < extra->size(); ++i) paths_.add(std::move((*extra)[i]));
  return paths_.size() > 0;
}

bool JsonPrefix::complete() const {
  for (int i = 0; i < paths_.size(); ++i) {
    const Path& p = paths_[i];
    if (p.mode == Mode::done) return true;
    if (p.depth > 0) continue;
    if (p.mode == Mode::number && p.num != Num::minus && p.num != Num::dot && p.num != Num::e && p.num != Num::e_sign &&
        number_fits(p, true))
      return true;
    if (p.mode == Mode::option && schema_->node(p.want).options[p.lo].size() == p.pos) return true;
  }
  return false;
}

bool JsonPrefix::step(Path& p, unsigned char c, Extra& extra) const {
  switch (p.mode) {  // inside a token: a string, a number, a literal
    case Mode::string:
      if (c == '"') {
        if (p.key) return end_key(p);
        if (p.chars < schema_->node(p.want).min_length) return false;
        if (const JsonRegex* re = regex(p); re && (p.cont || p.high || !re->accepts(p.re))) return false;
        finish(p);
        return true;
      }
      if (c < 0x20) return false;  // control characters must be escaped
      if (c == '\\') {
        if (p.key ? !key_escape_fits(p) : !p.high && p.chars >= schema_->node(p.want).max_length) return false;
        // Escapes reach every character (\u and its pairs), so one may start if any can come.
        if (const JsonRegex* re = regex(p);
            re && !p.key && (p.cont || (!p.high && !re->can_take(p.re, 0, 0x10FFFF, p.chars + 1))))
          return false;
        p.mode = Mode::escape;
      } else if (p.key) {
        if (!key_code(p, c, false)) return false;
      } else {
        if (p.high && regex(p)) return false;  // a pattern takes characters, not a lone surrogate
        if ((c & 0xC0) != 0x80 && !string_char(p, false)) return false;  // a character starts
        if (!pattern_byte(p, c)) return false;
      }
      return true;
    case Mode::escape:
      if (c == 'u') {
        // Four hex digits decide which character a \u stands for; without other keys allowed
        // they could lead to no property's name, so such a key takes its characters raw.
        if (p.key && schema_->node(p.top.node).additional == JsonSchema::kNone) return false;
        p.mode = Mode::unicode;
        p.left = 4;
        p.code = 0;
        return true;
      }
      if (!is_escape(c)) return false;
      if (!p.key && p.high && regex(p)) return false;  // only a \u low half may follow a high one
      p.mode = Mode::string;
      if (!(p.key ? key_code(p, unescape(c), true) : string_char(p, false) && pattern_code(p, unescape(c))))
        return false;
      return true;
    case Mode::unicode:
      if (!is_hex(c)) return false;
      // A full string may still take the low half of a surrogate pair: \uDC00-\uDFFF.
      if (!p.key && p.high && p.chars >= schema_->node(p.want).max_length &&
          ((p.left == 4 && (c | 0x20) != 'd') || (p.left == 3 && !((c | 0x20) >= 'c' && (c | 0x20) <= 'f'))))
        return false;
      p.code = p.code * 16 + (is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
      if (--p.left == 0) {
        p.mode = Mode::string;
        if (p.key) return key_code(p, p.code, true);
        const uint16_t high = p.high;  // string_char pairs it up; the pattern needs it after
        return string_char(p, true) && pattern_escaped(p, high);
      }
      return p.key || pattern_hex(p);
    case Mode::literal:
      if (c != (unsigned char)*p.literal) return false;
      if (!*++p.literal) finish(p);
      return true;
    case Mode::number:
      return number(p, c, extra);
    case Mode::option:
      return option(p, c, extra);
    case Mode::done:
      return false;
    default:
      break;
  }
  // Between tokens: bounded whitespace, or the next structural byte.
  if (is_space(c)) {
    if (++p.whitespace > kMaxWhitespace) return false;
    return true;
  }
  p.whitespace = 0;
  const JsonSchema::Node* top = p.depth > 0 ? &schema_->node(p.top.node) : nullptr;
  switch (p.mode) {
    case Mode::value:
      return start_value(p, p.want, c, extra);
    case Mode::first_item:
      if (c == ']') return top->min_items == 0 && close(p);
      if (top->max_items == 0) return false;
      p.top.items = 1;
      return start_value(p, item_schema(*top, 0), c, extra);
    case Mode::first_key:
      if (c == '}') return top->required == 0 && close(p);
      [[fallthrough]];
    case Mode::key:
      if (c != '"' || !can_add_key(p)) return false;
      p.key = true;
      p.mode = Mode::string;
      p.lo = p.pos = 0;
      p.hi = (uint32_t)top->properties.size();
      return true;
    case Mode::colon:
      if (c != ':') return false;
      p.mode = Mode::value;
      return true;
    case Mode::after_value:
      return after_value(p, c);
    default:
      return false;
  }
}

bool JsonPrefix::after_value(Path& p, unsigned char c) const {
  const JsonSchema::Node& top = schema_->node(p.top.node);
  if (c == ',') {
    if (p.top.object) {
      if (!can_add_key(p)) return false;
      p.mode = Mode::key;
      return true;
    }
    if (p.top.items >= top.max_items) return false;
    p.want = item_schema(top, p.top.items);
    ++p.top.items;
    p.mode = Mode::value;
    return true;
  }
  if (c == '}' && p.top.object && (p.top.seen & top.required) == top.required) return close(p);
  if (c == ']' && !p.top.object && p.top.items >= top.min_items) return close(p);
  return false;
}

bool JsonPrefix::start_value(Path& p, int32_t node, unsigned char c, Extra& extra) const {
  if (node == JsonSchema::kNone) return false;
  const JsonSchema::Node& n = schema_->node(node);
  if (!n.any_of.empty()) {  // flattened: none of these is an anyOf
    // Each reading the byte allows: the first stays in p, the others go to extra.
    const Path base = p;
    bool any = false;
    for (int32_t alt : n.any_of) {
      Path q = base;
      if (!start_value(q, alt, c, extra)) continue;
      if (!any) {
        p = std::move(q);
        any = true;
      } else {
        if (!extra) extra = std::make_unique<Paths>();
        extra->add(std::move(q));
      }
    }
    return any;
  }
  if (n.has_options) {  // the value is one of these texts: match it byte by byte
    const auto& o = n.options;
    const auto first = std::lower_bound(o.begin(), o.end(), c, [](const std::string& t, unsigned char ch) {
      return (unsigned char)t[0] < ch;
    });
    const auto last = std::upper_bound(first, o.end(), c, [](unsigned char ch, const std::string& t) {
      return ch < (unsigned char)t[0];
    });
    if (first == last) return false;
    p.mode = Mode::option;
    p.want = node;
    p.lo = uint32_t(first - o.begin());
    p.hi = uint32_t(last - o.begin());
    p.pos = 1;
    p.in_string = c == '"';
    p.escaped = false;
    return true;
  }
  if (c == '{' || c == '[') {
    const bool object = c == '{';
    if (!(n.types & (object ? JsonSchema::kObject : JsonSchema::kArray)) || p.depth >= kMaxDepth) return false;
    if (p.depth > 0) {  // the top goes below; the farthest inline frame, past them
      if (p.depth - 1 >= kInlineFrames)
        p.deeper = std::make_shared<const Link>(Link{p.below[kInlineFrames - 1], std::move(p.deeper)});
      for (int i = kInlineFrames - 1; i > 0; --i) p.below[i] = p.below[i - 1];
      p.below[0] = p.top;
    }
    p.top = Frame{node, object, 0, 0};
    ++p.depth;
    p.mode = object ? Mode::first_key : Mode::first_item;
    return true;
  }
  if (c == '"') {
    if (!(n.types & JsonSchema::kString)) return false;
    p.key = false;
    p.mode = Mode::string;
    p.want = node;
    p.chars = 0;
    p.high = 0;
    p.cont = 0;
    if (n.pattern != JsonSchema::kNone) p.re = schema_->pattern(n.pattern).start();
    return true;
  }
  if (c == '-' || is_digit(c)) {
    if (!(n.types & (JsonSchema::kNumber | JsonSchema::kInteger))) return false;
    p.mode = Mode::number;
    p.want = node;
    p.integer = !(n.types & JsonSchema::kNumber);
    p.negative = c == '-';
    p.magnitude = 0;
    p.rem = 0;
    p.digits = 0;
    p.fraction = -1;
    p.num = Num::minus;
    return c == '-' ? number_fits(p, false) : number_digit(p, c);
  }
  const uint8_t type = c == 'n' ? JsonSchema::kNull : JsonSchema::kBoolean;
  p.literal = c == 't' ? "rue" : c == 'f' ? "alse" : c == 'n' ? "ull" : nullptr;
  if (!p.literal || !(n.types & type)) return false;
  p.mode = Mode::literal;
  return true;
}

bool JsonPrefix::close(Path& p) const {  // the caller has checked the container may end
  if (--p.depth > 0) {
    p.top = p.below[0];
    for (int i = 0; i + 1 < kInlineFrames; ++i) p.below[i] = p.below[i + 1];
    if (p.depth - 1 >= kInlineFrames) {
      p.below[kInlineFrames - 1] = p.deeper->frame;
      p.deeper = p.deeper->deeper;
    }
  }
  finish(p);
  return true;
}

void JsonPrefix::finish(Path& p) const { p.mode = p.depth == 0 ? Mode::done : Mode::after_value; }

bool JsonPrefix::can_add_key(const Path& p) const {
  const JsonSchema::Node& top = schema_->node(p.top.node);
  const uint64_t all = top.properties.size() == 64 ? ~uint64_t(0) : (uint64_t(1) << top.properties.size()) - 1;
  return top.additional != JsonSchema::kNone || (p.top.seen & all) != all;
}

// Keeps the properties whose names go on with c; without other keys allowed, one of them must
// still be missing from the object.
bool JsonPrefix::narrow_key(Path& p, unsigned char c) const {
  const JsonSchema::Node& top = schema_->node(p.top.node);
  const auto& props = top.properties;
  uint32_t lo = p.lo, hi = p.lo;
  while (lo < p.hi && (props[lo].text.size() <= p.pos || (unsigned char)props[lo].text[p.pos] < c)) ++lo;
  for (hi = lo; hi < p.hi && (unsigned char)props[hi].text[p.pos] == c;) ++hi;
  p.lo = lo;
  p.hi = hi;
  ++p.pos;
  if (top.additional != JsonSchema::kNone) return true;
  for (uint32_t i = lo; i < hi; ++i)
    if (!((p.top.seen >> i) & 1)) return true;
  return false;
}

// Counts a value string's characters as JSON Schema does (code points): a raw UTF-8 lead byte,
// an escape, or an escaped surrogate pair, each one.
bool JsonPrefix::string_char(Path& p, bool escaped_code) const {
  const bool low = escaped_code && p.code >= 0xDC00 && p.code < 0xE000;
  const bool pair = low && p.high;
  p.high = escaped_code && p.code >= 0xD800 && p.code < 0xDC00 ? (uint16_t)p.code : 0;
  if (pair) return true;  // the pair's high half counted it
  if (p.chars >= schema_->node(p.want).max_length) return false;
  ++p.chars;
  return true;
}

const JsonRegex* JsonPrefix::regex(const Path& p) const {
  const int32_t i = schema_->node(p.want).pattern;
  return i == JsonSchema::kNone ? nullptr : &schema_->pattern(i);
}

// A raw byte of a value string with a pattern (string_char has counted a character's first
// byte): UTF-8 is decoded, and while a character is incomplete the code points its bytes can
// still spell (overlong forms and surrogates left out) must hold one the pattern can take.
bool JsonPrefix::pattern_byte(Path& p, unsigned char c) const {
  const JsonRegex* re = regex(p);
  if (!re) return true;
  if (c < 0x80) return !p.cont && pattern_code(p, c);
  if ((c & 0xC0) == 0x80) {
    if (!p.cont) return false;
    p.partial = p.partial << 6 | (c & 0x3F);
    if (--p.cont == 0) return pattern_code(p, p.partial);  // the ranges below kept it valid
  } else {
    if (p.cont) return false;
    p.utf8_len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!p.utf8_len) return false;
    p.cont = p.utf8_len - 1;
    p.partial = c & (0x7F >> p.utf8_len);
  }
  static constexpr uint32_t kLeast[5] = {0, 0, 0x80, 0x800, 0x10000};  // below: an overlong form
  const uint32_t lo = std::max(p.partial << (6 * p.cont), kLeast[p.utf8_len]);
  const uint32_t hi = std::min((p.partial << (6 * p.cont)) | ((1u << (6 * p.cont)) - 1), 0x10FFFFu);
  return lo <= hi && re->can_take(p.re, lo, hi, p.chars);
}

bool JsonPrefix::pattern_code(Path& p, uint32_t code) const {
  const JsonRegex* re = regex(p);
  if (!re) return true;
  p.re = re->step(p.re, code, p.chars);
  return p.re != 0;
}

// A \uXXXX escape complete; high: the escaped high surrogate before it, if any. A pair is one
// character; a high half waits for its low half (pattern_hex made sure one can follow).
bool JsonPrefix::pattern_escaped(Path& p, uint16_t high) const {
  if (!regex(p)) return true;
  const bool low = p.code >= 0xDC00 && p.code < 0xE000;
  if (high) return low && pattern_code(p, 0x10000 + ((uint32_t(high) - 0xD800) << 10) + (p.code - 0xDC00));
  if (low) return false;
  if (p.code >= 0xD800 && p.code < 0xDC00) {  // counted; its low half must lead somewhere
    const uint32_t base = 0x10000 + ((p.code - 0xD800) << 10);
    return regex(p)->can_take(p.re, base, base + 0x3FF, p.chars);
  }
  return pattern_code(p, p.code);
}

// Some \uXXXX with the hex digits so far spells a character the pattern can take (directly, or
// as the high half of a pair).
bool JsonPrefix::pattern_hex(const Path& p) const {
  const JsonRegex* re = regex(p);
  if (!re) return true;
  const uint32_t shift = 4 * p.left;
  uint32_t lo = p.code << shift, hi = lo | ((1u << shift) - 1);
  if (p.high) {  // the low half: its character was counted with the high half
    lo = std::max(lo, 0xDC00u), hi = std::min(hi, 0xDFFFu);
    const uint32_t base = 0x10000 + ((uint32_t(p.high) - 0xD800) << 10) - 0xDC00;
    return lo <= hi && re->can_take(p.re, base + lo, base + hi, p.chars);
  }
  if (re->can_take(p.re, lo, hi, p.chars + 1)) return true;
  const uint32_t a = std::max(lo, 0xD800u), b = std::min(hi, 0xDBFFu);
  return a <= b && re->can_take(p.re, 0x10000 + ((a - 0xD800) << 10), 0x10000 + ((b - 0xD800) << 10) + 0x3FF, p.chars + 1);
}

// A key is matched as the text it stands for, so "\u00e9" matches the property "é": one raw
// byte (decoded false), or one escaped code point, whose UTF-16 surrogate halves pair up here.
// A half without its pair stands for no text, and so for no property's name.
bool JsonPrefix::key_code(Path& p, uint32_t code, bool decoded) const {
  constexpr unsigned char kNoText = 0xFF;  // never in UTF-8
  if (p.high) {
    const uint32_t high = p.high;
    p.high = 0;
    if (decoded && code >= 0xDC00 && code < 0xE000) code = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00);
    else if (!narrow_key(p, kNoText)) return false;
  }
  if (!decoded || code < 0x80) return narrow_key(p, (unsigned char)code);
  if (code >= 0xD800 && code < 0xDC00) {
    p.high = (uint16_t)code;
    return true;
  }
  if (code >= 0xDC00 && code < 0xE000) return narrow_key(p, kNoText);
  unsigned char utf8[4];
  int n = 0;
  if (code < 0x800) {
    utf8[n++] = 0xC0 | (code >> 6);
  } else if (code < 0x10000) {
    utf8[n++] = 0xE0 | (code >> 12);
    utf8[n++] = 0x80 | ((code >> 6) & 0x3F);
  } else {
    utf8[n++] = 0xF0 | (code >> 18);
    utf8[n++] = 0x80 | ((code >> 12) & 0x3F);
    utf8[n++] = 0x80 | ((code >> 6) & 0x3F);
  }
  utf8[n++] = 0x80 | (code & 0x3F);
  for (int i = 0; i < n; ++i)
    if (!narrow_key(p, utf8[i])) return false;
  return true;
}

// A backslash in a key without other keys allowed: some missing property must go on with a
// character JSON writes as a two-byte escape (\", \\, \n, ...), or nothing could follow it.
bool JsonPrefix::key_escape_fits(const Path& p) const {
  const JsonSchema::Node& top = schema_->node(p.top.node);
  if (top.additional != JsonSchema::kNone) return true;
  for (uint32_t i = p.lo; i < p.hi; ++i) {
    const std::string& name = top.properties[i].text;
    if (((p.top.seen >> i) & 1) || name.size() <= p.pos) continue;
    if (name[p.pos] != '\0' && std::strchr("\"\\/\b\f\n\r\t", name[p.pos])) return true;
  }
  return false;
}

bool JsonPrefix::end_key(Path& p) const {
  if (p.high) {  // a lone surrogate half ends the key
    p.high = 0;
    if (!narrow_key(p, 0xFF)) return false;
  }
  const JsonSchema::Node& top = schema_->node(p.top.node);
  const bool exact = p.lo < p.hi && top.properties[p.lo].text.size() == p.pos;
  if (exact) {
    if ((p.top.seen >> p.lo) & 1) return false;  // a key given twice
    p.top.seen |= uint64_t(1) << p.lo;
    p.want = top.properties[p.lo].node;
  } else {
    if (top.additional == JsonSchema::kNone) return false;
    p.want = top.additional;
  }
  p.key = false;
  p.mode = Mode::colon;
  return true;
}

// The options in [lo, hi) (sorted, all longer than pos, sharing their first pos bytes) whose
// byte at pos is c: one run, found by bisection (an enum may be long).
std::pair<uint32_t, uint32_t> JsonPrefix::option_run(const Path& p, uint32_t lo, unsigned char c) const {
  const auto& o = schema_->node(p.want).options;
  const auto at = [&](const std::string& t) { return (unsigned char)t[p.pos]; };
  const auto first = std::lower_bound(o.begin() + lo, o.begin() + p.hi, c,
                                      [&](const std::string& t, unsigned char ch) { return at(t) < ch; });
  const auto last =
      std::upper_bound(first, o.begin() + p.hi, c, [&](unsigned char ch, const std::string& t) { return ch < at(t); });
  return {uint32_t(first - o.begin()), uint32_t(last - o.begin())};
}

bool JsonPrefix::option(Path& p, unsigned char c, Extra& extra) const {
  const auto& o = schema_->node(p.want).options;
  // [lo, hi) share their first pos bytes and are sorted, so an option that ends here comes
  // first and those going on with c are one run after it.
  const bool ends = o[p.lo].size() == p.pos;
  const uint32_t lo = p.lo + (ends ? 1 : 0);
  // Options are compact JSON; the model may space an array or object option out, as JSON
  // allows: after a structural byte, or before one (gap: then one must come next).
  if (!ends && is_space(c) && !p.in_string) {
    if (++p.whitespace > kMaxWhitespace) return false;
    if (!std::strchr("[{,:", o[p.lo][p.pos - 1])) {
      bool before_structural = false;
      for (unsigned char s : {']', '}', ',', ':'}) {
        const auto [first, last] = option_run(p, lo, s);
        before_structural = before_structural || first < last;
      }
      if (!before_structural) return false;
      p.gap = true;
    }
    return true;
  }
  if (p.gap && !std::strchr("]},:", c)) return false;
  const auto [first, last] = option_run(p, lo, c);
  if (first < last) {
    p.gap = false;
    p.whitespace = 0;
    p.lo = first;
    p.hi = last;
    ++p.pos;
    // Inside one of the option's strings, a space is the option's own byte.
    if (p.in_string) {
      p.in_string = p.escaped || c != '"';
      p.escaped = !p.escaped && c == '\\';
    } else {
      p.in_string = c == '"';
    }
    return true;
  }
  if (!ends) return false;
  finish(p);  // a whole option (a number: "1" of "1" and "12") and c comes after it
  return step(p, c, extra);
}

bool JsonPrefix::number(Path& p, unsigned char c, Extra& extra) const {
  const bool digit = is_digit(c);
  // A bounded number that may have a fraction has no exponent (JsonSchema::number_reachable).
  const bool e = !p.integer && !schema_->node(p.want).has_number_bounds && (c == 'e' || c == 'E');
  const bool dot = !p.integer && c == '.';
  switch (p.num) {
    case Num::minus:
      return digit && number_digit(p, c);
    case Num::zero:
    case Num::integer:
      if (digit && p.num == Num::integer) return number_digit(p, c);
      if (dot) {
        p.num = Num::dot;
        p.fraction = 0;
        return number_fits(p, false);
      }
      if (e) {
        p.num = Num::e;
        return true;
      }
      break;
    case Num::dot:
      p.num = Num::fraction;
      return digit && number_digit(p, c);
    case Num::fraction:
      if (digit) return number_digit(p, c);
      if (e) {
        p.num = Num::e;
        return true;
      }
      break;
    case Num::e:
      if (c == '+' || c == '-') {
        p.num = Num::e_sign;
        return true;
      }
      p.num = Num::exponent;
      return digit;
    case Num::e_sign:
      p.num = Num::exponent;
      return digit;
    case Num::exponent:
      if (digit) return true;
      break;
  }
  // A complete number has ended: c belongs to what follows it.
  if (!number_fits(p, true)) return false;
  finish(p);
  return step(p, c, extra);
}

// A digit before the exponent: the first 0 is the whole integer part.
bool JsonPrefix::number_digit(Path& p, unsigned char c) const {
  const uint64_t d = c - '0';
  if (p.num == Num::minus) p.num = d == 0 ? Num::zero : Num::integer;
  p.magnitude = p.magnitude > (kSaturated - d) / 10 ? kSaturated : p.magnitude * 10 + d;
  if (const uint64_t m = schema_->node(p.want).multiple_of) p.rem = (p.rem * 10 + d) % m;
  if (p.digits < 255) ++p.digits;
  if (p.fraction >= 0 && p.fraction < 127) ++p.fraction;
  return number_fits(p, false);
}

// Without bounds, whether an integer can still become (or, whole, is) a multiple of its
// schema's multipleOf, from its remainder alone (its magnitude may be past saturation): with k
// more digits it reaches the 10^k values from magnitude * 10^k, which hold a multiple when the
// first one's distance, (-rem * 10^k) mod m, is below 10^k.
bool JsonPrefix::multiple_reachable(const Path& p, bool whole) const {
  const uint64_t m = schema_->node(p.want).multiple_of;
  if (!m || p.num == Num::minus) return true;  // "-" still reaches -m
  if (whole || p.num == Num::zero) return p.rem == 0;
  unsigned __int128 span = 1;  // 10^k, up to past m (then some multiple is always in reach)
  for (; span <= m; span *= 10) {
    const uint64_t start = (uint64_t)(((unsigned __int128)p.rem * (uint64_t)(span % m)) % m);
    if ((m - start) % m < span) return true;
  }
  return true;
}

// Whether the number read so far can still become (or, whole, is) one within its schema's
// bounds, if it has any.
bool JsonPrefix::number_fits(const Path& p, bool whole) const {
  if (p.integer) return integer_fits(p, whole);
  const JsonSchema::Node& n = schema_->node(p.want);
  if (!n.has_number_bounds) return true;
  return JsonSchema::number_reachable(n, p.negative, p.magnitude, p.digits, p.fraction, whole);
}

// Whether the integer read so far (type "integer": no fraction can come) can still become (or,
// whole, is) one within its schema's int64 bounds. More digits make m into m * 10^k + [0, 10^k)
// for some k >= 0; by k = 19 that passes every int64 bound, so the loop ends there.
bool JsonPrefix::integer_fits(const Path& p, bool whole) const {
  const JsonSchema::Node& n = schema_->node(p.want);
  if (!n.has_min && !n.has_max) return multiple_reachable(p, whole);
  using i128 = __int128;
  const i128 huge = (i128)kSaturated * kSaturated;  // past anything a saturated magnitude reaches
  const i128 lo = n.has_min ? (i128)n.min : -huge, hi = n.has_max ? (i128)n.max : huge;
  const i128 step = n.multiple_of ? (i128)n.multiple_of : 1;
  const auto meets = [&](i128 m0, i128 m1) {  // magnitudes [m0, m1] with the sign read: a multiple in bounds
    const i128 a = std::max(p.negative ? -m1 : m0, lo), b = std::min(p.negative ? -m0 : m1, hi);
    if (a > b) return false;
    const i128 down = b / step * step;  // the greatest multiple <= b (b / step rounds toward zero)
    return (down > b ? down - step : down) >= a;
  };
  if (p.num == Num::minus) return !whole && meets(0, huge);  // "-" goes on to -0 or a negative
  const i128 m = p.magnitude;
  if (whole || p.num == Num::zero) return meets(m, m);
  i128 scale = 1;
  for (int k = 0; k <= 19; ++k, scale *= 10)
    if (meets(m * scale, m * scale + scale - 1)) return true;
  return false;
}

}  // namespace lowbit
