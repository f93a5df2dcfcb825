#include "runtime/json_schema.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kernels/error.h"

namespace lowbit {

using json = nlohmann::json;

namespace {

constexpr std::string_view kKeywords[] = {"type",     "properties", "required",  "additionalProperties",
                                          "items",    "minItems",   "maxItems",  "minLength",
                                          "maxLength", "enum",      "const",     "anyOf",
                                          "allOf",    "$ref",       "minimum",   "maximum",
                                          "exclusiveMinimum", "exclusiveMaximum"};
constexpr std::string_view kAnnotations[] = {"title",   "description", "default",   "examples",
                                             "format",  "$schema",     "$id",       "$comment",
                                             "deprecated", "readOnly", "writeOnly", "$defs",
                                             "definitions"};

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
                   "allOf of one schema, $ref, and minimum, maximum, exclusiveMinimum, exclusiveMaximum on "
                   "integers)");
      if (key != "$ref" && key != "anyOf" && key != "allOf") validates = true;
    }
    const int combinators = (int)s.contains("$ref") + (int)s.contains("anyOf") + (int)s.contains("allOf");
    if (combinators > 1 || (combinators == 1 && validates))
      fail(path, "$ref, anyOf and allOf are supported only alone (beside annotations)");
    JsonSchema::Node n;
    if (const auto it = s.find("$ref"); it != s.end()) {
      n.any_of.push_back(resolve(*it, path + ".$ref"));
      return n;
    }
    if (const auto it = s.find("anyOf"); it != s.end()) {
      if (!it->is_array() || it->empty()) fail(path + ".anyOf", "must be a non-empty array of schemas");
      for (size_t i = 0; i < it->size(); ++i)
        n.any_of.push_back(compile((*it)[i], path + ".anyOf[" + std::to_string(i) + "]"));
      return n;
    }
    if (const auto it = s.find("allOf"); it != s.end()) {
      if (!it->is_array() || it->size() != 1) fail(path + ".allOf", "only an allOf of exactly one schema is supported");
      n.any_of.push_back(compile((*it)[0], path + ".allOf[0]"));
      return n;
    }
    types(s, path, n);
    bounds(s, path, n);
    options(s, path, n);
    if (n.types & JsonSchema::kObject) object(s, path, n);
    if (n.types & JsonSchema::kArray) {
      if (const auto it = s.find("items"); it != s.end()) {
        if (it->is_array()) fail(path + ".items", "an array of schemas (a tuple) is not supported");
        n.items = it->is_boolean() && !it->get<bool>() ? JsonSchema::kNone : compile(*it, path + ".items");
      }
      n.min_items = count(s, "minItems", path, 0);
      n.max_items = count(s, "maxItems", path, UINT32_MAX);
      if (n.min_items > n.max_items) fail(path, "minItems is above maxItems");
      if (n.min_items > 0 && n.items == JsonSchema::kNone) fail(path, "minItems > 0 with items false allows no value");
    }
    n.min_length = count(s, "minLength", path, 0);
    n.max_length = count(s, "maxLength", path, UINT32_MAX);
    if (n.min_length > n.max_length) fail(path, "minLength is above maxLength");
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
    for (const char* k : {"items", "minItems", "maxItems"})
      if (s.contains(k)) implied |= JsonSchema::kArray;
    for (const char* k : {"minLength", "maxLength"})
      if (s.contains(k)) implied |= JsonSchema::kString;
    if (implied) n.types = implied;
  }

  // An integer's bounds as inclusive int64 ones: minimum 2.5 is 3, exclusiveMaximum 10 is 9.
  void bounds(const json& s, const std::string& path, JsonSchema::Node& n) {
    constexpr double kLimit = 9223372036854775807.0;  // 2^63: past it int64 cannot say the bound
    struct Bound {
      const char* key;
      bool lower, exclusive;
    };
    for (const auto& [key, lower, exclusive] : {Bound{"minimum", true, false}, Bound{"exclusiveMinimum", true, true},
                                                Bound{"maximum", false, false}, Bound{"exclusiveMaximum", false, true}}) {
      const auto it = s.find(key);
      if (it == s.end()) continue;
      const std::string where = path + "." + key;
      if (it->is_boolean())
        fail(where, "draft 4's boolean form is not supported; give the bound itself as the number");
      if (!it->is_number()) fail(where, "must be a number, got " + it->dump());
      if (n.types & JsonSchema::kNumber)
        fail(where, "bounds are supported only where the type is \"integer\" (a number's fraction digits "
                    "cannot be bounded byte by byte here)");
      int64_t bound;
      if (it->is_number_integer()) {
        if (it->is_number_unsigned() && it->get<uint64_t>() > (uint64_t)INT64_MAX)
          fail(where, "must be within +-2^63, got " + it->dump());
        const int64_t v = it->get<int64_t>();
        if (exclusive && v == (lower ? INT64_MAX : INT64_MIN)) fail(where, "leaves no 64-bit integer");
        bound = exclusive ? (lower ? v + 1 : v - 1) : v;
      } else {
        const double v = it->get<double>();
        if (!(std::fabs(v) < kLimit)) fail(where, "must be within +-2^63, got " + it->dump());
        double r = lower ? std::ceil(v) : std::floor(v);
        if (exclusive && r == v) r += lower ? 1 : -1;
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
    if (n.has_min && n.has_max && n.min > n.max) fail(path, "no integer lies within minimum and maximum");
  }

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
      n.options.push_back(v.dump());
    }
    if (n.options.empty()) fail(path, "no value of enum/const has the schema's type");
    std::sort(n.options.begin(), n.options.end());
    n.options.erase(std::unique(n.options.begin(), n.options.end()), n.options.end());
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
};

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
  return s;
}

const JsonSchema& JsonSchema::any_object() {
  static const std::shared_ptr<const JsonSchema> s = compile(json{{"type", "object"}}, "json");
  return *s;
}

}  // namespace lowbit
