// Filters, tests and global functions, each as jinja2 3.1 (filters.py, tests.py, defaults.py)
// and transformers (tojson, raise_exception, strftime_now) define them.
#include "runtime/chat/jinja_builtins.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <set>

#include "runtime/chat/jinja_strings.h"

namespace lowbit::jinja {

namespace {

Value arg_or(const Args& a, size_t k, const char* name, const Value& fallback) {
  const Value* v = a.get(k, name);
  return v ? *v : fallback;
}

std::string need_string(const Value& v, const char* what) {
  if (!v.is_string()) throw RenderError(std::string(what) + " must be a string, not '" + type_name(v) + "'");
  return v.str();
}

int64_t need_int(const Value& v, const char* what) {
  if (v.kind == Kind::integer) return v.i;
  if (v.kind == Kind::boolean) return v.b;
  throw RenderError(std::string(what) + " must be an integer, not '" + type_name(v) + "'");
}

double need_number(const Value& v, const char* what) {
  if (v.kind == Kind::floating) return v.f;
  if (v.kind == Kind::integer) return (double)v.i;
  if (v.kind == Kind::boolean) return v.b;
  throw RenderError(std::string(what) + " must be a number, not '" + type_name(v) + "'");
}

void need_defined(const Value& v) {
  if (v.is_undefined())
    throw RenderError(v.str().empty() ? "value is undefined" : "'" + v.str() + "' is undefined");
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then index 0.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = Value::string(part);
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) && part.size() < 18)
      key = Value::integer(std::stoll(part));
    need_defined(v);
    v = get_item(v, key);
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// A test applied by select/reject: name and arguments after the value.
bool run_test(const Args& a, size_t first, const Value& v) {
  if (a.pos.size() <= first) return truthy(v);
  Args rest;
  rest.pos.assign(a.pos.begin() + (long)first + 1, a.pos.end());
  return apply_test(need_string(a.pos[first], "test name"), v, rest);
}

// Sort key comparison for sort/unique/min/max/dictsort: strings case-folded unless asked not to.
Value sort_key(const Value& v, bool case_sensitive) {
  if (v.is_string() && !case_sensitive) return Value::string(lower(v.str()));
  return v;
}

Value tojson_filter(const Value& v, const Args& a, Budget& budget) {
  a.check("tojson", 4, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle st;
  st.ensure_ascii = truthy(arg_or(a, 0, "ensure_ascii", Value::boolean(false)));
  const Value& indent = arg_or(a, 1, "indent", Value::none());
  if (!indent.is_none()) {
    st.indent = (int)std::clamp<int64_t>(need_int(indent, "indent"), -1, 64);
    if (st.indent < 0) st.indent = 0;  // json.dumps: a negative indent still breaks lines
  }
  const Value& seps = arg_or(a, 2, "separators", Value::none());
  if (!seps.is_none()) {
    if (seps.kind != Kind::list || seps.list->size() != 2)
      throw RenderError("separators must be an (item_separator, key_separator) pair");
    st.item_sep = need_string((*seps.list)[0], "separator");
    st.key_sep = need_string((*seps.list)[1], "separator");
  }
  st.sort_keys = truthy(arg_or(a, 3, "sort_keys", Value::boolean(false)));
  return budget.str(to_json(v, st));
}

Value round_filter(const Value& v, const Args& a) {
  a.check("round", 2, {"precision", "method"});
  const int64_t precision = need_int(arg_or(a, 0, "precision", Value::integer(0)), "precision");
  const std::string method = need_string(arg_or(a, 1, "method", Value::string("common")), "method");
  if (method != "common" && method != "ceil" && method != "floor")
    throw RenderError("method must be 'common', 'ceil' or 'floor'");
  if (method == "common" && (v.kind == Kind::integer || v.kind == Kind::boolean)) return Value::integer(need_int(v, "value"));
  const double x = need_number(v, "value");
  if (std::abs(precision) > 300) throw RenderError("precision out of range");
  if (method != "common") {
    const double scale = std::pow(10.0, (double)precision);
    return Value::floating((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (!std::isfinite(x)) return Value::floating(x);
  if (precision < 0) {
    const double scale = std::pow(10.0, (double)-precision);
    return Value::floating(std::nearbyint(x / scale) * scale);
  }
  // Python rounds the exact binary value half-to-even, as printf does.
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", (int)precision, x);
  return Value::floating(std::strtod(buf, nullptr));
}

Value int_filter(const Value& v, const Args& a) {
  a.check("int", 2, {"default", "base"});
  const Value& def = arg_or(a, 0, "default", Value::integer(0));
  need_defined(v);
  if (v.kind == Kind::integer) return v;
  if (v.kind == Kind::boolean) return Value::integer(v.b);
  if (v.kind == Kind::floating) {
    if (!std::isfinite(v.f) || std::abs(v.f) >= 9.2e18) return def;
    return Value::integer((int64_t)v.f);
  }
  if (v.is_string()) {
    const int64_t base = need_int(arg_or(a, 1, "base", Value::integer(10)), "base");
    if (auto i = parse_int(v.str(), (int)base)) return Value::integer(*i);
    if (auto f = parse_float(v.str()); f && std::isfinite(*f) && std::abs(*f) < 9.2e18)
      return Value::integer((int64_t)*f);
  }
  return def;
}

Value float_filter(const Value& v, const Args& a) {
  a.check("float", 1, {"default"});
  need_defined(v);
  if (v.is_number()) return Value::floating(need_number(v, "value"));
  if (v.is_string())
    if (auto f = parse_float(v.str())) return Value::floating(*f);
  return arg_or(a, 0, "default", Value::floating(0.0));
}

Value indent_filter(const Value& v, const Args& a, Budget& budget) {
  a.check("indent", 3, {"width", "first", "blank"});
  const Value& width = arg_or(a, 0, "width", Value::integer(4));
  const std::string pad = width.is_string() ? width.str() : std::string((size_t)std::clamp<int64_t>(need_int(width, "width"), 0, 1024), ' ');
  const bool first = truthy(arg_or(a, 1, "first", Value::boolean(false)));
  const bool blank = truthy(arg_or(a, 2, "blank", Value::boolean(false)));
  if (!v.is_string()) throw RenderError(std::string("indent needs a string, not '") + type_name(v) + "'");
  const std::vector<std::string> lines = split_lines(v.str() + "\n", false);
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k > 0) out += "\n";
    if (k > 0 && (blank || !lines[k].empty())) out += pad;
    out += lines[k];
    budget.string(out.size());
  }
  if (first) out = pad + out;
  return budget.str(std::move(out));
}

std::vector<Value> sorted_items(const Value& v, const Args& a, const char* fn) {
  a.check(fn, 3, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = truthy(arg_or(a, 0, "reverse", Value::boolean(false)));
  const bool cs = truthy(arg_or(a, 1, "case_sensitive", Value::boolean(false)));
  const Value& attr = arg_or(a, 2, "attribute", Value::none());
  std::vector<Value> items = iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t k = 0; k < items.size(); ++k)
    keyed.emplace_back(sort_key(attr.is_none() ? items[k] : attribute_path(items[k], to_str(attr)), cs), k);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  std::vector<Value> out;
  for (const auto& [key, k] : keyed) out.push_back(items[k]);
  return out;
}

Value html_escape(const Value& v, Budget& budget) {
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return budget.str(std::move(out));
}

}  // namespace

bool is_filter(const std::string& n) {
  static const std::set<std::string> names = {
      "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
      "forceescape", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
      "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr",
      "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper", "wordcount"};
  return names.count(n) > 0;
}

Value apply_filter(const std::string& name, const Value& v, const Args& a, Budget& budget) {
  budget.charge(1);
  if (name == "default" || name == "d") {
    a.check("default", 2, {"default_value", "boolean"});
    const bool boolean = truthy(arg_or(a, 1, "boolean", Value::boolean(false)));
    if (v.is_undefined() || (boolean && !truthy(v))) return arg_or(a, 0, "default_value", Value::string(""));
    return v;
  }
  if (name == "tojson") return tojson_filter(v, a, budget);
  if (name == "safe") return v;
  if (name == "string") return budget.str(to_str(v));
  if (name == "length" || name == "count") {
    switch (v.kind) {
      case Kind::undefined: return Value::integer(0);
      case Kind::string: return Value::integer((int64_t)code_point_count(v.str()));
      case Kind::list: return Value::integer((int64_t)v.list->size());
      case Kind::dict: return Value::integer((int64_t)v.dict->items.size());
      default: throw RenderError(std::string("object of type '") + type_name(v) + "' has no len()");
    }
  }
  if (name == "trim") {
    a.check("trim", 1, {"chars"});
    const Value& chars = arg_or(a, 0, "chars", Value::none());
    return budget.str(strip(to_str(v), chars.is_none() ? nullptr : &chars.str(), true, true));
  }
  if (name == "upper") return budget.str(upper(to_str(v)));
  if (name == "lower") return budget.str(lower(to_str(v)));
  if (name == "capitalize") return budget.str(capitalize(to_str(v)));
  if (name == "title") return budget.str(jinja_title(to_str(v)));
  if (name == "e" || name == "escape" || name == "forceescape") return html_escape(v, budget);
  if (name == "wordcount") {  // jinja2 counts runs of \w (letters, digits, underscore)
    int64_t n = 0;
    bool in_word = false;
    for (unsigned char c : to_str(v)) {
      const bool w = std::isalnum(c) || c == '_' || c >= 0x80;
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  if (name == "replace") {
    a.check("replace", 3, {"old", "new", "count"});
    const Value* old = a.get(0, "old");
    const Value* rep = a.get(1, "new");
    if (!old || !rep) throw RenderError("replace() needs old and new");
    const Value& count = arg_or(a, 2, "count", Value::none());
    return budget.str(replace(to_str(v), to_str(*old), to_str(*rep), count.is_none() ? -1 : need_int(count, "count"),
                              budget.limits.max_output));
  }
  if (name == "first" || name == "last") {
    if (v.kind == Kind::string) {
      const auto cps = code_points(v.str());
      if (cps.empty()) return Value::undefined();
      return Value::string(std::string(name == "first" ? cps.front() : cps.back()));
    }
    const std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    a.check("join", 2, {"d", "attribute"});
    const std::string sep = to_str(arg_or(a, 0, "d", Value::string("")));
    const Value& attr = arg_or(a, 1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(attr.is_none() ? x : attribute_path(x, to_str(attr)));
      budget.string(out.size());
    }
    return budget.str(std::move(out));
  }
  if (name == "list") return budget.list(iterate(v));
  if (name == "items") {
    if (v.is_undefined()) return budget.list({});
    if (v.kind != Kind::dict) throw RenderError("Can only get item pairs from a mapping.");
    List out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::of_tuple({Value::string(k), x}));
    return budget.list(std::move(out));
  }
  if (name == "dictsort") {
    a.check("dictsort", 3, {"case_sensitive", "by", "reverse"});
    if (v.kind != Kind::dict) throw RenderError("dictsort needs a mapping");
    const bool cs = truthy(arg_or(a, 0, "case_sensitive", Value::boolean(false)));
    const std::string by = to_str(arg_or(a, 1, "by", Value::string("key")));
    const bool reverse = truthy(arg_or(a, 2, "reverse", Value::boolean(false)));
    std::vector<std::pair<std::string, Value>> kvs = v.dict->items;
    std::stable_sort(kvs.begin(), kvs.end(), [&](const auto& x, const auto& y) {
      const Value kx = sort_key(by == "value" ? x.second : Value::string(x.first), cs);
      const Value ky = sort_key(by == "value" ? y.second : Value::string(y.first), cs);
      return reverse ? less(ky, kx) : less(kx, ky);
    });
    List out;
    for (auto& [k, x] : kvs) out.push_back(Value::of_tuple({Value::string(k), x}));
    return budget.list(std::move(out));
  }
  const bool sequence_filter = name == "selectattr" || name == "rejectattr" || name == "select" ||
                               name == "reject" || name == "map";
  if (sequence_filter && !truthy(v)) return budget.list({});  // jinja2 starts with `if seq:`
  if (name == "selectattr" || name == "rejectattr") {
    if (a.pos.empty()) throw RenderError(name + "() needs an attribute name");
    const std::string attr = to_str(a.pos[0]);
    List out;
    for (const Value& x : iterate(v))
      if (run_test(a, 1, attribute_path(x, attr)) == (name == "selectattr")) out.push_back(x);
    return budget.list(std::move(out));
  }
  if (name == "select" || name == "reject") {
    List out;
    for (const Value& x : iterate(v))
      if (run_test(a, 0, x) == (name == "select")) out.push_back(x);
    return budget.list(std::move(out));
  }
  if (name == "map") {
    List out;
    const Value* attr = nullptr;
    for (const auto& [k, x] : a.kw)
      if (k == "attribute") attr = &x;
    if (attr) {
      const Value* def = nullptr;
      for (const auto& [k, x] : a.kw)
        if (k == "default") def = &x;
      for (const Value& x : iterate(v)) {
        Value y = attribute_path(x, to_str(*attr));
        out.push_back(y.is_undefined() && def ? *def : y);
      }
    } else {
      if (a.pos.empty()) throw RenderError("map() needs a filter name or attribute=");
      const std::string filter = need_string(a.pos[0], "filter name");
      if (!is_filter(filter)) throw RenderError("no filter named '" + filter + "'");
      Args rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      for (const Value& x : iterate(v)) out.push_back(apply_filter(filter, x, rest, budget));
    }
    return budget.list(std::move(out));
  }
  if (name == "unique") {
    a.check("unique", 2, {"case_sensitive", "attribute"});
    const bool cs = truthy(arg_or(a, 0, "case_sensitive", Value::boolean(false)));
    const Value& attr = arg_or(a, 1, "attribute", Value::none());
    List out, seen;
    for (const Value& x : iterate(v)) {
      const Value key = sort_key(attr.is_none() ? x : attribute_path(x, to_str(attr)), cs);
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, key); })) {
        budget.charge((int64_t)seen.size());
        seen.push_back(key);
        out.push_back(x);
      }
    }
    return budget.list(std::move(out));
  }
  if (name == "sort") return budget.list(sorted_items(v, a, "sort"));
  if (name == "reverse") {
    if (v.is_string()) {
      auto cps = code_points(v.str());
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return budget.str(std::move(out));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return budget.list(std::move(items));
  }
  if (name == "min" || name == "max") {
    a.check(name.c_str(), 2, {"case_sensitive", "attribute"});
    Args sa;
    sa.kw = {{"case_sensitive", arg_or(a, 0, "case_sensitive", Value::boolean(false))},
             {"attribute", arg_or(a, 1, "attribute", Value::none())}};
    std::vector<Value> items = sorted_items(v, sa, name.c_str());
    if (items.empty()) return Value::undefined();
    // max: the first of the largest, as Python's max() keeps the first maximum it meets.
    if (name == "min") return items.front();
    size_t k = items.size() - 1;
    while (k > 0 && !less(sort_key(items[k - 1], true), sort_key(items[k], true)) &&
           !less(sort_key(items[k], true), sort_key(items[k - 1], true)))
      --k;
    return items[k];
  }
  if (name == "sum") {
    a.check("sum", 2, {"attribute", "start"});
    const Value& attr = arg_or(a, 0, "attribute", Value::none());
    Value total = arg_or(a, 1, "start", Value::integer(0));
    for (const Value& x : iterate(v)) total = binary_op("+", total, attr.is_none() ? x : attribute_path(x, to_str(attr)), budget);
    return total;
  }
  if (name == "abs") {
    if (v.kind == Kind::integer) {
      if (v.i == INT64_MIN) throw RenderError("integer overflow");
      return Value::integer(std::abs(v.i));
    }
    if (v.kind == Kind::boolean) return Value::integer(v.b);
    return Value::floating(std::abs(need_number(v, "abs() argument")));
  }
  if (name == "round") return round_filter(v, a);
  if (name == "int") return int_filter(v, a);
  if (name == "float") return float_filter(v, a);
  if (name == "indent") return indent_filter(v, a, budget);
  if (name == "attr") {
    if (a.pos.empty()) throw RenderError("attr() needs a name");
    need_defined(v);
    return get_attr(v, to_str(a.pos[0]));
  }
  throw RenderError("no filter named '" + name + "'");
}

bool is_test(const std::string& n) {
  static const std::set<std::string> names = {
      "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number", "string",
      "mapping", "iterable", "sequence", "callable", "sameas", "escaped", "lower", "upper", "even", "odd",
      "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt",
      "greaterthan", ">", "ge", ">=", "in", "filter", "test"};
  return names.count(n) > 0;
}

bool apply_test(const std::string& n, const Value& v, const Args& a) {
  const Value none = Value::none();
  const Value& other = a.pos.empty() ? none : a.pos[0];
  if (n == "defined") return !v.is_undefined();
  if (n == "undefined") return v.is_undefined();
  if (n == "none") return v.is_none();
  if (n == "boolean") return v.kind == Kind::boolean;
  if (n == "false") return v.kind == Kind::boolean && !v.b;
  if (n == "true") return v.kind == Kind::boolean && v.b;
  if (n == "integer") return v.kind == Kind::integer;
  if (n == "float") return v.kind == Kind::floating;
  if (n == "number") return v.is_number();
  if (n == "string") return v.is_string();
  if (n == "mapping") return v.kind == Kind::dict;
  if (n == "iterable" || n == "sequence")
    return v.is_undefined() || v.is_string() || v.kind == Kind::list || v.kind == Kind::dict;
  if (n == "callable") return v.kind == Kind::callable || v.is_undefined();
  if (n == "escaped") return false;
  if (n == "filter") return v.is_string() && is_filter(v.str());
  if (n == "test") return v.is_string() && is_test(v.str());
  if (n == "sameas") {
    if (v.kind != other.kind) return false;
    switch (v.kind) {
      case Kind::none:
      case Kind::undefined: return true;
      case Kind::boolean: return v.b == other.b;
      case Kind::list: return v.list == other.list;
      case Kind::dict: return v.dict == other.dict;
      case Kind::ns: return v.ns == other.ns;
      case Kind::string: return v.sp == other.sp;
      default: return equal(v, other);
    }
  }
  if (n == "lower") return to_str(v) == lower(to_str(v)) && to_str(v) != upper(to_str(v));
  if (n == "upper") return to_str(v) == upper(to_str(v)) && to_str(v) != lower(to_str(v));
  if (n == "even" || n == "odd" || n == "divisibleby") {
    need_defined(v);
    Budget b(Limits{});
    const Value m = n == "divisibleby" ? other : Value::integer(2);
    const Value r = binary_op("%", v, m, b);
    return n == "odd" ? truthy(r) : !truthy(r);
  }
  if (n == "eq" || n == "equalto" || n == "==") return equal(v, other);
  if (n == "ne" || n == "!=") return !equal(v, other);
  if (n == "in") return contains(other, v);
  need_defined(v);
  need_defined(other);
  if (n == "lt" || n == "lessthan" || n == "<") return less(v, other);
  if (n == "le" || n == "<=") return !less(other, v);
  if (n == "gt" || n == "greaterthan" || n == ">") return less(other, v);
  if (n == "ge" || n == ">=") return !less(v, other);
  throw RenderError("no test named '" + n + "'");
}

bool is_global_function(const std::string& name) {
  return name == "range" || name == "namespace" || name == "dict" || name == "raise_exception" ||
         name == "strftime_now";
}

Value call_global(const std::string& name, const Args& a, Budget& budget) {
  if (name == "raise_exception") {
    a.check("raise_exception", 1, {"message"});
    throw RaisedError(to_str(arg_or(a, 0, "message", Value::string(""))));
  }
  if (name == "range") {
    if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty()) throw RenderError("range expected 1 to 3 integer arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = need_int(a.pos[0], "range() argument");
    } else {
      start = need_int(a.pos[0], "range() argument");
      stop = need_int(a.pos[1], "range() argument");
      if (a.pos.size() == 3) step = need_int(a.pos[2], "range() argument");
    }
    if (step == 0) throw RenderError("range() arg 3 must not be zero");
    const long double span = step > 0 ? (long double)stop - start : (long double)start - stop;
    const long double count = span <= 0 ? 0 : std::ceil(span / std::abs((long double)step));
    if (count > budget.limits.max_range)
      throw RenderError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" +
                        std::to_string(budget.limits.max_range) + ").");
    List out;
    for (int64_t k = 0; k < (int64_t)count; ++k) out.push_back(Value::integer(start + k * step));
    return budget.list(std::move(out));
  }
  if (name == "namespace" || name == "dict") {
    Dict d;
    if (a.pos.size() > 1) throw RenderError(name + "() takes at most one positional argument");
    if (!a.pos.empty()) {
      if (a.pos[0].kind != Kind::dict) throw RenderError(name + "() positional argument must be a mapping");
      d = *a.pos[0].dict;
    }
    for (const auto& [k, v] : a.kw) d.set(k, v);
    budget.charge(1 + (int64_t)d.items.size());
    if (name == "dict") return Value::of_dict(std::move(d));
    for (const auto& [k, v] : d.items) {
      if (!k.empty() && k[0] == '_') throw RenderError("namespace attributes cannot start with '_'");
      if (v.holds_ns) throw RenderError("a namespace cannot hold a namespace here");
    }
    Value v;
    v.kind = Kind::ns;
    v.holds_ns = true;
    v.depth = 1;
    v.ns = std::make_shared<Namespace>();
    v.ns->attrs = std::move(d);
    return v;
  }
  if (name == "strftime_now") {
    a.check("strftime_now", 1, {"format"});
    const std::string fmt = need_string(arg_or(a, 0, "format", Value::string("")), "format");
    if (fmt.size() > 256) throw RenderError("strftime_now format too long");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::string buf(fmt.size() * 64 + 64, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    buf.resize(n);
    return budget.str(std::move(buf));
  }
  throw RenderError("'" + name + "' is not a function");
}

}  // namespace lowbit::jinja
