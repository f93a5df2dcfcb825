#include "runtime/json_schema.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_unicode.h"

namespace lowbit {

using json = nlohmann::json;

namespace {

constexpr std::string_view kKeywords[] = {"type",     "properties", "required",  "additionalProperties",
                                          "items",    "minItems",   "maxItems",  "minLength",
                                          "maxLength", "enum",      "const",     "anyOf",     "oneOf",
                                          "allOf",    "$ref",       "minimum",   "maximum",
                                          "exclusiveMinimum", "exclusiveMaximum", "pattern",  "multipleOf",
                                          "prefixItems"};
constexpr std::string_view kAnnotations[] = {"title",   "description", "default",   "examples",
                                             "format",  "$schema",     "$id",       "$comment",
                                             "deprecated", "readOnly", "writeOnly", "$defs",
                                             "definitions", "discriminator"};  // OpenAPI's, which pydantic writes

template <size_t N>
bool among(const std::string& key, const std::string_view (&list)[N]) {
  return std::find(std::begin(list), std::end(list), key) != std::end(list);
}

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, path + ": " + why);
}

uint8_t type_bit(const json& name, const std::string& path) {
  static const std::map<std::string, uint8_t> kTypes = {
      {"object", JsonSchema::kObject},   {"array", JsonSchema::kArray},     {"string", JsonSchema::kString},
      {"number", JsonSchema::kNumber},   {"integer", JsonSchema::kInteger}, {"boolean", JsonSchema::kBoolean},
      {"null", JsonSchema::kNull}};
  if (name.is_string())
    if (auto it = kTypes.find(name.get<std::string>()); it != kTypes.end()) return it->second;
  fail(path, name.dump() + " is not a JSON Schema type");
}

uint8_t type_of(const json& v) {
  switch (v.type()) {
    case json::value_t::object: return JsonSchema::kObject;
    case json::value_t::array: return JsonSchema::kArray;
    case json::value_t::string: return JsonSchema::kString;
    case json::value_t::boolean: return JsonSchema::kBoolean;
    case json::value_t::null: return JsonSchema::kNull;
    case json::value_t::number_float: {
      const double d = v.get<double>();  // JSON Schema counts 2.0 as an integer
      return d == (double)(int64_t)d ? JsonSchema::kNumber | JsonSchema::kInteger : JsonSchema::kNumber;
    }
    default: return JsonSchema::kNumber | JsonSchema::kInteger;
  }
}

uint32_t count(const json& s, const char* key, const std::string& path, uint32_t fallback) {
  const auto it = s.find(key);
  if (it == s.end()) return fallback;
  if (!it->is_number_unsigned() || it->get<uint64_t>() > UINT32_MAX)
    fail(path + "." + key, "must be a non-negative integer, got " + it->dump());
  return it->get<uint32_t>();
}

}  // namespace

// Fills one node per subschema; a $ref reserves its target's node before compiling it, so a
// recursive schema refers back to a node instead of recursing for ever.
class SchemaCompiler {
 public:
  SchemaCompiler(const json& document, const std::string& where, JsonSchema& out)
      : document_(document), where_(where), out_(out) {}

  int32_t compile(const json& s, const std::string& path) {
    if (depth_ >= JsonSchema::kMaxNesting)
      fail(path, "nested deeper than " + std::to_string(JsonSchema::kMaxNesting) + " schemas");
    if (s.is_boolean()) {
      if (s.get<bool>()) return JsonSchema::kAny;
      fail(path, "the schema false allows no value");
    }
    if (!s.is_object()) fail(path, "a schema must be an object or a boolean, got " + s.dump());
    const int32_t at = (int32_t)out_.nodes_.size();
    out_.nodes_.emplace_back();
    ++depth_;
    JsonSchema::Node n = build(s, path);
    --depth_;
    out_.nodes_[at] = std::move(n);
    return at;
  }

 private:
  JsonSchema::Node build(const json& s, const std::string& path) {
    bool validates = false;  // a keyword other than the combinators and annotations
    for (const auto& [key, value] : s.items()) {
      if (among(key, kAnnotations)) continue;
      if (!among(key, kKeywords))
        fail(path, "'" + key + "' is not supported (constrained generation supports type, properties, required, "
                   "additionalProperties, items, minItems, maxItems, minLength, maxLength, enum, const, anyOf, "
                   "oneOf of alternatives that cannot overlap, allOf of one schema, $ref, minimum, maximum, exclusiveMinimum, "
                   "exclusiveMaximum, pattern, an integer's multipleOf and prefixItems)");
      if (key != "$ref" && key != "anyOf" && key != "oneOf" && key != "allOf") validates = true;
    }
    const int combinators =
        (int)s.contains("$ref") + (int)s.contains("anyOf") + (int)s.contains("oneOf") + (int)s.contains("allOf");
    if (combinators > 1 || (combinators == 1 && validates))
      fail(path, "$ref, anyOf, oneOf and allOf are supported only alone (beside annotations)");
    JsonSchema::Node n;
    if (const auto it = s.find("$ref"); it != s.end()) {
      n.any_of.push_back(resolve(*it, path + ".$ref"));
      return n;
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      const auto it = s.find(key);
      if (it == s.end()) continue;
      const std::string where = path + "." + key;
      if (!it->is_array() || it->empty()) fail(where, "must be a non-empty array of schemas");
      for (size_t i = 0; i < it->size(); ++i) n.any_of.push_back(compile((*it)[i], where + "[" + std::to_string(i) + "]"));
      // oneOf is anyOf once no value can match two alternatives: checked when every node is built.
      if (key[0] == 'o') one_ofs_.push_back({n.any_of, where});
      return n;
    }
    if (const auto it = s.find("allOf"); it != s.end()) {
      if (!it->is_array() || it->size() != 1) fail(path + ".allOf", "only an allOf of exactly one schema is supported");
      n.any_of.push_back(compile((*it)[0], path + ".allOf[0]"));
      return n;
    }
    types(s, path, n);
    bounds(s, path, n);
    multiple(s, path, n);
    options(s, path, n);
    if (n.types & JsonSchema::kObject) object(s, path, n);
    if (n.types & JsonSchema::kArray) {
      if (const auto it = s.find("prefixItems"); it != s.end()) {  // a tuple (pydantic's Tuple[int, str])
        if (!it->is_array()) fail(path + ".prefixItems", "must be an array of schemas");
        for (size_t i = 0; i < it->size(); ++i) {
          const json& item = (*it)[i];
          const std::string where = path + ".prefixItems[" + std::to_string(i) + "]";
          n.prefix_items.push_back(item.is_boolean() && !item.get<bool>() ? JsonSchema::kNone : compile(item, where));
        }
      }
      if (const auto it = s.find("items"); it != s.end()) {
        if (it->is_array())
          fail(path + ".items", "an array of schemas (draft 2019's tuple) is not supported: write it as prefixItems");
        n.items = it->is_boolean() && !it->get<bool>() ? JsonSchema::kNone : compile(*it, path + ".items");
      }
      n.min_items = count(s, "minItems", path, 0);
      n.max_items = count(s, "maxItems", path, UINT32_MAX);
      if (n.min_items > n.max_items) fail(path, "minItems is above maxItems");
      // Items past the tuple follow items; with items false the tuple is the longest array.
      if (n.items == JsonSchema::kNone) n.max_items = std::min<uint32_t>(n.max_items, (uint32_t)n.prefix_items.size());
      for (uint32_t i = 0; i < n.prefix_items.size() && i < n.min_items; ++i)
        if (n.prefix_items[i] == JsonSchema::kNone) fail(path, "prefixItems[" + std::to_string(i) + "] is false below minItems: no value");
      for (uint32_t i = 0; i < n.prefix_items.size(); ++i)  // a false item ends the array before it
        if (n.prefix_items[i] == JsonSchema::kNone) n.max_items = std::min(n.max_items, i);
      if (n.min_items > n.max_items) fail(path, "minItems is more than prefixItems and items false let in: it allows no value");
    }
    n.min_length = count(s, "minLength", path, 0);
    n.max_length = count(s, "maxLength", path, UINT32_MAX);
    if (n.min_length > n.max_length) fail(path, "minLength is above maxLength");
    if (const auto it = s.find("pattern"); it != s.end()) pattern(*it, path, n);
    return n;
  }

  // Without "type", the keywords given say what is meant: properties mean an object, and so on
  // (the standard would let other types through; a model asked for properties wants an object).
  void types(const json& s, const std::string& path, JsonSchema::Node& n) {
    if (const auto it = s.find("type"); it != s.end()) {
      n.types = 0;
      if (it->is_array()) {
        if (it->empty()) fail(path + ".type", "an empty list of types allows no value");
        for (const json& t : *it) n.types |= type_bit(t, path + ".type");
      } else {
        n.types = type_bit(*it, path + ".type");
      }
      return;
    }
    uint8_t implied = 0;
    for (const char* k : {"properties", "required", "additionalProperties"})
      if (s.contains(k)) implied |= JsonSchema::kObject;
    for (const char* k : {"items", "prefixItems", "minItems", "maxItems"})
      if (s.contains(k)) implied |= JsonSchema::kArray;
    for (const char* k : {"minLength", "maxLength", "pattern"})
      if (s.contains(k)) implied |= JsonSchema::kString;
    if (implied) n.types = implied;
  }

  // An integer's multipleOf, a whole number (a remainder is tracked digit by digit); a number
  // that may have a fraction is refused: its multiples are not a grid of short decimals.
  void multiple(const json& s, const std::string& path, JsonSchema::Node& n) {
    const auto it = s.find("multipleOf");
    if (it == s.end()) return;
    const std::string where = path + ".multipleOf";
    if (!it->is_number() || !(it->get<double>() > 0)) fail(where, "must be a number above 0, got " + it->dump());
    if (n.types & JsonSchema::kNumber)
      fail(where, "is supported for type \"integer\" only (a number with a fraction has no short multiples to write)");
    if (!(n.types & JsonSchema::kInteger)) return;
    const double d = it->get<double>();
    if (d != std::floor(d) || d > 9007199254740992.0)
      fail(where, "must be a whole number up to 2^53 for an integer, got " + it->dump());
    n.multiple_of = (uint64_t)d;
    if (n.multiple_of == 1) n.multiple_of = 0;  // every integer
    if (n.multiple_of && n.has_min && n.has_max) {
      const int64_t m = (int64_t)n.multiple_of;
      const int64_t first = n.min >= 0 ? (n.min + m - 1) / m * m : -((-n.min) / m * m);
      if (first > n.max) fail(path, "no multiple of " + it->dump() + " lies within minimum and maximum");
    }
  }

  // Bounds of an integer become inclusive int64 ones (minimum 2.5 is 3, exclusiveMaximum 10 is
  // 9); of a number that may have a fraction, inclusive counts of 10^-15 units.
  void bounds(const json& s, const std::string& path, JsonSchema::Node& n) {
    struct Bound {
      const char* key;
      bool lower, exclusive;
    };
    bool any = false;
    for (const auto& [key, lower, exclusive] : {Bound{"minimum", true, false}, Bound{"exclusiveMinimum", true, true},
                                                Bound{"maximum", false, false}, Bound{"exclusiveMaximum", false, true}}) {
      const auto it = s.find(key);
      if (it == s.end()) continue;
      const std::string where = path + "." + key;
      if (it->is_boolean())
        fail(where, "draft 4's boolean form is not supported; give the bound itself as the number");
      if (!it->is_number()) fail(where, "must be a number, got " + it->dump());
      any = true;
      if (n.types & JsonSchema::kNumber) number_bound(*it, where, lower, exclusive, n);
      else integer_bound(*it, where, lower, exclusive, n);
    }
    if (!any) return;
    if (n.types & JsonSchema::kNumber) {  // has_min/has_max said which sides were given
      if (!n.has_min) n.unit_min = -kUnitsPastAll;
      if (!n.has_max) n.unit_max = kUnitsPastAll;
      n.has_number_bounds = true;
      n.has_min = n.has_max = false;
      if (!JsonSchema::number_reachable(n, false, 0, 0, -1, false) && !JsonSchema::number_reachable(n, true, 0, 0, -1, false))
        fail(path, "no number of at most " + std::to_string(JsonSchema::kBoundedDigits) +
                       " digits lies within minimum and maximum");
    } else if (n.has_min && n.has_max && n.min > n.max) {
      fail(path, "no integer lies within minimum and maximum");
    }
  }

  static void integer_bound(const json& v, const std::string& where, bool lower, bool exclusive, JsonSchema::Node& n) {
    constexpr double kLimit = 9223372036854775807.0;  // 2^63: past it int64 cannot say the bound
    int64_t bound;
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)INT64_MAX)
        fail(where, "must be within +-2^63, got " + v.dump());
      const int64_t i = v.get<int64_t>();
      if (exclusive && i == (lower ? INT64_MAX : INT64_MIN)) fail(where, "leaves no 64-bit integer");
      bound = exclusive ? (lower ? i + 1 : i - 1) : i;
    } else {
      const double d = v.get<double>();
      if (!(std::fabs(d) < kLimit)) fail(where, "must be within +-2^63, got " + v.dump());
      double r = lower ? std::ceil(d) : std::floor(d);
      if (exclusive && r == d) r += lower ? 1 : -1;
      bound = (int64_t)r;
    }
    if (lower) {
      if (!n.has_min || bound > n.min) n.min = bound;
      n.has_min = true;
    } else {
      if (!n.has_max || bound < n.max) n.max = bound;
      n.has_max = true;
    }
  }

  // A number below 2^52 in units of 10^-15, rounded down and up. Its decimal is the shortest that
  // reads back as the same double: a text of at most 15 digits reads as that double only if it is
  // that decimal (two decimals of 15 digits never read as one double), and below 2^52 a double
  // that reads as an integer is that integer, so comparing decimals exactly decides as a
  // validator comparing doubles (or Python's exact int/float comparison) does.
  static void to_units(const json& v, __int128& floor_u, __int128& ceil_u) {
    std::string text = v.dump();
    if (!v.is_number_integer()) {
      const double d = v.get<double>();
      char buf[40];
      for (int digits = 1; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
        if (std::strtod(buf, nullptr) == d) break;
      }
      text = buf;
    }
    // text = [-]digits[.digits][e[+-]digits]: the value is m * 10^exp10.
    bool negative = false;
    __int128 m = 0;
    int exp10 = 0;
    size_t i = 0;
    if (text[i] == '-') negative = true, ++i;
    bool point = false;
    for (; i < text.size() && text[i] != 'e'; ++i) {
      if (text[i] == '.') point = true;
      else m = m * 10 + (text[i] - '0'), exp10 -= point ? 1 : 0;
    }
    if (i < text.size()) exp10 += std::atoi(text.c_str() + i + 1);
    const int shift = exp10 + JsonSchema::kUnitDigits;
    if (shift >= 0) {
      for (int k = 0; k < shift; ++k) m *= 10;
      floor_u = ceil_u = negative ? -m : m;
    } else if (-shift > 30) {  // far below one unit
      floor_u = m == 0 ? 0 : negative ? -1 : 0;
      ceil_u = m == 0 ? 0 : negative ? 0 : 1;
    } else {
      __int128 div = 1;
      for (int k = 0; k < -shift; ++k) div *= 10;
      const __int128 q = m / div;
      const bool exact = m % div == 0;
      floor_u = negative ? -(q + (exact ? 0 : 1)) : q;
      ceil_u = negative ? -q : q + (exact ? 0 : 1);
    }
  }

  static constexpr double kNumberLimit = 4503599627370496.0;  // 2^52

  static void number_bound(const json& v, const std::string& where, bool lower, bool exclusive, JsonSchema::Node& n) {
    if (!(std::fabs(v.get<double>()) < kNumberLimit))
      fail(where, "must be within +-2^52 for a number that may have a fraction, got " + v.dump());
    __int128 floor_u, ceil_u;
    to_units(v, floor_u, ceil_u);
    const bool exact = floor_u == ceil_u;  // every text counts whole units: round inward
    if (lower) {
      const __int128 b = exclusive && exact ? ceil_u + 1 : ceil_u;
      if (!n.has_min || b > n.unit_min) n.unit_min = b;
      n.has_min = true;
    } else {
      const __int128 b = exclusive && exact ? floor_u - 1 : floor_u;
      if (!n.has_max || b < n.unit_max) n.unit_max = b;
      n.has_max = true;
    }
  }

  // An enum/const number within a number's bounds (matched as its text, so any length).
  static bool option_within(const json& v, const JsonSchema::Node& n) {
    const double d = v.get<double>();
    if (!(std::fabs(d) < kNumberLimit)) return d > 0 ? n.unit_max == kUnitsPastAll : n.unit_min == -kUnitsPastAll;
    __int128 floor_u, ceil_u;
    to_units(v, floor_u, ceil_u);
    return floor_u >= n.unit_min && ceil_u <= n.unit_max;  // between two units: only when both are inside
  }

  static constexpr __int128 kUnitsPastAll = (__int128)1000000000000000ll * 1000000000000000ll * 10;  // 10^31

  void options(const json& s, const std::string& path, JsonSchema::Node& n) {
    std::vector<json> values;
    if (const auto it = s.find("enum"); it != s.end()) {
      if (!it->is_array() || it->empty()) fail(path + ".enum", "must be a non-empty array");
      values.assign(it->begin(), it->end());
    }
    if (const auto it = s.find("const"); it != s.end()) {
      if (s.contains("enum") && std::find(values.begin(), values.end(), *it) == values.end())
        fail(path, "const is not among enum's values: no value is allowed");
      values.assign(1, *it);
    }
    if (!s.contains("enum") && !s.contains("const")) return;
    n.has_options = true;
    for (const json& v : values) {  // an integer has both number bits, so "number" takes it too
      if (!(type_of(v) & n.types)) continue;
      if (v.is_number() && (n.has_min || n.has_max)) {
        const double d = v.get<double>();
        if ((n.has_min && d < (double)n.min) || (n.has_max && d > (double)n.max)) continue;
      }
      if (v.is_number() && n.has_number_bounds && !option_within(v, n)) continue;
      if (v.is_number_integer() && n.multiple_of && (v.is_number_unsigned() ? v.get<uint64_t>() % n.multiple_of
                                                                           : (uint64_t{0} - (uint64_t)v.get<int64_t>()) % n.multiple_of))
        continue;
      n.options.push_back(v.dump());
    }
    if (n.options.empty()) fail(path, "no value of enum/const has the schema's type");
    std::sort(n.options.begin(), n.options.end());
    n.options.erase(std::unique(n.options.begin(), n.options.end()), n.options.end());
  }

  // Enum/const strings are matched as text, so the pattern picks among them; any other string
  // goes through the pattern's automaton, with the lengths folded in.
  void pattern(const json& p, const std::string& path, JsonSchema::Node& n) {
    if (!p.is_string()) fail(path + ".pattern", "must be a string, got " + p.dump());
    if (!(n.types & JsonSchema::kString)) return;
    const std::string where = path + ".pattern";
    JsonRegex re = JsonRegex::compile(p.get<std::string>(), where, n.min_length, n.max_length);
    if (n.has_options) {
      std::vector<std::string> kept;
      for (const std::string& o : n.options) {
        const json v = json::parse(o);
        if (!v.is_string() || re.matches(code_points(v.get<std::string>()))) kept.push_back(o);
      }
      if (kept.empty()) fail(path, "no value of enum/const matches the pattern");
      n.options = std::move(kept);
      return;
    }
    n.pattern = (int32_t)out_.patterns_.size();
    out_.patterns_.push_back(std::move(re));
  }

  static std::u32string code_points(const std::string& s) {  // of valid UTF-8 (nlohmann's strings are)
    std::u32string out;
    char32_t code;
    bool ok;
    for (size_t i = 0; i < s.size(); out.push_back(code)) i += tok::utf8_next(s, i, code, ok);
    return out;
  }

  void object(const json& s, const std::string& path, JsonSchema::Node& n) {
    const auto props = s.find("properties");
    const auto extra = s.find("additionalProperties");
    if (extra == s.end()) n.additional = props == s.end() ? JsonSchema::kAny : JsonSchema::kNone;
    else if (extra->is_boolean()) n.additional = extra->get<bool>() ? JsonSchema::kAny : JsonSchema::kNone;
    else n.additional = compile(*extra, path + ".additionalProperties");
    std::vector<std::pair<std::string, int32_t>> named;  // name, node
    if (props != s.end()) {
      if (!props->is_object()) fail(path + ".properties", "must be an object of schemas");
      for (const auto& [name, sub] : props->items()) named.emplace_back(name, compile(sub, path + ".properties." + name));
    }
    std::vector<std::string> required;
    if (const auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) fail(path + ".required", "must be an array of names");
      for (const json& r : *it) {
        if (!r.is_string()) fail(path + ".required", "must be an array of names, got " + r.dump());
        const std::string name = r.get<std::string>();
        required.push_back(name);
        if (std::none_of(named.begin(), named.end(), [&](const auto& p) { return p.first == name; })) {
          if (n.additional == JsonSchema::kNone)
            fail(path + ".required", "'" + name + "' is not in properties and other keys are not allowed");
          named.emplace_back(name, n.additional);
        }
      }
    }
    if ((int)named.size() > JsonSchema::kMaxProperties)
      fail(path + ".properties", "more than " + std::to_string(JsonSchema::kMaxProperties) + " properties");
    for (const auto& [name, node] : named) n.properties.push_back({name, node});
    std::vector<size_t> order(named.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return n.properties[a].text < n.properties[b].text; });
    std::vector<JsonSchema::Property> sorted;
    for (size_t i : order) {
      if (std::find(required.begin(), required.end(), named[i].first) != required.end())
        n.required |= uint64_t(1) << sorted.size();
      sorted.push_back(n.properties[i]);
    }
    n.properties = std::move(sorted);
  }

  int32_t resolve(const json& ref, const std::string& path) {
    if (!ref.is_string()) fail(path, "must be a string");
    const std::string r = ref.get<std::string>();
    if (auto it = refs_.find(r); it != refs_.end()) return it->second;
    const json* target = nullptr;
    std::string target_path = where_;
    if (r == "#") {
      target = &document_;
    } else {
      for (const char* defs : {"$defs", "definitions"}) {
        const std::string prefix = std::string("#/") + defs + "/";
        if (r.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string name = r.substr(prefix.size());
        if (const auto d = document_.find(defs); d != document_.end() && d->is_object() && d->contains(name)) {
          target = &(*d)[name];
          target_path = where_ + "." + defs + "." + name;
        }
      }
    }
    if (!target) fail(path, "'" + r + "' is not \"#\" or a schema under \"#/$defs/\" or \"#/definitions/\" of this document");
    if (target->is_boolean()) return refs_[r] = compile(*target, target_path);
    const int32_t at = (int32_t)out_.nodes_.size();  // reserved first: the target may refer to itself
    out_.nodes_.emplace_back();
    refs_[r] = at;
    ++depth_;
    JsonSchema::Node n = build(*target, target_path);
    --depth_;
    out_.nodes_[at] = std::move(n);
    return at;
  }

  const json& document_;
  const std::string where_;
  JsonSchema& out_;
  std::map<std::string, int32_t> refs_;
  int depth_ = 0;

 public:
  struct OneOf {
    std::vector<int32_t> alternatives;
    std::string path;
  };
  std::vector<OneOf> one_ofs_;
};

namespace {

// Whether no value can match both a and b (each a set of nodes, none an anyOf): false when it
// cannot tell. Distinct types, distinct enum/const values, or objects that both require a
// property whose schemas are disjoint in turn (a discriminator: pydantic's tagged unions). The
// work is bounded (objects of many required properties referring to themselves could otherwise
// make it exponential); past the bound the answer is "cannot tell".
class Disjoint {
 public:
  explicit Disjoint(const JsonSchema& s) : s_(s) {}

  bool sets(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int depth) {
    for (int32_t x : a)
      for (int32_t y : b)
        if (!nodes(x, y, depth)) return false;
    return true;
  }
  std::vector<int32_t> leaves_of(int32_t node) const {
    const auto& alts = s_.node(node).any_of;
    return alts.empty() ? std::vector<int32_t>{node} : alts;
  }

 private:
  static uint8_t value_types(const JsonSchema::Node& n) {
    constexpr uint8_t kNumeric = JsonSchema::kNumber | JsonSchema::kInteger;  // "number" takes 2 too
    uint8_t t = n.has_options ? 0 : n.types;
    for (const std::string& o : n.options) t |= type_of(json::parse(o));
    return t & kNumeric ? t | kNumeric : t;
  }

  bool nodes(int32_t ia, int32_t ib, int depth) {
    if (--budget_ < 0) return false;
    const JsonSchema::Node &a = s_.node(ia), &b = s_.node(ib);
    if (!(value_types(a) & value_types(b))) return true;
    if (a.has_options && b.has_options) {
      std::vector<std::string> both;
      std::set_intersection(a.options.begin(), a.options.end(), b.options.begin(), b.options.end(),
                            std::back_inserter(both));
      return both.empty();
    }
    if (depth >= kMaxDepth || a.has_options || b.has_options || a.types != JsonSchema::kObject ||
        b.types != JsonSchema::kObject)
      return false;
    for (size_t i = 0; i < a.properties.size(); ++i) {
      if (!((a.required >> i) & 1)) continue;
      for (size_t j = 0; j < b.properties.size(); ++j)
        if (((b.required >> j) & 1) && a.properties[i].text == b.properties[j].text &&
            sets(leaves_of(a.properties[i].node), leaves_of(b.properties[j].node), depth + 1))
          return true;
    }
    return false;
  }

  static constexpr int kMaxDepth = 8;
  const JsonSchema& s_;
  int budget_ = 100000;  // node pairs compared, per schema
};

}  // namespace

JsonSchema::JsonSchema() : nodes_(1) {}  // node 0: any value

std::shared_ptr<const JsonSchema> JsonSchema::compile(const json& schema, const std::string& where) {
  std::shared_ptr<JsonSchema> s(new JsonSchema());
  SchemaCompiler c(schema, where, *s);
  s->root_ = c.compile(schema, where);
  // A value must start somewhere: anyOf/$ref links alone may not lead back to where they began
  // ({"$ref": "#"}), or the recognizer would find no first byte.
  std::vector<uint8_t> state(s->nodes_.size(), 0);  // 0 unvisited, 1 on the path, 2 done
  std::function<void(int32_t)> visit = [&](int32_t i) {
    if (state[i] == 1) fail(where, "$ref/anyOf lead back to themselves with no value between");
    if (state[i] == 2) return;
    state[i] = 1;
    for (int32_t next : s->nodes_[i].any_of) visit(next);
    state[i] = 2;
  };
  for (int32_t i = 0; i < (int32_t)s->nodes_.size(); ++i) visit(i);
  // Each anyOf lists the schemas that can start a value directly (nested anyOf and $ref links
  // flattened), so a value's first byte tries each once; a schema that would make that a long
  // search (anyOf nested in anyOf, each doubling) is refused.
  std::vector<std::vector<int32_t>> leaves(s->nodes_.size());
  std::vector<bool> flat(s->nodes_.size(), false);
  std::function<const std::vector<int32_t>&(int32_t)> flatten = [&](int32_t i) -> const std::vector<int32_t>& {
    if (flat[i]) return leaves[i];
    std::vector<int32_t> out;
    for (int32_t next : s->nodes_[i].any_of) {
      if (s->nodes_[next].any_of.empty()) out.push_back(next);
      else for (int32_t leaf : flatten(next)) out.push_back(leaf);
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      if ((int)out.size() > kMaxAlternatives)
        fail(where, "anyOf/$ref lead to more than " + std::to_string(kMaxAlternatives) + " alternatives");
    }
    flat[i] = true;
    return leaves[i] = std::move(out);
  };
  for (int32_t i = 0; i < (int32_t)s->nodes_.size(); ++i) flatten(i);
  for (int32_t i = 0; i < (int32_t)s->nodes_.size(); ++i)
    if (!s->nodes_[i].any_of.empty()) s->nodes_[i].any_of = leaves[i];
  Disjoint disjoint(*s);
  for (const auto& one_of : c.one_ofs_)
    for (size_t i = 0; i < one_of.alternatives.size(); ++i)
      for (size_t j = i + 1; j < one_of.alternatives.size(); ++j)
        if (!disjoint.sets(disjoint.leaves_of(one_of.alternatives[i]), disjoint.leaves_of(one_of.alternatives[j]), 0))
          fail(one_of.path, "alternatives " + std::to_string(i) + " and " + std::to_string(j) +
                                " may both match one value; oneOf is supported where none can (distinct types or "
                                "const/enum values, or objects that require a property with such values, as "
                                "pydantic's tagged unions): anyOf says 'any of them will do'");
  return s;
}

namespace {

using i128 = __int128;

i128 pow10(int k) {
  i128 r = 1;
  while (k-- > 0) r *= 10;
  return r;
}

i128 ceil_div(i128 a, i128 b) {  // b > 0
  const i128 q = a / b;
  return q + (a % b != 0 && a > 0 ? 1 : 0);
}

// Whether a multiple of step lies in [lo, hi] and within the node's bounds.
bool grid_meets(const JsonSchema::Node& n, i128 lo, i128 hi, i128 step) {
  lo = std::max(lo, n.unit_min);
  hi = std::min(hi, n.unit_max);
  return lo <= hi && ceil_div(lo, step) * step <= hi;
}

}  // namespace

// What a text can still become, in units of 10^-15 (every such value is a whole number of
// them): with r digits left, a point already read after f fraction digits leaves the multiples
// of 10^-(f+r) from n * 10^-f up to the next multiple of 10^-f; before a point, k more integer
// digits (none after a leading 0) and up to r - k fraction digits leave the multiples of
// 10^-(r-k) from n * 10^k up to (n + 1) * 10^k. Below 10^15 all of it fits in 128 bits.
bool JsonSchema::number_reachable(const Node& node, bool negative, uint64_t n, int digits, int fraction, bool whole) {
  const auto meets = [&](i128 a, i128 b, i128 step) {
    return negative ? grid_meets(node, -b, -a, step) : grid_meets(node, a, b, step);
  };
  if (digits > kBoundedDigits) return false;
  if (whole) {
    if (digits == 0 || fraction == 0) return false;
    const i128 v = (i128)n * pow10(kUnitDigits - std::max(fraction, 0));
    return meets(v, v, 1);
  }
  if (digits == 0) {  // nothing or "-": the first digit is still to come
    for (uint64_t d = 0; d <= 9; ++d)
      if (number_reachable(node, negative, d, 1, -1, false)) return true;
    return false;
  }
  const int left = kBoundedDigits - digits;
  if (fraction >= 0) {
    if (fraction == 0 && left == 0) return false;  // a point needs a digit after it
    const i128 step = pow10(kUnitDigits - (fraction + left));
    const i128 a = (i128)n * pow10(kUnitDigits - fraction);
    return meets(a, a + pow10(kUnitDigits - fraction) - step, step);
  }
  for (int k = 0; k <= (n == 0 ? 0 : left); ++k) {
    const i128 step = pow10(kUnitDigits - (left - k));
    const i128 a = (i128)n * pow10(kUnitDigits + k);
    if (meets(a, a + pow10(kUnitDigits + k) - step, step)) return true;
  }
  return false;
}

std::shared_ptr<const JsonSchema> JsonSchema::compile_text(const std::string& text, const std::string& where) {
  const json parsed = json::parse(text, nullptr, false);
  if (parsed.is_discarded()) fail(where, "the schema is not valid JSON");
  return compile(parsed, where);
}

const JsonSchema& JsonSchema::any_object() {
  static const std::shared_ptr<const JsonSchema> s = compile(json{{"type", "object"}}, "json");
  return *s;
}

}  // namespace lowbit
