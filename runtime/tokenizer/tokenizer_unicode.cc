// UTF-8, the GPT-2 byte alphabet and NFC for the BPE tokenizers (see tokenizer_unicode.h).
#include "runtime/tokenizer/tokenizer_unicode.h"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <vector>

namespace lowbit::tok {

namespace {
#include "runtime/tokenizer/tokenizer_nfc_data.inc"
}  // namespace

size_t utf8_next(std::string_view s, size_t pos, char32_t& cp, bool& ok) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = at(pos);
  ok = true;
  cp = lead;
  if (lead < 0x80) return 1;
  // Well-formed sequences (Unicode Table 3-7): the second byte's range depends on the lead, to
  // rule out overlong forms, surrogates and code points above U+10FFFF.
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1, cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 2, cp = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 3, cp = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    ok = false, cp = kReplacementChar;
    return 1;
  }
  size_t len = 1;
  for (; need > 0; --need, ++len, lo = 0x80, hi = 0xBF) {
    if (pos + len >= s.size() || at(pos + len) < lo || at(pos + len) > hi) {
      ok = false, cp = kReplacementChar;
      return len;
    }
    cp = (cp << 6) | (at(pos + len) & 0x3F);
  }
  return len;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

size_t utf8_invalid_offset(std::string_view s) {
  char32_t cp;
  bool ok;
  for (size_t pos = 0; pos < s.size();) {
    size_t len = utf8_next(s, pos, cp, ok);
    if (!ok) return pos;
    pos += len;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view bytes) {
  if (utf8_invalid_offset(bytes) == std::string_view::npos) return std::string(bytes);
  std::string out;
  out.reserve(bytes.size() + 8);
  char32_t cp;
  bool ok;
  for (size_t pos = 0; pos < bytes.size();) {
    size_t len = utf8_next(bytes, pos, cp, ok);
    if (ok) {
      out.append(bytes.substr(pos, len));
    } else {
      append_utf8(out, kReplacementChar);
    }
    pos += len;
  }
  return out;
}

bool is_unicode_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

size_t space_at(std::string_view s, size_t pos) {
  if (pos >= s.size()) return 0;
  char32_t cp;
  bool ok;
  const size_t len = utf8_next(s, pos, cp, ok);
  return ok && is_unicode_space(cp) ? len : 0;
}

size_t space_before(std::string_view s, size_t end) {
  size_t start = end;
  while (start > 0 && end - start < 4) {
    --start;
    if ((static_cast<uint8_t>(s[start]) & 0xC0) != 0x80) break;  // found the lead byte
  }
  if (start == end) return 0;
  const size_t len = space_at(s, start);
  return start + len == end ? len : 0;
}

// ---- GPT-2 byte alphabet -------------------------------------------------------------------
namespace {

// Bytes that are printable in Latin-1 stand for themselves; the other 68 (controls, space,
// DEL, NBSP, soft hyphen) take the code points U+0100.. in byte order.
bool byte_is_printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

struct ByteAlphabet {
  std::array<std::string, 256> chars;  // byte -> UTF-8 of its character
  std::array<int16_t, 256 + 68> bytes;  // character (< U+0144) -> byte
  ByteAlphabet() {
    bytes.fill(-1);  // the 68 code points below U+0100 that no byte maps to
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      char32_t cp = byte_is_printable(b) ? static_cast<char32_t>(b) : next++;
      append_utf8(chars[b], cp);
      bytes[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet table;
  return table;
}

}  // namespace

std::string_view byte_level_char(uint8_t b) { return byte_alphabet().chars[b]; }

int byte_level_byte(char32_t cp) {
  const ByteAlphabet& t = byte_alphabet();
  return cp < t.bytes.size() ? t.bytes[cp] : -1;
}

// ---- NFC -------------------------------------------------------------------------------------
namespace {

// Hangul syllables decompose and compose by arithmetic (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = std::end(kCombiningClass);
  const auto* it = std::upper_bound(std::begin(kCombiningClass), end, cp,
                                    [](char32_t c, const uint32_t (&r)[3]) { return c < r[0]; });
  if (it == std::begin(kCombiningClass)) return 0;
  --it;
  return cp <= (*it)[1] ? static_cast<int>((*it)[2]) : 0;
}

const uint32_t* find_decomposition(char32_t cp) {
  const auto* it = std::lower_bound(std::begin(kDecomposition), std::end(kDecomposition), cp,
                                    [](const uint32_t (&d)[4], char32_t c) { return d[0] < c; });
  return it != std::end(kDecomposition) && (*it)[0] == cp ? *it : nullptr;
}

void decompose(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const uint32_t* d = cp >= 0xC0 ? find_decomposition(cp) : nullptr;
  if (!d) {
    out.push_back(cp);
    return;
  }
  decompose(d[1], out);
  if (d[2] != 0) decompose(d[2], out);
}

// Pairs that canonical composition joins: every two-part decomposition of a primary composite.
const std::unordered_map<uint64_t, char32_t>& composition_pairs() {
  static const std::unordered_map<uint64_t, char32_t> pairs = [] {
    std::unordered_map<uint64_t, char32_t> m;
    for (const auto& d : kDecomposition)
      if (d[3]) m.emplace((static_cast<uint64_t>(d[1]) << 32) | d[2], d[0]);
    return m;
  }();
  return pairs;
}

char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount)
    return a + (b - kTBase);
  const auto& pairs = composition_pairs();
  auto it = pairs.find((static_cast<uint64_t>(a) << 32) | b);
  return it == pairs.end() ? 0 : it->second;
}

}  // namespace

const char* nfc_unicode_version() { return kUnicodeVersion; }

std::string nfc(std::string_view text) {
  // Below U+0300 (lead bytes < 0xCC) nothing decomposes and nothing combines: most text stops here.
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<uint8_t>(c) < 0xCC; }))
    return std::string(text);

  std::vector<char32_t> cps;
  cps.reserve(text.size());
  char32_t cp;
  bool ok;
  for (size_t pos = 0; pos < text.size();) {
    pos += utf8_next(text, pos, cp, ok);
    decompose(cp, cps);
  }
  // Canonical ordering: each run of non-starters sorted (stably) by combining class.
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition: a character joins the last starter unless something between them
  // blocks it (a starter, or a mark of the same or higher class).
  std::vector<char32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;
  int last_class = -1;  // class of the last character kept after the starter; -1: none yet
  for (char32_t c : cps) {
    const int cls = combining_class(c);
    if (starter != SIZE_MAX && (last_class == -1 || last_class < cls)) {
      if (char32_t joined = compose(out[starter], c)) {
        out[starter] = joined;
        continue;
      }
    }
    if (cls == 0) {
      starter = out.size();
      last_class = -1;
    } else {
      last_class = cls;
    }
    out.push_back(c);
  }
  std::string result;
  result.reserve(text.size());
  for (char32_t c : out) append_utf8(result, c);
  return result;
}

}  // namespace lowbit::tok
