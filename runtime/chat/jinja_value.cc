// Python's semantics for printing, comparing and JSON-encoding the template's values.
#include "runtime/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace lowbit::jinja {

const std::string& Value::str() const {
  static const std::string empty;
  return sp ? *sp : empty;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  for (auto& [k, old] : items)
    if (k == key) {
      old = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

Value Value::of_list(List items) {
  Value v = make(Kind::list);
  int d = 0;
  for (const Value& x : items) {
    d = std::max(d, x.depth);
    v.holds_ns = v.holds_ns || x.holds_ns;
  }
  v.depth = d + 1;
  if (v.depth > kMaxValueDepth) throw std::length_error("lists nested too deeply");
  v.list = std::make_shared<const List>(std::move(items));
  return v;
}

Value Value::of_dict(Dict dict) {
  Value v = make(Kind::dict);
  int d = 0;
  for (const auto& kv : dict.items) {
    d = std::max(d, kv.second.depth);
    v.holds_ns = v.holds_ns || kv.second.holds_ns;
  }
  v.depth = d + 1;
  if (v.depth > kMaxValueDepth) throw std::length_error("dicts nested too deeply");
  v.dict = std::make_shared<const Dict>(std::move(dict));
  return v;
}

const char* type_name(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::ns: return "Namespace";
    case Kind::callable: return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return v.b;
    case Kind::integer: return v.i != 0;
    case Kind::floating: return v.f != 0;
    case Kind::string: return !v.str().empty();
    case Kind::list: return !v.list->empty();
    case Kind::dict: return !v.dict->items.empty();
    case Kind::ns:
    case Kind::callable: return true;
  }
  return false;
}

namespace {

double as_double(const Value& v) {
  return v.kind == Kind::floating ? v.f : v.kind == Kind::integer ? (double)v.i : (double)v.b;
}
int64_t as_int(const Value& v) { return v.kind == Kind::integer ? v.i : (int64_t)v.b; }

}  // namespace

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::floating || b.kind == Kind::floating) return as_double(a) == as_double(b);
    return as_int(a) == as_int(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::undefined:
    case Kind::none: return true;
    case Kind::string: return a.str() == b.str();
    case Kind::list: {
      if (a.list->size() != b.list->size() || a.tuple != b.tuple) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    }
    case Kind::dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* w = b.dict->find(k);
        if (!w || !equal(v, *w)) return false;
      }
      return true;
    }
    case Kind::ns: return a.ns == b.ns;
    case Kind::callable: return a.fn == b.fn;
    default: return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::floating || b.kind == Kind::floating) return as_double(a) < as_double(b);
    return as_int(a) < as_int(b);
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 byte order is code point order
  if (a.kind == Kind::list && b.kind == Kind::list) {
    const List &x = *a.list, &y = *b.list;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!equal(x[k], y[k])) return less(x[k], y[k]);
    }
    return x.size() < y.size();
  }
  throw std::invalid_argument(std::string("'<' not supported between instances of '") + type_name(a) +
                              "' and '" + type_name(b) + "'");
}

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // "-1.2345e+02": the shortest digits that round-trip
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exp10 = std::stoi(sci.substr(e + 1));
  std::string out = neg ? "-" : "";
  // Python's repr switches to exponent notation outside 1e-4 <= |x| < 1e16.
  if (exp10 < -4 || exp10 >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    return out + eb;
  }
  if (exp10 < 0) return out + "0." + std::string((size_t)(-exp10 - 1), '0') + digits;
  const size_t point = (size_t)exp10 + 1;
  if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0') + ".0";
  return out + digits.substr(0, point) + "." + digits.substr(point);
}

namespace {

// Decodes one UTF-8 sequence at s[k]; a malformed byte counts as one code point of itself.
size_t utf8_len(std::string_view s, size_t k) {
  const unsigned char c = (unsigned char)s[k];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (k + n > s.size()) return 1;
  for (size_t j = 1; j < n; ++j)
    if (((unsigned char)s[k + j] >> 6) != 2) return 1;
  return n;
}

uint32_t decode_cp(std::string_view s) {
  const unsigned char c = (unsigned char)s[0];
  if (s.size() == 1) return c;
  uint32_t cp = c & (0x7f >> s.size());
  for (size_t j = 1; j < s.size(); ++j) cp = (cp << 6) | ((unsigned char)s[j] & 0x3f);
  return cp;
}

// Python's str.isprintable(), approximated: the control ranges, the separators other than the
// space, and the common invisible format characters are not printable.
bool printable(uint32_t cp) {
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0xa0) || cp == 0xad) return false;
  if ((cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x2064))
    return false;
  if (cp == 0x3000 || cp == 0xfeff || cp == 0x1680 || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  return true;
}

std::string repr_string(const std::string& s) {
  const char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (size_t k = 0; k < s.size();) {
    const size_t n = utf8_len(s, k);
    const std::string_view ch(s.data() + k, n);
    const uint32_t cp = decode_cp(ch);
    k += n;
    if (cp == (uint32_t)q || cp == '\\') {
      out += '\\';
      out += (char)cp;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (printable(cp)) {
      out += ch;
    } else {
      char b[16];
      if (cp < 0x100) std::snprintf(b, sizeof b, "\\x%02x", cp);
      else if (cp < 0x10000) std::snprintf(b, sizeof b, "\\u%04x", cp);
      else std::snprintf(b, sizeof b, "\\U%08x", cp);
      out += b;
    }
  }
  return out + q;
}

void json_string(const std::string& s, bool ensure_ascii, std::string& out) {
  out += '"';
  for (size_t k = 0; k < s.size();) {
    const size_t n = utf8_len(s, k);
    const std::string_view ch(s.data() + k, n);
    const uint32_t cp = decode_cp(ch);
    k += n;
    char b[16];
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7f)) {
      if (cp >= 0x10000) {
        const uint32_t v = cp - 0x10000;
        std::snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
      } else {
        std::snprintf(b, sizeof b, "\\u%04x", cp);
      }
      out += b;
    } else {
      out += ch;
    }
  }
  out += '"';
}

void json_value(const Value& v, const JsonStyle& st, int level, std::string& out) {
  const std::string item_sep = !st.item_sep.empty() ? st.item_sep : st.indent >= 0 ? "," : ", ";
  const std::string key_sep = !st.key_sep.empty() ? st.key_sep : ": ";
  auto newline = [&](int lvl) {
    if (st.indent < 0) return;
    out += '\n';
    out.append((size_t)st.indent * (size_t)lvl, ' ');
  };
  switch (v.kind) {
    case Kind::none: out += "null"; return;
    case Kind::boolean: out += v.b ? "true" : "false"; return;
    case Kind::integer: out += std::to_string(v.i); return;
    case Kind::floating:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f < 0 ? "-Infinity" : "Infinity";
      else out += float_repr(v.f);
      return;
    case Kind::string: json_string(v.str(), st.ensure_ascii, out); return;
    case Kind::list: {
      if (v.list->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_value((*v.list)[k], st, level + 1, out);
      }
      newline(level);
      out += ']';
      return;
    }
    case Kind::dict: {
      if (v.dict->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> kvs;
      for (const auto& kv : v.dict->items) kvs.push_back(&kv);
      if (st.sort_keys)
        std::stable_sort(kvs.begin(), kvs.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t k = 0; k < kvs.size(); ++k) {
        if (k) out += item_sep;
        newline(level + 1);
        json_string(kvs[k]->first, st.ensure_ascii, out);
        out += key_sep;
        json_value(kvs[k]->second, st, level + 1, out);
      }
      newline(level);
      out += '}';
      return;
    }
    default:
      throw std::invalid_argument(std::string("Object of type ") + type_name(v) + " is not JSON serializable");
  }
}

template <class J>
Value from_json_impl(const J& j, int max_depth) {
  if (max_depth <= 0) throw std::invalid_argument("JSON nested too deeply");
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.template get<uint64_t>();
      if (u > (uint64_t)INT64_MAX) return Value::floating((double)u);
      return Value::integer((int64_t)u);
    }
    case nlohmann::json::value_t::number_float: return Value::floating(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::string(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json_impl(x, max_depth - 1));
      return Value::of_list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.items.emplace_back(it.key(), from_json_impl(*it, max_depth - 1));
      return Value::of_dict(std::move(d));
    }
    default: throw std::invalid_argument("unsupported JSON value (binary)");
  }
}

}  // namespace

std::string repr(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "Undefined";
    case Kind::string: return repr_string(v.str());
    case Kind::list: {
      std::string out = v.tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) out += (k ? ", " : "") + repr((*v.list)[k]);
      if (v.tuple) return out + (v.list->size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Kind::dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        out += (first ? "" : ", ") + repr_string(k) + ": " + repr(x);
        first = false;
      }
      return out + "}";
    }
    case Kind::ns: {
      Value d = Value::of_dict(v.ns->attrs);
      return "<Namespace " + repr(d) + ">";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "";
    case Kind::none: return "None";
    case Kind::boolean: return v.b ? "True" : "False";
    case Kind::integer: return std::to_string(v.i);
    case Kind::floating: return float_repr(v.f);
    case Kind::string: return v.str();
    case Kind::callable: return "<function " + v.fn->name + ">";
    default: return repr(v);
  }
}

std::string to_json(const Value& v, const JsonStyle& style) {
  std::string out;
  json_value(v, style, 0, out);
  return out;
}

Value from_json(const nlohmann::json& j, int max_depth) { return from_json_impl(j, max_depth); }
Value from_json(const nlohmann::ordered_json& j, int max_depth) { return from_json_impl(j, max_depth); }

std::vector<std::string_view> code_points(std::string_view s) {
  std::vector<std::string_view> out;
  for (size_t k = 0; k < s.size();) {
    const size_t n = utf8_len(s, k);
    out.emplace_back(s.data() + k, n);
    k += n;
  }
  return out;
}

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  for (size_t k = 0; k < s.size(); k += utf8_len(s, k)) ++n;
  return n;
}

}  // namespace lowbit::jinja
