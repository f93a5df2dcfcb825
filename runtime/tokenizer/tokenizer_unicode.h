// The Unicode the BPE tokenizers need: UTF-8 reading and writing, the lossy conversion the HF
// decoders use, GPT-2's byte <-> printable-character map, and NFC (Qwen2 normalizes with it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::tok {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Reads one code point at s[pos]. Returns its length in bytes and sets cp; on ill-formed input
// returns the length of the maximal ill-formed subpart (Unicode 3.9, "U+FFFD substitution of
// maximal subparts", which Rust's from_utf8_lossy follows) and sets cp = kReplacementChar, ok=false.
size_t utf8_next(std::string_view s, size_t pos, char32_t& cp, bool& ok);

void append_utf8(std::string& out, char32_t cp);

// Offset of the first ill-formed byte, or npos when s is valid UTF-8.
size_t utf8_invalid_offset(std::string_view s);

// Bytes -> text, each maximal ill-formed subpart replaced by one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space (what Rust's char::is_whitespace, and so HF tokenizers, calls space).
bool is_unicode_space(char32_t cp);
// Byte length of the whitespace character that starts at s[pos] / ends just before s[end]; 0 if
// that character is not whitespace (or the position is at the edge).
size_t space_at(std::string_view s, size_t pos);
size_t space_before(std::string_view s, size_t end);

// GPT-2's byte-level alphabet: every byte as one printable character ("Ġ" for ' ', "Ċ" for
// '\n'), so byte strings can live in a JSON vocabulary. byte_level_char(b) is the UTF-8 of that
// character; byte_level_byte(cp) maps back, or -1 for a character outside the alphabet.
std::string_view byte_level_char(uint8_t b);
int byte_level_byte(char32_t cp);

// Unicode Normalization Form C (canonical decomposition, then canonical composition). The tables
// come from tokenizer_nfc_data.inc; nfc_unicode_version() says which Unicode they describe.
std::string nfc(std::string_view text);
const char* nfc_unicode_version();

}  // namespace lowbit::tok
