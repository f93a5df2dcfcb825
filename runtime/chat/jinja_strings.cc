// Python's str semantics over UTF-8 bytes, by code point.
#include "runtime/chat/jinja_strings.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_value.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit::jinja {

namespace {

uint32_t decode(std::string_view c) {
  const unsigned char b = (unsigned char)c[0];
  if (c.size() == 1) return b;
  uint32_t cp = b & (0x7f >> c.size());
  for (size_t j = 1; j < c.size(); ++j) cp = (cp << 6) | ((unsigned char)c[j] & 0x3f);
  return cp;
}

void encode(uint32_t cp, std::string& out) { tok::append_utf8(out, (char32_t)cp); }

// ASCII and Latin-1 (U+00C0..U+00FE less the multiplication and division signs).
uint32_t to_lower(uint32_t cp) {
  if ((cp >= 'A' && cp <= 'Z') || (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)) return cp + 32;
  return cp;
}
uint32_t to_upper(uint32_t cp) {
  if ((cp >= 'a' && cp <= 'z') || (cp >= 0xe0 && cp <= 0xfe && cp != 0xf7)) return cp - 32;
  return cp;
}
bool is_cased(uint32_t cp) { return to_lower(cp) != cp || to_upper(cp) != cp; }

template <class F>
std::string map_cps(const std::string& s, F f) {
  std::string out;
  out.reserve(s.size());
  size_t k = 0;
  for (std::string_view c : code_points(s)) {
    const bool valid = c.size() > 1 || (unsigned char)c[0] < 0x80;
    if (valid) encode(f(decode(c), k), out);
    else out += c;
    ++k;
  }
  return out;
}

}  // namespace

bool is_space_cp(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

std::string lower(const std::string& s) {
  return map_cps(s, [](uint32_t cp, size_t) { return to_lower(cp); });
}
std::string upper(const std::string& s) {
  return map_cps(s, [](uint32_t cp, size_t) { return to_upper(cp); });
}
std::string capitalize(const std::string& s) {
  return map_cps(s, [](uint32_t cp, size_t k) { return k == 0 ? to_upper(cp) : to_lower(cp); });
}
std::string py_title(const std::string& s) {
  bool prev_cased = false;
  return map_cps(s, [&](uint32_t cp, size_t) {
    const uint32_t r = prev_cased ? to_lower(cp) : to_upper(cp);
    prev_cased = is_cased(cp);
    return r;
  });
}
std::string jinja_title(const std::string& s) {
  bool word_start = true;
  return map_cps(s, [&](uint32_t cp, size_t) {
    const bool sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || is_space_cp(cp);
    const uint32_t r = sep ? cp : word_start ? to_upper(cp) : to_lower(cp);
    word_start = sep;
    return r;
  });
}

std::string strip(const std::string& s, const std::string* chars, bool left, bool right) {
  const std::vector<std::string_view> cps = code_points(s);
  std::vector<std::string_view> set;
  if (chars) set = code_points(*chars);
  auto strippable = [&](std::string_view c) {
    if (!chars) return is_space_cp(decode(c));
    return std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t a = 0, b = cps.size();
  if (left)
    while (a < b && strippable(cps[a])) ++a;
  if (right)
    while (b > a && strippable(cps[b - 1])) --b;
  std::string out;
  for (size_t k = a; k < b; ++k) out += cps[k];
  return out;
}

std::vector<std::string> split_ws(const std::string& s, int64_t maxsplit) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  const std::vector<std::string_view> cps = code_points(s);
  for (size_t k = 0; k < cps.size(); ++k) {
    const bool ws = is_space_cp(decode(cps[k]));
    if (!ws) {
      if (!in_word && maxsplit >= 0 && (int64_t)out.size() == maxsplit) {
        // The rest stays one piece, from this word to the end (trailing whitespace kept).
        std::string rest;
        for (size_t j = k; j < cps.size(); ++j) rest += cps[j];
        out.push_back(std::move(rest));
        return out;
      }
      cur += cps[k];
      in_word = true;
    } else if (in_word) {
      out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    }
  }
  if (in_word) out.push_back(std::move(cur));
  return out;
}

std::vector<std::string> split(const std::string& s, const std::string& sep, int64_t maxsplit, bool from_right) {
  if (sep.empty()) throw RenderError("empty separator");
  std::vector<std::string> out;
  if (!from_right) {
    size_t start = 0;
    for (;;) {
      const size_t at = s.find(sep, start);
      if (at == std::string::npos || (maxsplit >= 0 && (int64_t)out.size() == maxsplit)) break;
      out.push_back(s.substr(start, at - start));
      start = at + sep.size();
    }
    out.push_back(s.substr(start));
    return out;
  }
  size_t end = s.size();
  for (;;) {
    if (end < sep.size()) break;
    const size_t at = s.rfind(sep, end - sep.size());
    if (at == std::string::npos || (maxsplit >= 0 && (int64_t)out.size() == maxsplit)) break;
    out.push_back(s.substr(at + sep.size(), end - at - sep.size()));
    end = at;
  }
  out.push_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> split_lines(const std::string& s, bool keepends) {
  std::vector<std::string> out;
  std::string cur;
  const std::vector<std::string_view> cps = code_points(s);
  for (size_t k = 0; k < cps.size(); ++k) {
    const uint32_t cp = decode(cps[k]);
    const bool brk = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d ||
                     cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!brk) {
      cur += cps[k];
      continue;
    }
    std::string end(cps[k]);
    if (cp == '\r' && k + 1 < cps.size() && cps[k + 1] == "\n") {
      end += "\n";
      ++k;
    }
    if (keepends) cur += end;
    out.push_back(std::move(cur));
    cur.clear();
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count,
                    int64_t max_bytes) {
  std::string out;
  auto add = [&](std::string_view piece) {
    if ((int64_t)(out.size() + piece.size()) > max_bytes)
      throw RenderError("the template builds a string over the size limit");
    out += piece;
  };
  int64_t done = 0;
  if (old.empty()) {  // Python inserts `rep` around every code point
    for (std::string_view c : code_points(s)) {
      if (count < 0 || done < count) {
        add(rep);
        ++done;
      }
      add(c);
    }
    if (count < 0 || done < count) add(rep);
    return out;
  }
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(old, start);
    if (at == std::string::npos || (count >= 0 && done >= count)) break;
    add(std::string_view(s).substr(start, at - start));
    add(rep);
    start = at + old.size();
    ++done;
  }
  add(std::string_view(s).substr(start));
  return out;
}

namespace {

// Python's numeric literals in strings: underscores only between digits.
std::optional<std::string> without_underscores(const std::string& t) {
  std::string out;
  for (size_t k = 0; k < t.size(); ++k) {
    if (t[k] != '_') {
      out += t[k];
      continue;
    }
    if (k == 0 || k + 1 >= t.size() || !std::isalnum((unsigned char)t[k - 1]) || !std::isalnum((unsigned char)t[k + 1]))
      return std::nullopt;
  }
  return out;
}

}  // namespace

std::optional<int64_t> parse_int(const std::string& s, int base) {
  if (base != 0 && (base < 2 || base > 36)) throw RenderError("int() base must be >= 2 and <= 36, or 0");
  const std::string t = strip(s, nullptr, true, true);
  auto clean = without_underscores(t);
  if (!clean || clean->empty()) return std::nullopt;
  std::string d = *clean;
  bool neg = false;
  if (d[0] == '+' || d[0] == '-') {
    neg = d[0] == '-';
    d.erase(0, 1);
  }
  if (d.empty() || !std::isalnum((unsigned char)d[0])) return std::nullopt;
  if (base == 0) {
    if (d.size() > 1 && d[0] == '0' && std::isalpha((unsigned char)d[1])) return std::nullopt;
    base = 10;
  }
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(d.c_str(), &end, base);
  if (*end != '\0' || errno == ERANGE || v > (unsigned long long)INT64_MAX) return std::nullopt;
  return neg ? -(int64_t)v : (int64_t)v;
}

std::optional<double> parse_float(const std::string& s) {
  const std::string t = strip(s, nullptr, true, true);
  auto clean = without_underscores(t);
  if (!clean || clean->empty()) return std::nullopt;
  if (clean->find_first_of("xXpP") != std::string::npos) return std::nullopt;  // strtod's hex floats
  const std::string low = lower(*clean);
  const std::string mag = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  if (mag == "inf" || mag == "infinity") return low[0] == '-' ? -INFINITY : INFINITY;
  if (mag == "nan") return NAN;
  if (mag.find_first_not_of("0123456789.e+-") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(clean->c_str(), &end);
  if (*end != '\0') return std::nullopt;
  return v;
}

}  // namespace lowbit::jinja
