// The parsed template: one node type for statements and expressions, with the operands of each
// kind laid out as the comment on NodeType says.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/chat/jinja_value.h"

namespace lowbit::jinja {

enum class NodeType {
  // Statements
  body,        // kids: the statements in order
  text,        // name: the text
  output,      // kids[0]: the expression printed
  if_,         // kids: cond0, body0, cond1, body1, ..., then the else body (or nothing)
  for_,        // names: loop targets; kids: iterable, body, else body|null, filter cond|null
  set,         // names: targets (attr empty), or name=namespace var + attr; kids[0]: the value
  set_block,   // names[0]: target; kids[0]: body
  macro,       // name; names: parameters; kids[0]: body, kids[1 + k]: parameter k's default|null
  break_,
  continue_,
  filter_block,  // kids[0]: a filter node whose operand (kids[0]) is null; kids[1]: body
  // Expressions
  literal,     // value
  var,         // name
  list,        // kids: the items (a tuple is a list here)
  dict,        // kids: key0, value0, key1, value1, ...
  attr,        // kids[0].name
  item,        // kids[0][kids[1]]
  slice,       // kids[0][kids[1]:kids[2]:kids[3]], each bound null when absent
  call,        // kids[0](kids[1..]); the last kwnames.size() arguments are keyword arguments
  filter,      // kids[0] | name(kids[1..]); kwnames as for call
  test,        // kids[0] is name(kids[1..]); kwnames as for call
  unary,       // name: "-", "+" or "not"; kids[0]
  binary,      // name: the operator ("+", "~", "and", "in", "not in", ...); kids[0], kids[1]
  compare,     // kids: operands; names: the operators between them (chained as Python does)
  cond,        // kids[0] if kids[1] else kids[2] (null: undefined)
};

struct Node {
  NodeType type;
  int line = 0, col = 0;
  int height = 1;  // 1 + the tallest child: bounds the evaluator's recursion
  std::string name, attr;
  Value value;
  std::vector<std::string> names, kwnames;
  std::vector<std::unique_ptr<Node>> kids;
};

}  // namespace lowbit::jinja
