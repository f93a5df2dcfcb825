// A JSON Schema compiled for constrained generation (runtime/json_mode.h): the part of the
// standard that can be decided byte by byte while a model writes, which is what Ollama's
// "format": {schema} and OpenAI's response_format {"type": "json_schema"} ask for.
//
// Supported: type (one name or a list), properties, required, additionalProperties (a bool or a
// schema), items, minItems, maxItems, minLength, maxLength, enum, const, anyOf, oneOf whose
// alternatives provably cannot both match a value (distinct types or const/enum values, or
// objects requiring a property with such values: pydantic's tagged unions), allOf of one
// schema, $ref to "#", "#/$defs/NAME" or "#/definitions/NAME" (recursion included), minimum,
// maximum, exclusiveMinimum and exclusiveMaximum (pydantic's Field(ge=, le=, gt=, lt=)), an
// integer's multipleOf (a whole number: Field(multiple_of=) on an int), pattern
// (runtime/json_regex.h says which regular expressions), and the annotations title,
// description, default, examples, format, $schema, $id, $comment, deprecated, readOnly,
// writeOnly, discriminator, and prefixItems (a tuple: pydantic's Tuple[int, str]). Anything
// else (not, patternProperties, propertyNames, ...)
// is refused with an error naming the keyword and where it is: a schema the output might not
// satisfy is not accepted silently.
// Choices where the standard leaves room: an object schema that lists properties admits only
// those unless additionalProperties says otherwise (a model asked for {"name": ...} should not
// add keys), "format" is not checked (it is an annotation in JSON Schema's own default), and a
// number with bounds whose type admits fractions is written with at most kBoundedDigits digits
// and no exponent: then every text it can still become is known exactly, and the bounds are
// decided as a validator parsing the text into a double decides them (json_schema.cc says why).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/json_regex.h"

namespace lowbit {

class JsonSchema {
 public:
  enum Type : uint8_t {
    kObject = 1, kArray = 2, kString = 4, kNumber = 8, kInteger = 16, kBoolean = 32, kNull = 64,
    kAnyType = 127,
  };
  static constexpr int32_t kNone = -1;       // no value allowed (additionalProperties: false)
  static constexpr int32_t kAny = 0;         // node 0 accepts every value
  static constexpr int kMaxProperties = 64;  // per object schema: a bit each in the recognizer
  static constexpr int kMaxNesting = 64;     // schemas inside schemas
  static constexpr int kMaxAlternatives = 64;  // per anyOf, nested ones and $ref links flattened
  static constexpr int kBoundedDigits = 15;    // of a bounded number's text: a double keeps 15 digits
  static constexpr int kUnitDigits = 15;       // bounded numbers are counted in units of 10^-15

  struct Property {
    std::string text;  // the name (UTF-8); a key's escapes are decoded before it is matched
    int32_t node;
  };
  struct Node {
    uint8_t types = kAnyType;
    std::vector<int32_t> any_of;       // not empty: the value satisfies one of these nodes (none an anyOf)
    bool has_options = false;          // enum or const given: the value is one of options
    std::vector<std::string> options;  // each allowed value as compact JSON text, sorted
    std::vector<Property> properties;  // sorted by text
    uint64_t required = 0;             // bit i: properties[i] must be present
    int32_t additional = kAny;         // schema of keys not in properties, or kNone
    int32_t items = kAny;                 // of the items past prefix_items
    std::vector<int32_t> prefix_items;   // prefixItems: the first items' schemas (a tuple)
    uint32_t min_items = 0, max_items = UINT32_MAX;
    uint32_t min_length = 0, max_length = UINT32_MAX;  // characters
    int32_t pattern = kNone;  // a string's pattern (JsonSchema::pattern), the lengths folded in
    // An integer's bounds (type "integer" alone), inclusive: exclusive ones and fractional ones
    // rounded inward.
    bool has_min = false, has_max = false;
    int64_t min = 0, max = 0;
    uint64_t multiple_of = 0;  // an integer's multipleOf (type "integer" alone); 0: none
    // A number's bounds where fractions are allowed, in units of 10^-kUnitDigits: the least and
    // the greatest allowed (an open side is past every value a bounded text can have).
    bool has_number_bounds = false;
    __int128 unit_min = 0, unit_max = 0;
  };

  // Throws Error(invalid_argument) naming the keyword and its place ("format.properties.age:
  // 'minimum' is not supported ..."); where names the schema in the message ("format").
  static std::shared_ptr<const JsonSchema> compile(const nlohmann::json& schema, const std::string& where);
  // The same from JSON text; text that is not JSON is Error(invalid_argument) naming where.
  static std::shared_ptr<const JsonSchema> compile_text(const std::string& text, const std::string& where);
  // Any JSON object: JSON mode.
  static const JsonSchema& any_object();

  // Whether a bounded number's text can still become (or, whole, is) one within node's number
  // bounds: its sign, its digits so far read as one integer (n; the point left out), how many
  // (digits), and how many of those after the point (fraction; -1 before a point, 0 just after).
  static bool number_reachable(const Node& node, bool negative, uint64_t n, int digits, int fraction, bool whole);

  int32_t root() const { return root_; }
  const Node& node(int32_t i) const { return nodes_[i]; }
  const JsonRegex& pattern(int32_t i) const { return patterns_[i]; }

 private:
  JsonSchema();
  friend class SchemaCompiler;
  std::vector<Node> nodes_;
  std::vector<JsonRegex> patterns_;
  int32_t root_ = kAny;
};

}  // namespace lowbit
