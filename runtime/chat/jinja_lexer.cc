// The lexer: text and tags at the top level, tokens inside tags. The whitespace rules are
// jinja2's (lexer.py: the root rule's OptionalLStrip handling and the `\n?` block suffix).
#include "runtime/chat/jinja_lexer.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string rstrip_ws(const std::string& s) {
  size_t n = s.size();
  while (n > 0 && is_space(s[n - 1])) --n;
  return s.substr(0, n);
}

void append_utf8(uint32_t cp, std::string& out) { tok::append_utf8(out, (char32_t)cp); }

class Lexer {
 public:
  explicit Lexer(const std::string& source) {
    // Newlines to "\n", and one trailing newline dropped, as jinja2's tokeniter does.
    src_.reserve(source.size());
    for (size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_ += '\n';
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_ += source[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k)
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = src_.find('{', pos);
      while (tag != std::string::npos &&
             (tag + 1 >= src_.size() || std::strchr("{%#", src_[tag + 1]) == nullptr))
        tag = src_.find('{', tag + 1);
      if (tag == std::string::npos) {
        push(Tok::text, src_.substr(pos), pos);
        break;
      }
      const char kind = src_[tag + 1];
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      std::string text = src_.substr(pos, tag - pos);
      if (sign == '-') {
        text = rstrip_ws(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only spaces/tabs between the line's start and the tag.
        const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((l > 0 || line_starting) && l < text.size() &&
            std::all_of(text.begin() + (long)l, text.end(), [](char c) { return is_space(c) && c != '\n'; }))
          text.resize(l);
      }
      if (!text.empty()) push(Tok::text, text, pos);
      size_t after = tag + 2 + (sign == '-' || sign == '+' ? 1 : 0);
      if (kind == '#') {
        pos = comment(tag, after);
      } else if (kind == '%' && raw_begin(after)) {
        pos = raw(tag, after);
      } else {
        pos = tag_tokens(kind == '%', tag, after);
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    push(Tok::end, "", src_.size());
    return std::move(tokens_);
  }

 private:
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;

  [[noreturn]] void fail(size_t pos, const std::string& what) const {
    const auto [line, col] = where(pos);
    throw Error(ErrorCode::bad_format,
                "chat template line " + std::to_string(line) + ":" + std::to_string(col) + ": " + what);
  }
  std::pair<int, int> where(size_t pos) const {
    const size_t l = (size_t)(std::upper_bound(line_starts_.begin(), line_starts_.end(), pos) - line_starts_.begin()) - 1;
    return {(int)l + 1, (int)(pos - line_starts_[l]) + 1};
  }
  void push(Tok t, std::string value, size_t pos) {
    const auto [line, col] = where(pos);
    tokens_.push_back(Token{t, std::move(value), line, col});
  }

  // After a closing "%}" or "#}" at `close` (the index of '%' or '#'): `-` before it strips all
  // whitespace after; otherwise trim_blocks drops one newline unless `+` asked to keep it.
  size_t after_block_end(size_t close) const {
    size_t p = close + 2;
    const char before = close > 0 ? src_[close - 1] : '\0';
    if (before == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (before != '+' && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  size_t comment(size_t tag, size_t body) {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) fail(tag, "missing end of comment tag");
    return after_block_end_comment(close, body);
  }
  // As after_block_end, but a sign counts only inside the comment, not the opening "{#-" itself.
  size_t after_block_end_comment(size_t close, size_t body) const {
    size_t p = close + 2;
    const char before = close > body ? src_[close - 1] : '\0';
    if (before == '-') {
      while (p < src_.size() && is_space(src_[p])) ++p;
    } else if (before != '+' && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  // "{% raw %}": spaces, "raw", spaces, then an optional sign and "%}".
  bool raw_begin(size_t p) const {
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    return src_.compare(p, 2, "%}") == 0;
  }

  size_t raw(size_t tag, size_t p) {
    size_t close = src_.find("%}", p);
    size_t body = close + 2;
    if (src_[close - 1] == '-')
      while (body < src_.size() && is_space(src_[body])) ++body;
    // Find "{%" [-+] spaces "endraw" spaces [-+] "%}".
    for (size_t s = src_.find("{%", body); s != std::string::npos; s = src_.find("{%", s + 2)) {
      size_t q = s + 2;
      const char sign = q < src_.size() ? src_[q] : '\0';
      if (sign == '-' || sign == '+') ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string text = src_.substr(body, s - body);
      if (sign == '-') text = rstrip_ws(text);
      if (!text.empty()) push(Tok::text, text, body);
      return after_block_end(q);
    }
    fail(tag, "missing end of raw directive");
  }

  size_t tag_tokens(bool block, size_t tag, size_t p) {
    push(block ? Tok::block_begin : Tok::var_begin, "", tag);
    int balance = 0;  // open ( [ {: "}}" inside a dict literal is not the tag's end
    for (;;) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) fail(tag, block ? "unexpected end of template: block tag not closed"
                                            : "unexpected end of template: expression not closed");
      if (balance == 0) {
        const char* close = block ? "%}" : "}}";
        const bool minus = src_[p] == '-' && src_.compare(p + 1, 2, close) == 0;
        const bool plus = block && src_[p] == '+' && src_.compare(p + 1, 2, close) == 0;
        if (minus || plus || src_.compare(p, 2, close) == 0) {
          const size_t c = (minus || plus) ? p + 1 : p;
          push(block ? Tok::block_end : Tok::var_end, "", p);
          if (block) return after_block_end(c);
          size_t q = c + 2;
          if (minus)
            while (q < src_.size() && is_space(src_[q])) ++q;
          return q;
        }
      }
      p = token(p, balance);
    }
  }

  size_t token(size_t p, int& balance) {
    const char c = src_[p];
    if (std::isalpha((unsigned char)c) || c == '_') {
      size_t q = p;
      while (q < src_.size() && (std::isalnum((unsigned char)src_[q]) || src_[q] == '_')) ++q;
      push(Tok::name, src_.substr(p, q - p), p);
      return q;
    }
    if (std::isdigit((unsigned char)c)) return number(p);
    if (c == '\'' || c == '"') return string(p);
    static const char* const two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two)
      if (src_.compare(p, 2, op) == 0) {
        push(Tok::op, op, p);
        return p + 2;
      }
    if (std::strchr("+-/*%~[](){}><=.:|,;", c) == nullptr) fail(p, std::string("unexpected character '") + c + "'");
    if (c == '(' || c == '[' || c == '{') ++balance;
    if (c == ')' || c == ']' || c == '}') {
      if (balance == 0) fail(p, std::string("unexpected '") + c + "'");
      --balance;
    }
    push(Tok::op, std::string(1, c), p);
    return p + 1;
  }

  size_t digits(size_t p, std::string& out) const {
    while (p < src_.size() &&
           (std::isdigit((unsigned char)src_[p]) ||
            (src_[p] == '_' && p + 1 < src_.size() && std::isdigit((unsigned char)src_[p + 1]) &&
             std::isdigit((unsigned char)src_[p - 1])))) {
      if (src_[p] != '_') out += src_[p];
      ++p;
    }
    return p;
  }

  size_t number(size_t p) {
    std::string lit;
    size_t q = digits(p, lit);
    bool is_float = false;
    // After "x." a number is an index (foo.0), never a float's fraction.
    const bool after_dot = p > 0 && src_[p - 1] == '.';
    if (!after_dot && q + 1 < src_.size() && src_[q] == '.' && std::isdigit((unsigned char)src_[q + 1])) {
      lit += '.';
      q = digits(q + 1, lit);
      is_float = true;
    }
    if (!after_dot && q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t r = q + 1;
      std::string e = "e";
      if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) e += src_[r++];
      if (r < src_.size() && std::isdigit((unsigned char)src_[r])) {
        q = digits(r, e);
        lit += e;
        is_float = true;
      }
    }
    push(is_float ? Tok::floating : Tok::integer, lit, p);
    return q;
  }

  size_t string(size_t p) {
    const char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    for (;;) {
      if (q >= src_.size()) fail(p, "unterminated string");
      const char c = src_[q];
      if (c == quote) break;
      if (c != '\\' || q + 1 >= src_.size()) {
        out += c;
        ++q;
        continue;
      }
      const char e = src_[q + 1];
      q += 2;
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (q + n > src_.size() ||
              !std::all_of(src_.begin() + (long)q, src_.begin() + (long)(q + n),
                           [](char h) { return std::isxdigit((unsigned char)h) != 0; }))
            fail(q - 2, std::string("truncated \\") + e + " escape in string");
          const unsigned long cp = std::stoul(src_.substr(q, n), nullptr, 16);
          if (cp > 0x10ffff) fail(q - 2, "escape outside the Unicode range");
          append_utf8((uint32_t)cp, out);
          q += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = (uint32_t)(e - '0');
            for (int k = 0; k < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++k)
              cp = cp * 8 + (uint32_t)(src_[q++] - '0');
            append_utf8(cp, out);
          } else {
            out += '\\';  // Python keeps an unknown escape as written
            out += e;
          }
      }
    }
    push(Tok::string, out, p);
    return q + 1;
  }
};

}  // namespace

std::vector<Token> lex(const std::string& source) { return Lexer(source).run(); }

}  // namespace lowbit::jinja
