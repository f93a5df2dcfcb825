// Template source -> tokens, as jinja2's lexer splits it with the settings transformers'
// apply_chat_template uses: trim_blocks (the newline right after a block or comment tag is
// dropped), lstrip_blocks (spaces and tabs between a line's start and a block or comment tag are
// dropped), `-` / `+` whitespace control on either side of a tag, newlines normalized to "\n" and
// one trailing newline of the source dropped (keep_trailing_newline=False). Comments vanish here;
// {% raw %} ... {% endraw %} becomes text.
#pragma once

#include <string>
#include <vector>

namespace lowbit::jinja {

enum class Tok {
  text,         // template text outside tags (value: the text, already whitespace-controlled)
  var_begin,    // {{
  var_end,      // }}
  block_begin,  // {%
  block_end,    // %}
  name,         // identifier or keyword
  string,       // a string literal (value: its decoded bytes)
  integer,      // value: the digits, underscores removed
  floating,     // value: the literal, underscores removed
  op,           // an operator or punctuation (value: "+", "//", "(", ...)
  end,          // end of the source
};

struct Token {
  Tok type;
  std::string value;
  int line = 1, col = 1;
};

// Throws Error(bad_format) "chat template line L:C: ..." on an unterminated tag, comment or string
// or a character that starts no token.
std::vector<Token> lex(const std::string& source);

}  // namespace lowbit::jinja
