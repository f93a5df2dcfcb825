// Tokens -> the template's tree, with jinja2's grammar and operator precedence (parser.py).
#pragma once

#include <memory>
#include <vector>

#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_lexer.h"

namespace lowbit::jinja {

// Returns a body node. Throws Error(bad_format) "chat template line L:C: ..." on a syntax error,
// an unsupported tag, or nesting deeper than max_nesting.
std::unique_ptr<Node> parse(const std::vector<Token>& tokens, int max_nesting);

}  // namespace lowbit::jinja
