// The methods a template may call on values: str's non-mutating ones, dict.items/keys/values/get,
// list.count/index. Mutating methods (list.append, dict.update, ...) do not exist here, as
// jinja2's ImmutableSandboxedEnvironment refuses them.
#include <algorithm>

#include "runtime/chat/jinja_builtins.h"
#include "runtime/chat/jinja_strings.h"

namespace lowbit::jinja {

namespace {

const Value* opt(const Args& a, size_t k, const char* name) { return a.get(k, name); }

std::string str_arg(const Args& a, size_t k, const char* name, const char* method) {
  const Value* v = a.get(k, name);
  if (!v || !v->is_string())
    throw RenderError(std::string(method) + "() argument must be str, not '" + (v ? type_name(*v) : "nothing") + "'");
  return v->str();
}

int64_t int_arg(const Args& a, size_t k, const char* name, int64_t fallback) {
  const Value* v = a.get(k, name);
  if (!v || v->is_none()) return fallback;
  if (v->kind == Kind::integer) return v->i;
  if (v->kind == Kind::boolean) return v->b;
  throw RenderError(std::string("'") + type_name(*v) + "' object cannot be interpreted as an integer");
}

Value strings(std::vector<std::string> parts, Budget& budget) {
  List out;
  for (std::string& p : parts) out.push_back(Value::string(std::move(p)));
  return budget.list(std::move(out));
}

// str.startswith / endswith: a prefix or a tuple (list) of them.
bool affix(const std::string& s, const Value& what, bool start) {
  auto one = [&](const Value& p) {
    if (!p.is_string()) throw RenderError(std::string(start ? "startswith" : "endswith") + " first arg must be str or a tuple of str");
    const std::string& x = p.str();
    if (x.size() > s.size()) return false;
    return start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (what.kind == Kind::list) return std::any_of(what.list->begin(), what.list->end(), one);
  return one(what);
}

// str.format with {} / {0} / {name} fields and {{ }} escapes; format specs are not supported.
std::string format(const std::string& f, const Args& a, Budget& budget) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < f.size(); ++k) {
    const char c = f[k];
    if (c == '}' ) {
      if (k + 1 < f.size() && f[k + 1] == '}') ++k;
      else throw RenderError("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (k + 1 < f.size() && f[k + 1] == '{') {
      out += '{';
      ++k;
      continue;
    }
    const size_t close = f.find('}', k);
    if (close == std::string::npos) throw RenderError("Single '{' encountered in format string");
    const std::string field = f.substr(k + 1, close - k - 1);
    if (field.find_first_of(":!.[") != std::string::npos) throw RenderError("format specs are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < a.pos.size() ? &a.pos[auto_index] : nullptr;
      ++auto_index;
    } else if (std::all_of(field.begin(), field.end(), ::isdigit) && field.size() < 9) {
      const size_t idx = std::stoul(field);
      v = idx < a.pos.size() ? &a.pos[idx] : nullptr;
    } else {
      for (const auto& [n, x] : a.kw)
        if (n == field) v = &x;
    }
    if (!v) throw RenderError("format: no argument for field '{" + field + "}'");
    out += to_str(*v);
    budget.string(out.size());
    k = close;
  }
  return out;
}

bool string_method(const std::string& s, const std::string& name, const Args& a, Budget& budget, Value& r) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value* chars = opt(a, 0, "chars");
    const bool has = chars && !chars->is_none();
    if (has && !chars->is_string()) throw RenderError(name + " arg must be None or str");
    r = budget.str(strip(s, has ? &chars->str() : nullptr, name != "rstrip", name != "lstrip"));
  } else if (name == "split" || name == "rsplit") {
    const Value* sep = opt(a, 0, "sep");
    const int64_t maxsplit = int_arg(a, 1, "maxsplit", -1);
    if (!sep || sep->is_none()) {
      if (name == "rsplit" && maxsplit >= 0) throw RenderError("rsplit(None, maxsplit) is not supported");
      r = strings(split_ws(s, maxsplit), budget);
    } else {
      if (!sep->is_string()) throw RenderError("must be str or None, not " + std::string(type_name(*sep)));
      r = strings(split(s, sep->str(), maxsplit, name == "rsplit"), budget);
    }
  } else if (name == "splitlines") {
    const Value* keep = opt(a, 0, "keepends");
    r = strings(split_lines(s, keep && truthy(*keep)), budget);
  } else if (name == "startswith" || name == "endswith") {
    const Value* what = opt(a, 0, "prefix");
    if (!what) throw RenderError(name + "() takes at least 1 argument");
    r = Value::boolean(affix(s, *what, name == "startswith"));
  } else if (name == "upper") {
    r = budget.str(upper(s));
  } else if (name == "lower") {
    r = budget.str(lower(s));
  } else if (name == "title") {
    r = budget.str(py_title(s));
  } else if (name == "capitalize") {
    r = budget.str(capitalize(s));
  } else if (name == "replace") {
    r = budget.str(replace(s, str_arg(a, 0, "old", "replace"), str_arg(a, 1, "new", "replace"),
                           int_arg(a, 2, "count", -1), budget.limits.max_output));
  } else if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const std::string sub = str_arg(a, 0, "sub", name.c_str());
    const size_t at = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
    if (at == std::string::npos && (name == "index" || name == "rindex")) throw RenderError("substring not found");
    r = Value::integer(at == std::string::npos ? -1 : (int64_t)code_point_count(std::string_view(s).substr(0, at)));
  } else if (name == "count") {
    const std::string sub = str_arg(a, 0, "sub", "count");
    int64_t n = 0;
    if (sub.empty()) {
      n = (int64_t)code_point_count(s) + 1;
    } else {
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    }
    r = Value::integer(n);
  } else if (name == "join") {
    const Value* items = opt(a, 0, "iterable");
    if (!items) throw RenderError("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& x : iterate(*items)) {
      if (!x.is_string()) throw RenderError(std::string("sequence item: expected str instance, ") + type_name(x) + " found");
      if (!first) out += s;
      first = false;
      out += x.str();
      budget.string(out.size());
    }
    r = budget.str(std::move(out));
  } else if (name == "format") {
    r = budget.str(format(s, a, budget));
  } else if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" ||
             name == "islower" || name == "isupper") {
    bool ok = !s.empty();
    if (name == "islower") ok = lower(s) == s && upper(s) != s;
    else if (name == "isupper") ok = upper(s) == s && lower(s) != s;
    else if (name == "isspace") ok = ok && strip(s, nullptr, true, true).empty();
    else
      for (unsigned char c : s) {
        const bool pass = name == "isdigit" ? std::isdigit(c) : name == "isalpha" ? std::isalpha(c) : std::isalnum(c);
        ok = ok && pass;  // ASCII only
      }
    r = Value::boolean(ok);
  } else {
    return false;
  }
  return true;
}

bool dict_method(const Value& d, const std::string& name, const Args& a, Budget& budget, Value& r) {
  if (name == "items" || name == "keys" || name == "values") {
    if (!a.pos.empty() || !a.kw.empty()) throw RenderError(name + "() takes no arguments");
    List out;
    for (const auto& [k, v] : d.dict->items) {
      if (name == "items") out.push_back(Value::of_tuple({Value::string(k), v}));
      else if (name == "keys") out.push_back(Value::string(k));
      else out.push_back(v);
    }
    r = budget.list(std::move(out));
    return true;
  }
  if (name == "get") {
    const Value* key = opt(a, 0, "key");
    if (!key) throw RenderError("get expected at least 1 argument");
    const Value* found = key->is_string() ? d.dict->find(key->str()) : nullptr;
    const Value* def = opt(a, 1, "default");
    r = found ? *found : def ? *def : Value::none();
    return true;
  }
  return false;
}

}  // namespace

bool call_method(const Value& obj, const std::string& name, const Args& args, Budget& budget, Value& result) {
  budget.charge(1);
  if (obj.is_string()) return string_method(obj.str(), name, args, budget, result);
  if (obj.kind == Kind::dict) return dict_method(obj, name, args, budget, result);
  if (obj.kind == Kind::list && (name == "count" || name == "index")) {
    const Value* x = args.get(0, "value");
    if (!x) throw RenderError(name + "() takes exactly one argument");
    int64_t n = 0, at = -1;
    for (size_t k = 0; k < obj.list->size(); ++k)
      if (equal((*obj.list)[k], *x)) {
        if (at < 0) at = (int64_t)k;
        ++n;
      }
    if (name == "index" && at < 0) throw RenderError("value is not in list");
    result = Value::integer(name == "count" ? n : at);
    return true;
  }
  return false;
}

}  // namespace lowbit::jinja
