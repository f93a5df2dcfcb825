// A recursive-descent parser with jinja2's precedence, lowest first: `x if c else y`, or, and,
// not, comparisons (== != < <= > >= in, not in), + -, ~, * / // %, **, unary - +, then postfix
// (.attr [item] [a:b:c] (call)), filters (|f) and tests (is t).
#include "runtime/chat/jinja_parser.h"

#include <cstdlib>
#include <set>

#include "kernels/error.h"

namespace lowbit::jinja {

namespace {

using NodePtr = std::unique_ptr<Node>;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, int max_nesting) : t_(tokens), max_nesting_(max_nesting) {}

  NodePtr run() {
    NodePtr body = parse_body({});
    if (cur().type != Tok::end) fail(cur(), "unexpected '" + cur().value + "'");
    return body;
  }

 private:
  const std::vector<Token>& t_;
  size_t p_ = 0;
  int max_nesting_;
  int depth_ = 0;       // parser recursion
  int loop_depth_ = 0;  // for-loops around the current statement (break/continue need one)

  // Counts one level of parser recursion for as long as it lives.
  struct Guard {
    Parser& p;
    explicit Guard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.max_nesting_) p.fail(p.cur(), "template nested too deeply");
    }
    ~Guard() { --p.depth_; }
  };

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& tok = t_[p_];
    if (p_ + 1 < t_.size()) ++p_;
    return tok;
  }

  [[noreturn]] void fail(const Token& at, const std::string& what) const {
    throw Error(ErrorCode::bad_format, "chat template line " + std::to_string(at.line) + ":" +
                                           std::to_string(at.col) + ": " + what);
  }
  static std::string describe(const Token& tok) {
    switch (tok.type) {
      case Tok::end: return "end of template";
      case Tok::block_end: return "'%}'";
      case Tok::var_end: return "'}}'";
      case Tok::string: return "a string";
      default: return "'" + tok.value + "'";
    }
  }

  bool is_op(const char* op) const { return cur().type == Tok::op && cur().value == op; }
  bool is_name(const char* n) const { return cur().type == Tok::name && cur().value == n; }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(cur(), std::string("expected '") + op + "', got " + describe(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::name) fail(cur(), "expected a name, got " + describe(cur()));
    return next().value;
  }
  void expect_block_end() {
    if (cur().type != Tok::block_end) fail(cur(), "expected '%}', got " + describe(cur()));
    next();
  }

  NodePtr make(NodeType type, const Token& at) {
    auto n = std::make_unique<Node>();
    n->type = type;
    n->line = at.line;
    n->col = at.col;
    return n;
  }
  // Sets the node's height from its children and enforces the nesting limit.
  NodePtr done(NodePtr n) {
    int h = 0;
    for (const NodePtr& k : n->kids)
      if (k) h = std::max(h, k->height);
    n->height = h + 1;
    if (n->height > max_nesting_) fail(t_[p_], "template nested too deeply");
    return n;
  }

  // ---- statements ----------------------------------------------------------------------------

  // Statements until a block tag whose keyword is in `stop` (left unconsumed, positioned at the
  // keyword) or the end of the tokens.
  NodePtr parse_body(const std::set<std::string>& stop) {
    Guard g(*this);
    NodePtr body = make(NodeType::body, cur());
    for (;;) {
      const Token& tok = cur();
      if (tok.type == Tok::end) {
        if (!stop.empty()) fail(tok, "unexpected end of template, expected '" + *stop.rbegin() + "'");
        break;
      }
      if (tok.type == Tok::text) {
        NodePtr n = make(NodeType::text, tok);
        n->name = next().value;
        body->kids.push_back(std::move(n));
      } else if (tok.type == Tok::var_begin) {
        next();
        NodePtr n = make(NodeType::output, tok);
        n->kids.push_back(parse_tuple());
        if (cur().type != Tok::var_end) fail(cur(), "expected '}}', got " + describe(cur()));
        next();
        body->kids.push_back(done(std::move(n)));
      } else if (tok.type == Tok::block_begin) {
        const Token& kw = peek();
        if (kw.type == Tok::name && stop.count(kw.value)) {
          next();
          return done(std::move(body));
        }
        next();
        body->kids.push_back(parse_statement());
      } else {
        fail(tok, "unexpected " + describe(tok));
      }
    }
    return done(std::move(body));
  }

  NodePtr parse_statement() {
    const Token& kw = cur();
    if (kw.type != Tok::name) fail(kw, "expected a statement keyword, got " + describe(kw));
    const std::string& k = kw.value;
    if (k == "if") return parse_if();
    if (k == "for") return parse_for();
    if (k == "set") return parse_set();
    if (k == "macro") return parse_macro();
    if (k == "filter") return parse_filter_block();
    if (k == "break" || k == "continue") {
      if (loop_depth_ == 0) fail(kw, "'" + k + "' outside a for loop");
      NodePtr n = make(k == "break" ? NodeType::break_ : NodeType::continue_, kw);
      next();
      expect_block_end();
      return n;
    }
    if (k == "generation") {  // transformers' assistant-mask marker: renders its body as is
      next();
      expect_block_end();
      NodePtr body = parse_body({"endgeneration"});
      next();
      expect_block_end();
      return body;
    }
    fail(kw, "unknown or unsupported tag '" + k + "'");
  }

  NodePtr parse_if() {
    NodePtr n = make(NodeType::if_, next());
    for (;;) {
      n->kids.push_back(parse_tuple());
      expect_block_end();
      n->kids.push_back(parse_body({"elif", "else", "endif"}));
      const std::string kw = next().value;
      if (kw == "elif") continue;
      if (kw == "else") {
        expect_block_end();
        n->kids.push_back(parse_body({"endif"}));
        next();
      }
      expect_block_end();
      return done(std::move(n));
    }
  }

  // One or more names, separated by commas, optionally in parentheses.
  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) next();
    do {
      names.push_back(expect_name());
      if (!is_op(",")) break;
      next();
    } while (cur().type == Tok::name);
    if (paren) expect_op(")");
    return names;
  }

  NodePtr parse_for() {
    NodePtr n = make(NodeType::for_, next());
    n->names = parse_targets();
    if (!is_name("in")) fail(cur(), "expected 'in', got " + describe(cur()));
    next();
    n->kids.push_back(parse_or());
    NodePtr filter;
    if (is_name("if")) {
      next();
      filter = parse_expression();
    }
    if (is_name("recursive")) fail(cur(), "recursive loops are not supported");
    expect_block_end();
    ++loop_depth_;
    n->kids.push_back(parse_body({"else", "endfor"}));
    --loop_depth_;
    NodePtr else_body;
    if (next().value == "else") {
      expect_block_end();
      else_body = parse_body({"endfor"});
      next();
    }
    expect_block_end();
    n->kids.push_back(std::move(else_body));
    n->kids.push_back(std::move(filter));
    return done(std::move(n));
  }

  NodePtr parse_set() {
    const Token& at = next();
    if (cur().type == Tok::name && peek().type == Tok::op && peek().value == ".") {
      NodePtr n = make(NodeType::set, at);
      n->name = next().value;
      next();
      n->attr = expect_name();
      expect_op("=");
      n->kids.push_back(parse_tuple());
      expect_block_end();
      return done(std::move(n));
    }
    std::vector<std::string> names = parse_targets();
    if (is_op("=")) {
      next();
      NodePtr n = make(NodeType::set, at);
      n->names = std::move(names);
      n->kids.push_back(parse_tuple());
      expect_block_end();
      return done(std::move(n));
    }
    if (names.size() != 1) fail(cur(), "expected '='");
    if (cur().type != Tok::block_end) fail(cur(), "expected '=' or '%}', got " + describe(cur()));
    next();
    NodePtr n = make(NodeType::set_block, at);
    n->names = std::move(names);
    n->kids.push_back(parse_body({"endset"}));
    next();
    expect_block_end();
    return done(std::move(n));
  }

  NodePtr parse_macro() {
    NodePtr n = make(NodeType::macro, next());
    n->name = expect_name();
    expect_op("(");
    std::vector<NodePtr> defaults;
    while (!is_op(")")) {
      n->names.push_back(expect_name());
      NodePtr def;
      if (is_op("=")) {
        next();
        def = parse_expression();
      } else if (!defaults.empty() && defaults.back()) {
        fail(cur(), "a parameter without a default follows one with a default");
      }
      defaults.push_back(std::move(def));
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
    expect_block_end();
    const int loops = loop_depth_;
    loop_depth_ = 0;
    n->kids.push_back(parse_body({"endmacro"}));
    loop_depth_ = loops;
    next();
    expect_block_end();
    for (NodePtr& d : defaults) n->kids.push_back(std::move(d));
    return done(std::move(n));
  }

  NodePtr parse_filter_block() {
    NodePtr n = make(NodeType::filter_block, next());
    n->kids.push_back(parse_filter(nullptr));
    expect_block_end();
    n->kids.push_back(parse_body({"endfilter"}));
    next();
    expect_block_end();
    return done(std::move(n));
  }

  // ---- expressions ---------------------------------------------------------------------------

  // An expression, or several separated by commas (a tuple, here a list).
  NodePtr parse_tuple() {
    const Token& at = cur();
    NodePtr first = parse_expression();
    if (!is_op(",")) return first;
    NodePtr n = make(NodeType::list, at);
    n->name = "tuple";
    n->kids.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (cur().type == Tok::block_end || cur().type == Tok::var_end || is_op("=")) break;
      n->kids.push_back(parse_expression());
    }
    return done(std::move(n));
  }

  NodePtr parse_expression() {
    Guard g(*this);
    const Token& at = cur();
    NodePtr e = parse_or();
    while (is_name("if")) {
      next();
      NodePtr n = make(NodeType::cond, at);
      n->kids.push_back(std::move(e));
      n->kids.push_back(parse_or());
      NodePtr other;
      if (is_name("else")) {
        next();
        other = parse_expression();
      }
      n->kids.push_back(std::move(other));
      e = done(std::move(n));
    }
    return e;
  }

  NodePtr binary(const std::string& op, NodePtr l, NodePtr r, const Token& at) {
    NodePtr n = make(NodeType::binary, at);
    n->name = op;
    n->kids.push_back(std::move(l));
    n->kids.push_back(std::move(r));
    return done(std::move(n));
  }

  NodePtr parse_or() {
    NodePtr l = parse_and();
    while (is_name("or")) {
      const Token& at = next();
      l = binary("or", std::move(l), parse_and(), at);
    }
    return l;
  }
  NodePtr parse_and() {
    NodePtr l = parse_not();
    while (is_name("and")) {
      const Token& at = next();
      l = binary("and", std::move(l), parse_not(), at);
    }
    return l;
  }
  NodePtr parse_not() {
    if (is_name("not")) {
      Guard g(*this);
      NodePtr n = make(NodeType::unary, next());
      n->name = "not";
      n->kids.push_back(parse_not());
      return done(std::move(n));
    }
    return parse_compare();
  }
  NodePtr parse_compare() {
    const Token& at = cur();
    NodePtr first = parse_math1();
    NodePtr n;
    for (;;) {
      std::string op;
      if (cur().type == Tok::op &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == "<=" ||
           cur().value == ">" || cur().value == ">=")) {
        op = next().value;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && peek().type == Tok::name && peek().value == "in") {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!n) {
        n = make(NodeType::compare, at);
        n->kids.push_back(std::move(first));
      }
      n->names.push_back(op);
      n->kids.push_back(parse_math1());
    }
    return n ? done(std::move(n)) : std::move(first);
  }
  NodePtr parse_math1() {
    NodePtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = next();
      l = binary(at.value, std::move(l), parse_concat(), at);
    }
    return l;
  }
  NodePtr parse_concat() {
    NodePtr l = parse_math2();
    while (is_op("~")) {
      const Token& at = next();
      l = binary("~", std::move(l), parse_math2(), at);
    }
    return l;
  }
  NodePtr parse_math2() {
    NodePtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = next();
      l = binary(at.value, std::move(l), parse_pow(), at);
    }
    return l;
  }
  NodePtr parse_pow() {
    NodePtr l = parse_unary(true);
    while (is_op("**")) {
      const Token& at = next();
      l = binary("**", std::move(l), parse_unary(true), at);
    }
    return l;
  }
  NodePtr parse_unary(bool with_filter) {
    Guard g(*this);
    NodePtr n;
    if (is_op("-") || is_op("+")) {
      n = make(NodeType::unary, cur());
      n->name = next().value;
      n->kids.push_back(parse_unary(false));
      n = done(std::move(n));
    } else {
      n = parse_primary();
    }
    n = parse_postfix(std::move(n));
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  NodePtr parse_primary() {
    const Token& tok = cur();
    switch (tok.type) {
      case Tok::name: {
        next();
        const std::string& v = tok.value;
        NodePtr n = make(NodeType::literal, tok);
        if (v == "true" || v == "True") n->value = Value::boolean(true);
        else if (v == "false" || v == "False") n->value = Value::boolean(false);
        else if (v == "none" || v == "None") n->value = Value::none();
        else {
          n->type = NodeType::var;
          n->name = v;
        }
        return n;
      }
      case Tok::string: {
        NodePtr n = make(NodeType::literal, tok);
        std::string s;
        while (cur().type == Tok::string) s += next().value;  // adjacent literals join
        n->value = Value::string(std::move(s));
        return n;
      }
      case Tok::integer: {
        NodePtr n = make(NodeType::literal, next());
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(tok.value.c_str(), &end, 10);
        if (errno == ERANGE) fail(tok, "integer literal out of range");
        n->value = Value::integer(v);
        return n;
      }
      case Tok::floating: {
        NodePtr n = make(NodeType::literal, next());
        n->value = Value::floating(std::strtod(tok.value.c_str(), nullptr));
        return n;
      }
      case Tok::op:
        if (tok.value == "(") {
          next();
          if (is_op(")")) {
            next();
            NodePtr empty = make(NodeType::list, tok);
            empty->name = "tuple";
            return done(std::move(empty));
          }
          NodePtr e = parse_expression();
          if (is_op(",")) {
            NodePtr n = make(NodeType::list, tok);
            n->name = "tuple";
            n->kids.push_back(std::move(e));
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              n->kids.push_back(parse_expression());
            }
            e = done(std::move(n));
          }
          expect_op(")");
          return e;
        }
        if (tok.value == "[") {
          next();
          NodePtr n = make(NodeType::list, tok);
          while (!is_op("]")) {
            n->kids.push_back(parse_expression());
            if (!is_op(",")) break;
            next();
          }
          expect_op("]");
          return done(std::move(n));
        }
        if (tok.value == "{") {
          next();
          NodePtr n = make(NodeType::dict, tok);
          while (!is_op("}")) {
            n->kids.push_back(parse_expression());
            expect_op(":");
            n->kids.push_back(parse_expression());
            if (!is_op(",")) break;
            next();
          }
          expect_op("}");
          return done(std::move(n));
        }
        break;
      default: break;
    }
    fail(tok, "unexpected " + describe(tok));
  }

  NodePtr parse_postfix(NodePtr n) {
    for (;;) {
      const Token& at = cur();
      if (is_op(".")) {
        next();
        if (cur().type == Tok::integer) {
          NodePtr idx = make(NodeType::literal, cur());
          idx->value = Value::integer(std::strtoll(next().value.c_str(), nullptr, 10));
          NodePtr it = make(NodeType::item, at);
          it->kids.push_back(std::move(n));
          it->kids.push_back(std::move(idx));
          n = done(std::move(it));
        } else {
          NodePtr a = make(NodeType::attr, at);
          a->name = expect_name();
          a->kids.push_back(std::move(n));
          n = done(std::move(a));
        }
      } else if (is_op("[")) {
        next();
        n = parse_subscript(std::move(n), at);
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }

  NodePtr parse_subscript(NodePtr target, const Token& at) {
    NodePtr bounds[3];
    int part = 0;
    bool is_slice = false;
    for (;;) {
      if (is_op(":")) {
        next();
        is_slice = true;
        if (++part > 2) fail(cur(), "too many ':' in a slice");
        continue;
      }
      if (is_op("]")) break;
      if (bounds[part]) fail(cur(), "expected ':' or ']', got " + describe(cur()));
      bounds[part] = parse_expression();
    }
    next();
    if (!is_slice) {
      if (!bounds[0]) fail(at, "empty subscript");
      NodePtr n = make(NodeType::item, at);
      n->kids.push_back(std::move(target));
      n->kids.push_back(std::move(bounds[0]));
      return done(std::move(n));
    }
    NodePtr n = make(NodeType::slice, at);
    n->kids.push_back(std::move(target));
    for (NodePtr& b : bounds) n->kids.push_back(std::move(b));
    return done(std::move(n));
  }

  // "(" args ")" appended to n (whose kids[0] is already the callee or operand).
  void parse_args(Node& n) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Tok::name && peek().type == Tok::op && peek().value == "=") {
        n.kwnames.push_back(next().value);
        next();
        n.kids.push_back(parse_expression());
      } else {
        if (!n.kwnames.empty()) fail(cur(), "positional argument follows keyword argument");
        n.kids.push_back(parse_expression());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }

  NodePtr parse_call(NodePtr callee) {
    NodePtr n = make(NodeType::call, cur());
    n->kids.push_back(std::move(callee));
    parse_args(*n);
    return done(std::move(n));
  }

  NodePtr parse_filter(NodePtr operand) {
    NodePtr n = make(NodeType::filter, cur());
    n->name = expect_name();
    n->kids.push_back(std::move(operand));
    if (is_op("(")) parse_args(*n);
    return done(std::move(n));
  }

  NodePtr parse_filter_expr(NodePtr n) {
    for (;;) {
      if (is_op("|")) {
        next();
        n = parse_filter(std::move(n));
      } else if (is_name("is")) {
        const Token& at = next();
        bool negated = false;
        if (is_name("not")) {
          next();
          negated = true;
        }
        NodePtr t = make(NodeType::test, cur());
        t->name = expect_name();
        t->kids.push_back(std::move(n));
        if (is_op("(")) {
          parse_args(*t);
        } else if ((cur().type == Tok::name || cur().type == Tok::string || cur().type == Tok::integer ||
                    cur().type == Tok::floating || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail(cur(), "you cannot chain multiple tests with is");
          t->kids.push_back(parse_postfix(parse_primary()));
        }
        n = done(std::move(t));
        if (negated) {
          NodePtr u = make(NodeType::unary, at);
          u->name = "not";
          u->kids.push_back(std::move(n));
          n = done(std::move(u));
        }
      } else if (is_op("(")) {
        n = parse_call(std::move(n));
      } else {
        return n;
      }
    }
  }
};

}  // namespace

std::unique_ptr<Node> parse(const std::vector<Token>& tokens, int max_nesting) {
  return Parser(tokens, max_nesting).run();
}

}  // namespace lowbit::jinja
