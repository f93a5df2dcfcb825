// The evaluator: walks the tree with jinja2's scoping (a for-loop iteration and a macro call open
// a scope, if-blocks do not; `set` writes the innermost scope; macros see the template's
// variables, not their caller's locals) and its Undefined rules (printing or iterating undefined
// is fine, attributes of it and arithmetic with it are errors).
#include <map>
#include <new>

#include "kernels/error.h"
#include "runtime/chat/jinja.h"
#include "runtime/chat/jinja_ast.h"
#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_lexer.h"
#include "runtime/chat/jinja_parser.h"

namespace lowbit::jinja {

namespace {

// An error that already names its place in the template.
struct LocatedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Scope {
  std::map<std::string, Value> vars;
  const Scope* parent = nullptr;
  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

enum class Flow { normal, break_, continue_ };

class Renderer {
 public:
  Renderer(const Limits& limits, Scope& root) : limits_(limits), budget_(limits), root_(root) {}

  Flow exec(const Node& n, Scope& scope, std::string& out) {
    try {
      Depth d(*this);
      return exec_inner(n, scope, out);
    } catch (const LocatedError&) {
      throw;
    } catch (const RaisedError&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      throw located(n, e.what());
    }
  }

  Value eval(const Node& n, Scope& scope) {
    try {
      Depth d(*this);
      budget_.charge(1);
      return eval_inner(n, scope);
    } catch (const LocatedError&) {
      throw;
    } catch (const RaisedError&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {
      throw located(n, e.what());
    }
  }

 private:
  const Limits& limits_;
  Budget budget_;
  Scope& root_;
  int call_depth_ = 0;
  int depth_ = 0;  // nested exec/eval calls: the evaluator's recursion, macros included

  // The tree's height bounds recursion within one macro body, macro calls multiply it: this
  // bounds the product, so the stack a render needs has a fixed ceiling.
  struct Depth {
    Renderer& r;
    explicit Depth(Renderer& renderer) : r(renderer) {
      if (++r.depth_ > r.limits_.max_eval_depth) {
        --r.depth_;
        throw RenderError("the template recurses too deeply");
      }
    }
    ~Depth() { --r.depth_; }
  };

  static LocatedError located(const Node& n, const std::string& what) {
    return LocatedError("chat template line " + std::to_string(n.line) + ":" + std::to_string(n.col) + ": " + what);
  }

  void emit(std::string& out, const std::string& s) {
    if ((int64_t)(out.size() + s.size()) > limits_.max_output)
      throw RenderError("the rendered text exceeds the output size limit");
    budget_.charge((int64_t)s.size() / 64);
    out += s;
  }

  Flow exec_body(const Node& body, Scope& scope, std::string& out) {
    for (const auto& k : body.kids) {
      const Flow f = exec(*k, scope, out);
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

  Flow exec_inner(const Node& n, Scope& scope, std::string& out) {
    budget_.charge(1);
    switch (n.type) {
      case NodeType::body: return exec_body(n, scope, out);
      case NodeType::text: emit(out, n.name); return Flow::normal;
      case NodeType::output: emit(out, to_str(eval(*n.kids[0], scope))); return Flow::normal;
      case NodeType::if_: {
        size_t k = 0;
        for (; k + 1 < n.kids.size(); k += 2)
          if (truthy(eval(*n.kids[k], scope))) return exec(*n.kids[k + 1], scope, out);
        if (k < n.kids.size()) return exec(*n.kids[k], scope, out);
        return Flow::normal;
      }
      case NodeType::for_: exec_for(n, scope, out); return Flow::normal;
      case NodeType::set: {
        Value v = eval(*n.kids[0], scope);
        if (!n.attr.empty()) {
          const Value* target = scope.find(n.name);
          if (!target || target->kind != Kind::ns)
            throw RenderError("cannot assign attribute on non-namespace object '" + n.name + "'");
          if (v.holds_ns) throw RenderError("a namespace cannot hold a namespace here");
          target->ns->attrs.set(n.attr, std::move(v));
        } else {
          assign(n.names, v, scope);
        }
        return Flow::normal;
      }
      case NodeType::set_block: {
        std::string text;
        exec(*n.kids[0], scope, text);
        scope.vars[n.names[0]] = Value::string(std::move(text));
        return Flow::normal;
      }
      case NodeType::macro: {
        auto fn = std::make_shared<Callable>();
        fn->name = n.name;
        fn->macro = &n;
        Value v;
        v.kind = Kind::callable;
        v.fn = std::move(fn);
        scope.vars[n.name] = std::move(v);
        return Flow::normal;
      }
      case NodeType::filter_block: {
        std::string text;
        exec(*n.kids[1], scope, text);
        const Node& f = *n.kids[0];
        emit(out, to_str(apply_filter(f.name, Value::string(std::move(text)), eval_args(f, 1, scope), budget_)));
        return Flow::normal;
      }
      case NodeType::break_: return Flow::break_;
      case NodeType::continue_: return Flow::continue_;
      default: throw RenderError("not a statement");
    }
  }

  void assign(const std::vector<std::string>& names, const Value& v, Scope& scope) {
    if (names.size() == 1) {
      scope.vars[names[0]] = v;
      return;
    }
    const std::vector<Value> items = iterate(v);
    if (items.size() != names.size())
      throw RenderError("cannot unpack " + std::to_string(items.size()) + " values into " +
                        std::to_string(names.size()) + " names");
    for (size_t k = 0; k < names.size(); ++k) scope.vars[names[k]] = items[k];
  }

  void exec_for(const Node& n, Scope& scope, std::string& out) {
    std::vector<Value> items = iterate(eval(*n.kids[0], scope));
    budget_.charge((int64_t)items.size());
    if (n.kids[3]) {  // {% for x in xs if cond %}: filtered before loop.* is counted
      std::vector<Value> kept;
      for (Value& item : items) {
        Scope s{{}, &scope};
        assign(n.names, item, s);
        if (truthy(eval(*n.kids[3], s))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    const int64_t len = (int64_t)items.size();
    for (int64_t k = 0; k < len; ++k) {
      budget_.charge(1);
      Scope s{{}, &scope};
      assign(n.names, items[(size_t)k], s);
      Dict loop;
      auto& l = loop.items;
      l.reserve(11);
      l.emplace_back("index", Value::integer(k + 1));
      l.emplace_back("index0", Value::integer(k));
      l.emplace_back("revindex", Value::integer(len - k));
      l.emplace_back("revindex0", Value::integer(len - k - 1));
      l.emplace_back("first", Value::boolean(k == 0));
      l.emplace_back("last", Value::boolean(k == len - 1));
      l.emplace_back("length", Value::integer(len));
      l.emplace_back("depth", Value::integer(1));
      l.emplace_back("depth0", Value::integer(0));
      if (k > 0) l.emplace_back("previtem", items[(size_t)k - 1]);
      if (k + 1 < len) l.emplace_back("nextitem", items[(size_t)k + 1]);
      s.vars["loop"] = Value::of_dict(std::move(loop));
      if (exec(*n.kids[1], s, out) == Flow::break_) break;
    }
    if (len == 0 && n.kids[2]) exec(*n.kids[2], scope, out);
  }

  Args eval_args(const Node& n, size_t first, Scope& scope) {
    Args a;
    const size_t n_kw = n.kwnames.size();
    const size_t n_pos = n.kids.size() - first - n_kw;
    for (size_t k = 0; k < n_pos; ++k) a.pos.push_back(eval(*n.kids[first + k], scope));
    for (size_t k = 0; k < n_kw; ++k) a.kw.emplace_back(n.kwnames[k], eval(*n.kids[first + n_pos + k], scope));
    return a;
  }

  Value lookup(const std::string& name, const Scope& scope) {
    if (const Value* v = scope.find(name)) return *v;
    if (is_global_function(name)) {
      auto fn = std::make_shared<Callable>();
      fn->name = name;
      Value v;
      v.kind = Kind::callable;
      v.fn = std::move(fn);
      return v;
    }
    return Value::undefined(name);
  }

  static std::string undefined_message(const Value& v) {
    return v.str().empty() ? "value is undefined" : "'" + v.str() + "' is undefined";
  }

  Value call(const Value& fn, const Args& args) {
    if (fn.is_undefined()) throw RenderError(undefined_message(fn));
    if (fn.kind != Kind::callable) throw RenderError(std::string("'") + type_name(fn) + "' object is not callable");
    if (!fn.fn->macro) return call_global(fn.fn->name, args, budget_);
    const Node& m = *fn.fn->macro;
    if (call_depth_ >= limits_.max_call_depth) throw RenderError("macros nested too deeply");
    if (args.pos.size() > m.names.size())
      throw RenderError("macro '" + m.name + "' takes not more than " + std::to_string(m.names.size()) + " arguments");
    Scope s{{}, &root_};
    for (size_t k = 0; k < m.names.size(); ++k) {
      if (k < args.pos.size()) {
        s.vars[m.names[k]] = args.pos[k];
        continue;
      }
      bool found = false;
      for (const auto& [name, v] : args.kw)
        if (name == m.names[k]) {
          s.vars[m.names[k]] = v;
          found = true;
        }
      if (!found) s.vars[m.names[k]] = m.kids[1 + k] ? eval(*m.kids[1 + k], s) : Value::undefined(m.names[k]);
    }
    for (const auto& [name, v] : args.kw)
      if (std::find(m.names.begin(), m.names.end(), name) == m.names.end())
        throw RenderError("macro '" + m.name + "' takes no keyword argument '" + name + "'");
    ++call_depth_;
    std::string text;
    try {
      exec(*m.kids[0], s, text);
    } catch (...) {
      --call_depth_;
      throw;
    }
    --call_depth_;
    budget_.string(text.size());
    return Value::string(std::move(text));
  }

  Value eval_call(const Node& n, Scope& scope) {
    const Node& callee = *n.kids[0];
    if (callee.type == NodeType::attr) {  // obj.method(...)
      const Value obj = eval(*callee.kids[0], scope);
      if (obj.is_undefined()) throw RenderError(undefined_message(obj));
      const Args args = eval_args(n, 1, scope);
      Value result;
      if (call_method(obj, callee.name, args, budget_, result)) return result;
      const Value fn = get_attr(obj, callee.name);
      if (fn.kind == Kind::callable) return call(fn, args);
      throw RenderError(std::string("'") + type_name(obj) + "' object has no attribute '" + callee.name + "'");
    }
    const Value fn = eval(callee, scope);
    return call(fn, eval_args(n, 1, scope));
  }

  Value eval_inner(const Node& n, Scope& scope) {
    switch (n.type) {
      case NodeType::literal: return n.value;
      case NodeType::var: return lookup(n.name, scope);
      case NodeType::list: {
        List items;
        for (const auto& k : n.kids) items.push_back(eval(*k, scope));
        Value v = budget_.list(std::move(items));
        v.tuple = n.name == "tuple";
        return v;
      }
      case NodeType::dict: {
        Dict d;
        for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
          Value key = eval(*n.kids[k], scope);
          if (!key.is_string()) throw RenderError("dict keys must be strings in this template subset");
          d.set(key.str(), eval(*n.kids[k + 1], scope));
        }
        budget_.charge((int64_t)d.items.size());
        return Value::of_dict(std::move(d));
      }
      case NodeType::attr: {
        const Value obj = eval(*n.kids[0], scope);
        if (obj.is_undefined()) throw RenderError(undefined_message(obj));
        return get_attr(obj, n.name);
      }
      case NodeType::item: {
        const Value obj = eval(*n.kids[0], scope);
        if (obj.is_undefined()) throw RenderError(undefined_message(obj));
        return get_item(obj, eval(*n.kids[1], scope));
      }
      case NodeType::slice: {
        const Value obj = eval(*n.kids[0], scope);
        if (obj.is_undefined()) throw RenderError(undefined_message(obj));
        Value b[3];
        for (int k = 0; k < 3; ++k) b[k] = n.kids[1 + k] ? eval(*n.kids[1 + k], scope) : Value::none();
        return slice(obj, b[0], b[1], b[2], budget_);
      }
      case NodeType::call: return eval_call(n, scope);
      case NodeType::filter: {
        const Value v = eval(*n.kids[0], scope);
        return apply_filter(n.name, v, eval_args(n, 1, scope), budget_);
      }
      case NodeType::test: {
        const Value v = eval(*n.kids[0], scope);
        return Value::boolean(apply_test(n.name, v, eval_args(n, 1, scope)));
      }
      case NodeType::unary: {
        const Value v = eval(*n.kids[0], scope);
        if (n.name == "not") return Value::boolean(!truthy(v));
        if (v.kind == Kind::integer || v.kind == Kind::boolean) {
          const int64_t x = v.kind == Kind::integer ? v.i : (int64_t)v.b;
          if (n.name == "+") return Value::integer(x);
          if (x == INT64_MIN) throw RenderError("integer overflow");
          return Value::integer(-x);
        }
        if (v.kind == Kind::floating) return Value::floating(n.name == "-" ? -v.f : v.f);
        if (v.is_undefined()) throw RenderError(undefined_message(v));
        throw RenderError("bad operand type for unary " + n.name + ": '" + type_name(v) + "'");
      }
      case NodeType::binary: {
        Value a = eval(*n.kids[0], scope);
        if (n.name == "and") return truthy(a) ? eval(*n.kids[1], scope) : a;
        if (n.name == "or") return truthy(a) ? a : eval(*n.kids[1], scope);
        const Value b = eval(*n.kids[1], scope);
        if (n.name != "~") {
          if (a.is_undefined()) throw RenderError(undefined_message(a));
          if (b.is_undefined()) throw RenderError(undefined_message(b));
        }
        return binary_op(n.name, a, b, budget_);
      }
      case NodeType::compare: {
        Value left = eval(*n.kids[0], scope);
        for (size_t k = 0; k < n.names.size(); ++k) {
          Value right = eval(*n.kids[k + 1], scope);
          const std::string& op = n.names[k];
          bool r;
          if (op == "==") r = equal(left, right);
          else if (op == "!=") r = !equal(left, right);
          else if (op == "in") r = contains(right, left);
          else if (op == "not in") r = !contains(right, left);
          else {
            if (left.is_undefined()) throw RenderError(undefined_message(left));
            if (right.is_undefined()) throw RenderError(undefined_message(right));
            if (op == "<") r = less(left, right);
            else if (op == ">") r = less(right, left);
            else if (op == "<=") r = !less(right, left);
            else r = !less(left, right);
          }
          if (!r) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case NodeType::cond:
        if (truthy(eval(*n.kids[1], scope))) return eval(*n.kids[0], scope);
        return n.kids[2] ? eval(*n.kids[2], scope) : Value::undefined();
      default: throw RenderError("not an expression");
    }
  }
};

// Filter and test names are checked when the template is parsed, as jinja2 checks them when it
// compiles: a template using one this subset lacks fails to load, not halfway through a chat.
void check_names(const Node& n) {
  if (n.type == NodeType::filter && !is_filter(n.name))
    throw Error(ErrorCode::bad_format, "chat template line " + std::to_string(n.line) + ":" +
                                           std::to_string(n.col) + ": no filter named '" + n.name + "'");
  if (n.type == NodeType::test && !is_test(n.name))
    throw Error(ErrorCode::bad_format, "chat template line " + std::to_string(n.line) + ":" +
                                           std::to_string(n.col) + ": no test named '" + n.name + "'");
  for (const auto& k : n.kids)
    if (k) check_names(*k);
}

}  // namespace

Template::Template(const std::string& source, Limits limits) : limits_(limits) {
  root_ = parse(lex(source), limits_.max_nesting);
  check_names(*root_);
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const std::map<std::string, Value>& vars) const {
  Scope root;
  root.vars = vars;
  Renderer r(limits_, root);
  std::string out;
  try {
    r.exec(*root_, root, out);
  } catch (const RaisedError& e) {
    throw Error(ErrorCode::invalid_argument, e.what());
  } catch (const LocatedError& e) {
    throw Error(ErrorCode::invalid_argument, e.what());
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::out_of_memory, "chat template: out of memory while rendering");
  }
  return out;
}

}  // namespace lowbit::jinja
