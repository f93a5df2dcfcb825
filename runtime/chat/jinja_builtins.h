// What the evaluator calls by name: filters, tests, the methods of strings, dicts and lists, and
// the global functions (range, namespace, dict, raise_exception, strftime_now). Internal to
// runtime/chat/: errors are thrown as RenderError and located by the evaluator.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runtime/chat/jinja.h"
#include "runtime/chat/jinja_value.h"

namespace lowbit::jinja {

// An error while rendering, not yet located; the evaluator adds "chat template line L:C: ".
struct RenderError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// raise_exception(message): passes through the evaluator unchanged.
struct RaisedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a render may spend: steps (nodes evaluated, loop iterations, items and string bytes
// built) and the size of any one string. Charging past either throws RenderError.
struct Budget {
  const Limits& limits;
  int64_t steps = 0;
  explicit Budget(const Limits& l) : limits(l) {}
  void charge(int64_t n) {
    steps += n;
    if (steps > limits.max_steps) throw RenderError("the template exceeds its evaluation budget");
  }
  // A new string of `bytes`: paid by its size, and no larger than the output may be.
  void string(size_t bytes) {
    if ((int64_t)bytes > limits.max_output) throw RenderError("the template builds a string over the size limit");
    charge(1 + (int64_t)bytes / 8);
  }
  Value list(List items) {
    charge(1 + (int64_t)items.size());
    return Value::of_list(std::move(items));
  }
  Value str(std::string s) {
    string(s.size());
    return Value::string(std::move(s));
  }
};

// Call arguments: positional, then keyword.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The argument at position k or named `name` (nullptr when neither was given).
  const Value* get(size_t k, const char* name) const;
  // Throws when more positional arguments than `max_pos` were given or a keyword is not in `names`.
  void check(const char* fn, size_t max_pos, std::initializer_list<const char*> names) const;
};

// Applies the filter / test `name`. Filters that take a filter or test by name (map, select, ...)
// call back into these.
Value apply_filter(const std::string& name, const Value& v, const Args& args, Budget& budget);
bool apply_test(const std::string& name, const Value& v, const Args& args);
// Known at parse time, as jinja2 checks them when it compiles.
bool is_filter(const std::string& name);
bool is_test(const std::string& name);

// obj.name(args) for a string, list or dict method; false when obj has no such method.
bool call_method(const Value& obj, const std::string& name, const Args& args, Budget& budget, Value& result);
// A built-in global function, or false when `name` is none.
bool is_global_function(const std::string& name);
Value call_global(const std::string& name, const Args& args, Budget& budget);

// Helpers shared with the evaluator.
std::vector<Value> iterate(const Value& v);  // for-loop items; throws RenderError when not iterable
Value slice(const Value& v, const Value& start, const Value& stop, const Value& step, Budget& budget);
Value get_item(const Value& obj, const Value& key);  // obj[key] with jinja2's fallbacks
Value get_attr(const Value& obj, const std::string& name);
Value binary_op(const std::string& op, const Value& a, const Value& b, Budget& budget);
bool contains(const Value& container, const Value& item);  // `item in container`

}  // namespace lowbit::jinja
