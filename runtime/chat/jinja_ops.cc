// Python's operators over template values: arithmetic, `in`, indexing, slicing, iteration, and
// jinja2's attribute/item lookup (a missing key or index is undefined, not an error).
#include <cmath>
#include <limits>

#include "runtime/chat/jinja_builtins.h"

namespace lowbit::jinja {

const Value* Args::get(size_t k, const char* name) const {
  if (k < pos.size()) return &pos[k];
  for (const auto& [n, v] : kw)
    if (n == name) return &v;
  return nullptr;
}

void Args::check(const char* fn, size_t max_pos, std::initializer_list<const char*> names) const {
  if (pos.size() > max_pos)
    throw RenderError(std::string(fn) + "() takes at most " + std::to_string(max_pos) + " arguments (" +
                      std::to_string(pos.size()) + " given)");
  for (const auto& [n, v] : kw) {
    bool ok = false;
    for (const char* allowed : names) ok = ok || n == allowed;
    if (!ok) throw RenderError(std::string(fn) + "() got an unexpected keyword argument '" + n + "'");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return {};
    case Kind::list: return *v.list;
    case Kind::dict: {
      std::vector<Value> keys;
      for (const auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Kind::string: {
      std::vector<Value> chars;
      for (std::string_view c : code_points(v.str())) chars.push_back(Value::string(std::string(c)));
      return chars;
    }
    default: throw RenderError(std::string("'") + type_name(v) + "' object is not iterable");
  }
}

namespace {

// Python's slice.indices(): clamps start/stop for a sequence of `len` items.
int64_t as_index(const Value& v, const char* what) {
  if (v.kind == Kind::integer) return v.i;
  if (v.kind == Kind::boolean) return v.b;
  throw RenderError(std::string("slice ") + what + " must be an integer or None, not '" + type_name(v) + "'");
}

}  // namespace

Value slice(const Value& v, const Value& start, const Value& stop, const Value& step, Budget& budget) {
  std::vector<std::string_view> chars;
  int64_t len;
  if (v.kind == Kind::list) {
    len = (int64_t)v.list->size();
  } else if (v.kind == Kind::string) {
    chars = code_points(v.str());
    len = (int64_t)chars.size();
  } else {
    throw RenderError(std::string("'") + type_name(v) + "' object is not subscriptable");
  }
  const int64_t st = step.is_none() ? 1 : as_index(step, "step");
  if (st == 0) throw RenderError("slice step cannot be zero");
  auto clamp = [&](const Value& b, int64_t def) {
    if (b.is_none()) return def;
    int64_t x = as_index(b, "index");
    if (x < 0) x = std::max<int64_t>(x + len, st < 0 ? -1 : 0);
    else x = std::min<int64_t>(x, st < 0 ? len - 1 : len);
    return x;
  };
  const int64_t a = clamp(start, st < 0 ? len - 1 : 0);
  const int64_t b = clamp(stop, st < 0 ? -1 : len);
  std::vector<int64_t> picks;
  for (int64_t k = a; st > 0 ? k < b : k > b; k += st) picks.push_back(k);
  budget.charge((int64_t)picks.size());
  if (v.kind == Kind::list) {
    List out;
    for (int64_t k : picks) out.push_back((*v.list)[(size_t)k]);
    Value r = budget.list(std::move(out));
    r.tuple = v.tuple;
    return r;
  }
  std::string out;
  for (int64_t k : picks) out += chars[(size_t)k];
  return budget.str(std::move(out));
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.kind == Kind::dict) {
    if (const Value* v = obj.dict->find(name)) return *v;
  } else if (obj.kind == Kind::ns) {
    if (const Value* v = obj.ns->attrs.find(name)) return *v;
  }
  return Value::undefined(name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.kind == Kind::dict || obj.kind == Kind::ns) {
    if (key.is_string()) return get_attr(obj, key.str());
    return Value::undefined();
  }
  if ((obj.kind == Kind::list || obj.kind == Kind::string) &&
      (key.kind == Kind::integer || key.kind == Kind::boolean)) {
    int64_t k = key.kind == Kind::integer ? key.i : key.b;
    if (obj.kind == Kind::list) {
      const int64_t n = (int64_t)obj.list->size();
      if (k < 0) k += n;
      if (k < 0 || k >= n) return Value::undefined();
      return (*obj.list)[(size_t)k];
    }
    const std::vector<std::string_view> chars = code_points(obj.str());
    const int64_t n = (int64_t)chars.size();
    if (k < 0) k += n;
    if (k < 0 || k >= n) return Value::undefined();
    return Value::string(std::string(chars[(size_t)k]));
  }
  return Value::undefined(key.is_string() ? key.str() : "");
}

bool contains(const Value& c, const Value& item) {
  switch (c.kind) {
    case Kind::undefined: return false;
    case Kind::string:
      if (!item.is_string())
        throw RenderError(std::string("'in <string>' requires string as left operand, not ") + type_name(item));
      return c.str().find(item.str()) != std::string::npos;
    case Kind::list:
      for (const Value& x : *c.list)
        if (equal(x, item)) return true;
      return false;
    case Kind::dict:
      if (item.kind == Kind::list && !item.tuple) throw RenderError("unhashable type: 'list'");
      if (item.kind == Kind::dict) throw RenderError("unhashable type: 'dict'");
      return item.is_string() && c.dict->find(item.str()) != nullptr;
    default: throw RenderError(std::string("argument of type '") + type_name(c) + "' is not iterable");
  }
}

namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw RenderError("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

// a op b on int64, or RenderError on overflow (Python's ints are unbounded; ours stop here).
template <class Op>
int64_t checked(int64_t a, int64_t b, Op op) {
  int64_t r;
  if (op(a, b, &r)) throw RenderError("integer overflow");
  return r;
}

double to_double(const Value& v) { return v.kind == Kind::floating ? v.f : v.kind == Kind::integer ? (double)v.i : v.b; }
int64_t to_int(const Value& v) { return v.kind == Kind::integer ? v.i : v.b; }

Value repeat(const Value& seq, int64_t n, Budget& budget) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    const std::string& s = seq.str();
    if (!s.empty() && n > budget.limits.max_output / (int64_t)s.size())
      throw RenderError("the template builds a string over the size limit");
    budget.string(s.size() * (size_t)n);
    std::string out;
    out.reserve(s.size() * (size_t)n);
    for (int64_t k = 0; k < n; ++k) out += s;
    return Value::string(std::move(out));
  }
  if (!seq.list->empty() && n > budget.limits.max_steps / (int64_t)seq.list->size())
    throw RenderError("the template exceeds its evaluation budget");
  budget.charge((int64_t)seq.list->size() * n);
  List out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return budget.list(std::move(out));
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b, Budget& budget) {
  if (op == "~") return budget.str(to_str(a) + to_str(b));
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && a.kind != Kind::floating && b.kind != Kind::floating;
  if (op == "+") {
    if (ints) {
      return Value::integer(checked(to_int(a), to_int(b), [](int64_t x, int64_t y, int64_t* r) { return __builtin_add_overflow(x, y, r); }));
    }
    if (nums) return Value::floating(to_double(a) + to_double(b));
    if (a.is_string() && b.is_string()) return budget.str(a.str() + b.str());
    if (a.kind == Kind::list && b.kind == Kind::list) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return budget.list(std::move(out));
    }
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      return Value::integer(checked(to_int(a), to_int(b), [](int64_t x, int64_t y, int64_t* r) { return __builtin_sub_overflow(x, y, r); }));
    }
    if (nums) return Value::floating(to_double(a) - to_double(b));
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      return Value::integer(checked(to_int(a), to_int(b), [](int64_t x, int64_t y, int64_t* r) { return __builtin_mul_overflow(x, y, r); }));
    }
    if (nums) return Value::floating(to_double(a) * to_double(b));
    if ((a.is_string() || a.kind == Kind::list) && (b.kind == Kind::integer || b.kind == Kind::boolean))
      return repeat(a, to_int(b), budget);
    if ((b.is_string() || b.kind == Kind::list) && (a.kind == Kind::integer || a.kind == Kind::boolean))
      return repeat(b, to_int(a), budget);
    unsupported(op, a, b);
  }
  if (!nums) {
    if (op == "%" && a.is_string()) throw RenderError("string formatting with % is not supported");
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (to_double(b) == 0) throw RenderError("division by zero");
    return Value::floating(to_double(a) / to_double(b));
  }
  if (op == "//" || op == "%") {
    if (ints) {
      const int64_t x = to_int(a), y = to_int(b);
      if (y == 0) throw RenderError("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        if (op == "%") return Value::integer(0);
        throw RenderError("integer overflow");
      }
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward negative infinity
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    const double x = to_double(a), y = to_double(b);
    if (y == 0) throw RenderError("float division or modulo by zero");
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    if (op == "%") return Value::floating(r);
    return Value::floating(std::floor(x / y));
  }
  if (op == "**") {
    if (ints && to_int(b) >= 0) {
      const int64_t base = to_int(a), e = to_int(b);
      if (base == 0 || base == 1) return Value::integer(e == 0 ? 1 : base);
      if (base == -1) return Value::integer(e % 2 ? -1 : 1);
      int64_t r = 1;  // |base| >= 2 overflows within 63 steps
      for (int64_t k = 0; k < e; ++k)
        if (__builtin_mul_overflow(r, base, &r)) throw RenderError("integer overflow");
      return Value::integer(r);
    }
    return Value::floating(std::pow(to_double(a), to_double(b)));
  }
  unsupported(op, a, b);
}

}  // namespace lowbit::jinja
