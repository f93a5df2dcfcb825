// The values a Jinja template computes with: JSON's (none, booleans, integers, floats, strings,
// lists, dicts that keep insertion order, as Python's do) plus jinja2's Undefined, namespace()
// objects and callables (macros and the built-in functions). Printing, comparing and JSON-encoding
// follow Python's rules (str(), ==, <, json.dumps), since jinja2 evaluates templates as Python.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit::jinja {

struct Value;
struct Node;
using List = std::vector<Value>;

// A dict keeps its keys in insertion order (Python 3.7+); keys are strings (JSON's, and the
// only kind this subset lets a template write).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

// A namespace() object: the one mutable value, shared by reference so `set ns.x = ...` inside a
// loop is seen after it.
struct Namespace {
  Dict attrs;
};

// A macro defined by the template (node != nullptr) or a built-in global function (by name).
struct Callable {
  std::string name;
  const Node* macro = nullptr;
};

// How deeply lists and dicts may nest, in the inputs and in what a template builds: the printers,
// comparisons and destructors recurse over it.
inline constexpr int kMaxValueDepth = 128;

enum class Kind { undefined, none, boolean, integer, floating, string, list, dict, ns, callable };

struct Value {
  Kind kind = Kind::undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  // A string's bytes (UTF-8), shared between copies so passing strings around costs nothing
  // (what a template builds is paid for once, by its size); for undefined, the name it stands for.
  std::shared_ptr<const std::string> sp;
  std::shared_ptr<const List> list;
  std::shared_ptr<const Dict> dict;
  std::shared_ptr<Namespace> ns;
  std::shared_ptr<const Callable> fn;
  int depth = 0;          // nesting depth of a list/dict (1 + the deepest element)
  bool tuple = false;     // a list that Python would hold as a tuple: prints as (a, b)
  bool holds_ns = false;  // a namespace, or a list/dict with one inside: a namespace may not hold
                          // one (no reference cycles, no unbounded chains to print or free)

  static Value undefined(std::string name = "") {
    Value v;
    if (!name.empty()) v.sp = std::make_shared<const std::string>(std::move(name));
    return v;
  }
  static Value none() { return make(Kind::none); }
  static Value boolean(bool x) {
    Value v = make(Kind::boolean);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = make(Kind::integer);
    v.i = x;
    return v;
  }
  static Value floating(double x) {
    Value v = make(Kind::floating);
    v.f = x;
    return v;
  }
  static Value string(std::string x) {
    Value v = make(Kind::string);
    v.sp = std::make_shared<const std::string>(std::move(x));
    return v;
  }
  // Throw std::length_error past kMaxValueDepth.
  static Value of_list(List items);
  static Value of_tuple(List items) {
    Value v = of_list(std::move(items));
    v.tuple = true;
    return v;
  }
  static Value of_dict(Dict d);

  const std::string& str() const;  // the string ("" when none is held)
  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_none() const { return kind == Kind::none; }
  bool is_string() const { return kind == Kind::string; }
  bool is_number() const { return kind == Kind::integer || kind == Kind::floating || kind == Kind::boolean; }
  const List& items() const { return *list; }
  const Dict& map() const { return *dict; }

 private:
  static Value make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// Python's type name of a value, for messages ("str", "int", "list", "dict", "NoneType", ...).
const char* type_name(const Value& v);

// Python's bool(v).
bool truthy(const Value& v);

// Python's ==. Numbers compare by value across int/float/bool.
bool equal(const Value& a, const Value& b);

// Python's <: numbers with numbers, strings by code point, lists lexicographically. Throws
// std::invalid_argument (turned into a located Error by the evaluator) for other pairs.
bool less(const Value& a, const Value& b);

// Python's str(v) (what {{ v }} prints): undefined -> "", None -> "None", True -> "True", floats
// as repr() spells them, lists and dicts as their repr().
std::string to_str(const Value& v);
// Python's repr(v) (strings quoted).
std::string repr(const Value& v);
// repr() of a float: the shortest digits that read back the same, "1.0", "1e+16", "inf".
std::string float_repr(double x);

// json.dumps(v, ensure_ascii, indent (<0: none), separators, sort_keys) as transformers' tojson
// filter calls it. Throws std::invalid_argument for values JSON cannot hold (undefined, callables).
struct JsonStyle {
  bool ensure_ascii = false;
  int indent = -1;
  std::string item_sep, key_sep;  // empty: json.dumps' defaults for the indent
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonStyle& style);

// A JSON document as a value (objects keep the document's key order where the json type does).
// Throws std::invalid_argument when nested deeper than max_depth.
Value from_json(const nlohmann::json& j, int max_depth);
Value from_json(const nlohmann::ordered_json& j, int max_depth);

// UTF-8 helpers: strings index, slice and count by code point, as Python's str does.
std::vector<std::string_view> code_points(std::string_view s);
size_t code_point_count(std::string_view s);

}  // namespace lowbit::jinja
