// A compiled PCRE2 pattern in Unicode mode (UTF + UCP, so \s, \p{L} and (?i) follow Unicode as the
// Oniguruma patterns of HF tokenizers do), used by the BPE pre-tokenizers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;

namespace lowbit::tok {

class Regex {
 public:
  // Throws lowbit::Error with PCRE2's message and the offset where the pattern went wrong;
  // `source` names where the pattern came from.
  Regex(const std::string& pattern, const std::string& source);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match in s, left to right, as [begin, end) byte offsets. s must be
  // valid UTF-8 (not re-checked here). After an empty match the search moves on one character.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  std::string pattern_;
};

}  // namespace lowbit::tok
