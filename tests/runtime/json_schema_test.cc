// JSON schemas in constrained generation (runtime/json_schema.h, runtime/json_mode.h): the
// recognizer against the `jsonschema` package on the texts of tests/data/json_schema_cases.json
// (tests/tools/make_json_schema_cases.py: instances drawn from 55 schemas, 14 with patterns, 4
// with oneOf, 5 with multipleOf, 4 with prefixItems and one anyOf of 10; their one-byte mutations
// and near misses, labelled by the validator), and the refusals of what it cannot enforce.
// Generation under a schema is checked end to end through the server's clients
// (tests/python/test_serve_schema.py).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/json_mode.h"
#include "runtime/json_schema.h"
#include "tests/convert/hf_test_util.h"

namespace lowbit {
namespace {

bool starts_number(const std::string& text) {
  const size_t i = text.find_first_not_of(" \t\n\r");
  return i != std::string::npos && (text[i] == '-' || (text[i] >= '0' && text[i] <= '9'));
}

TEST(JsonSchema, AgreesWithTheJsonschemaPackageOnEveryCase) {
  const auto rows = nlohmann::json::parse(test::read_file(test::kSourceDir + "/tests/data/json_schema_cases.json"));
  ASSERT_GE(rows.size(), 55u);
  int valid = 0, invalid = 0;
  for (const auto& row : rows) {
    const auto schema = JsonSchema::compile(row.at("schema"), "format");
    for (const auto& c : row.at("cases")) {
      const std::string text = c.at("text");
      const bool ok = c.at("valid");
      JsonPrefix p(*schema);
      size_t fed = 0;
      while (fed < text.size() && p.feed((unsigned char)text[fed])) {
        ++fed;
        // Whole only at the last byte, unless a top-level number could have stopped earlier.
        if (ok && fed < text.size() && !starts_number(text))
          ASSERT_FALSE(p.complete()) << "complete after " << fed << " bytes of " << text << "\nschema "
                                     << row.at("schema").dump();
      }
      const bool accepted = fed == text.size() && p.complete();
      EXPECT_EQ(accepted, ok) << (ok ? "refused byte " + std::to_string(fed) + " of " : "accepted ") << text
                              << "\nschema " << row.at("schema").dump();
      (ok ? valid : invalid)++;
    }
  }
  EXPECT_GT(valid, 800);
  EXPECT_GT(invalid, 800);
}

// No dead ends: from wherever a valid text's prefix leads, random walks over the bytes the
// recognizer accepts never reach a state that accepts no byte and is not whole. (A \u escape in a
// key of a closed object once could: "coun\u20" fits no property's name, whatever follows.)
TEST(JsonSchema, EveryAcceptedPrefixCanStillEnd) {
  const auto rows = nlohmann::json::parse(test::read_file(test::kSourceDir + "/tests/data/json_schema_cases.json"));
  std::mt19937 rng(7);
  int walks = 0;
  for (const auto& row : rows) {
    const auto schema = JsonSchema::compile(row.at("schema"), "format");
    for (const auto& c : row.at("cases")) {
      if (!c.at("valid")) continue;
      const std::string text = c.at("text");
      JsonPrefix p(*schema);
      for (size_t at = 0; at < text.size(); ++at) {
        ASSERT_TRUE(p.feed((unsigned char)text[at]));
        if (at % 5 != 0) continue;
        JsonPrefix walk = p;
        std::string path = text.substr(0, at + 1);
        for (int step = 0; step < 8; ++step, ++walks) {
          std::vector<int> next;
          for (int b = 0; b < 256; ++b)
            if (JsonPrefix(walk).feed((unsigned char)b)) next.push_back(b);
          ASSERT_TRUE(!next.empty() || walk.complete()) << "dead end after " << path << "\nschema "
                                                        << row.at("schema").dump();
          if (next.empty()) break;
          const int b = next[rng() % next.size()];
          walk.feed((unsigned char)b);
          path += (char)b;
        }
      }
    }
  }
  EXPECT_GT(walks, 50000);
}

// Groups that hold no character repeat to the empty string however they are counted: nested
// counts of them compile at once (a request could otherwise ask for 10^12 steps).
TEST(JsonSchema, PatternsOfEmptyGroupsCompileAtOnce) {
  const JsonRegex re = JsonRegex::compile("(((((){1000}){1000}){1000}){1000})*a", "format.pattern");
  EXPECT_TRUE(re.matches(U"xya"));  // search semantics: an "a" anywhere
  EXPECT_FALSE(re.matches(U"xyz"));
}

TEST(JsonSchema, RefusesWhatItCannotEnforceNamingWhere) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type": "string", "pattern": "(?=a)a"})", "format.pattern: pattern at character 1 has lookaround"},
      {R"({"type": "string", "pattern": "(a)\\1"})", "format.pattern: pattern at character 3 has a backreference"},
      {R"({"type": "string", "pattern": "\\bword"})", "format.pattern: pattern at character 0 has \\b"},
      {R"({"type": "string", "pattern": "a^b"})", "'^' other than as the pattern's first character"},
      {R"({"type": "string", "pattern": "a$|b"})", "'$' other than as the pattern's last character"},
      {R"({"type": "string", "pattern": "^a|b"})", "'|' beside an anchor"},
      {R"({"type": "string", "pattern": "a|b$"})", "'$' after a '|'"},
      {R"({"type": "string", "pattern": "a{,3}"})", "a '{' that is not a quantifier"},
      {R"({"type": "string", "pattern": "a{3,2}"})", "with n > m"},
      {R"({"type": "string", "pattern": "*a"})", "a quantifier with nothing to repeat"},
      {R"({"type": "string", "pattern": "a**"})", "a quantifier after a quantifier"},
      {R"({"type": "string", "pattern": "(ab"})", "a '(' without its ')'"},
      {R"j({"type": "string", "pattern": "ab)"})j", "an unmatched ')'"},
      {R"({"type": "string", "pattern": "[ab"})", "pattern at character 0 has a '[' without its ']'"},
      {R"({"type": "string", "pattern": "[z-a]"})", "a range whose end is below its start"},
      {R"({"type": "string", "pattern": "[\\d-z]"})", "a range with a class escape"},
      {R"({"type": "string", "pattern": "\\p{L}"})", "the escape \\p"},
      {R"({"type": "string", "pattern": "\\u{1F600}"})", "\\u{...}"},
      {R"({"type": "string", "pattern": "[\\uD800-\\uDFFF]"})", "a class that matches no character"},
      {R"({"type": "string", "pattern": "^[a-z]{40}[0-9]{30}$"})", "more than 62 character positions"},
      {R"({"type": "string", "pattern": "a{1001}"})", "repeats more than 1000 times"},
      {R"({"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5})", "with both minLength and maxLength"},
      {R"({"type": "string", "pattern": "^[a-z]{6}$", "maxLength": 5})", "no string within minLength and maxLength"},
      {R"({"type": "string", "pattern": 5})", "format.pattern: must be a string"},
      {R"({"enum": ["x", "y"], "pattern": "^a"})", "format: no value of enum/const matches the pattern"},
      {R"({"properties": {"price": {"type": "number", "maximum": 1e300}}})",
       "format.properties.price.maximum: must be within +-2^52 for a number that may have a fraction"},
      {R"({"type": "number", "minimum": 1e-16, "maximum": 2e-16})",
       "format: no number of at most 15 digits lies within minimum and maximum"},
      {R"({"exclusiveMinimum": 1, "exclusiveMaximum": 1})", "format: no number of at most 15 digits"},
      {R"({"type": "integer", "exclusiveMinimum": true})", "format.exclusiveMinimum: draft 4's boolean form"},
      {R"({"type": "integer", "minimum": "1"})", "format.minimum: must be a number"},
      {R"({"type": "integer", "minimum": 1e30})", "format.minimum: must be within +-2^63"},
      {R"({"type": "integer", "minimum": 5, "exclusiveMaximum": 5})", "format: no integer lies within"},
      {R"({"type": "integer", "minimum": 2.5, "maximum": 2.9})", "format: no integer lies within"},
      {R"({"type": "number", "multipleOf": 0.01})", "format.multipleOf: is supported for type \"integer\" only"},
      {R"({"type": "integer", "multipleOf": 2.5})", "format.multipleOf: must be a whole number"},
      {R"({"type": "integer", "multipleOf": 0})", "format.multipleOf: must be a number above 0"},
      {R"({"type": "integer", "multipleOf": 10, "minimum": 1, "maximum": 9})", "format: no multiple of 10 lies within"},
      {R"({"type": "integer", "multipleOf": 3, "enum": [1, 2]})", "no value of enum/const"},
      {R"({"type": "integer", "not": {"const": 2}})", "format: 'not' is not supported"},
      {R"({"oneOf": [{"type": "string"}, {"type": "string", "maxLength": 3}]})",
       "format.oneOf: alternatives 0 and 1 may both match one value"},
      {R"({"oneOf": [{"type": "number"}, {"type": "null"}, {"type": "integer"}]})", "alternatives 0 and 2 may both"},
      {R"({"oneOf": [{"enum": ["a", 1]}, {"type": "integer"}]})", "alternatives 0 and 1 may both"},
      {R"({"oneOf": [{"properties": {"k": {"const": 1}}}, {"properties": {"k": {"const": 2}}}]})",
       "alternatives 0 and 1 may both"},  // k is not required: {} matches both
      {R"({"$defs": {"a": {"properties": {"k": {"const": 1}, "x": {"$ref": "#/$defs/a"}}, "required": ["x"]}},
           "oneOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/a"}]})", "format.oneOf: alternatives 0 and 1"},
      {R"({"oneOf": []})", "format.oneOf: must be a non-empty array"},
      {R"({"type": "object", "oneOf": [{"type": "object"}]})", "supported only alone"},
      {R"({"items": [{"type": "string"}]})", "format.items: an array of schemas"},
      {R"({"prefixItems": {"type": "string"}})", "format.prefixItems: must be an array of schemas"},
      {R"({"prefixItems": [{"type": "string"}, false], "minItems": 2})", "prefixItems[1] is false below minItems"},
      {R"({"prefixItems": [{"type": "string"}], "items": false, "minItems": 2})", "it allows no value"},
      {R"({"$ref": "#/$defs/missing"})", "format.$ref: '#/$defs/missing'"},
      {R"({"$ref": "#"})", "lead back to themselves"},
      {R"({"type": "strin"})", "format.type: \"strin\" is not a JSON Schema type"},
      {R"(false)", "format: the schema false allows no value"},
      {R"({"enum": []})", "format.enum: must be a non-empty array"},
      {R"({"type": "string", "enum": [1, 2]})", "no value of enum/const has the schema's type"},
      {R"({"minItems": 3, "maxItems": 1})", "minItems is above maxItems"},
      {R"({"type": "string", "maxLength": -1})", "format.maxLength: must be a non-negative integer"},
      {R"({"properties": {"a": {}}, "required": ["b"]})", "format.required: 'b' is not in properties"},
      {R"({"type": "string", "anyOf": [{"maxLength": 2}]})", "supported only alone"},
      {R"({"type": "array", "items": false, "minItems": 1})", "allows no value"},
      {R"("string")", "a schema must be an object or a boolean"},
  };
  for (const auto& [schema, message] : cases) {
    try {
      JsonSchema::compile(nlohmann::json::parse(schema), "format");
      ADD_FAILURE() << "accepted " << schema;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << schema;
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << schema << " -> " << e.what();
    }
  }
}

// What would make a request expensive is refused when the schema is read: nesting past what
// the compiler recurses into, and anyOf inside anyOf whose alternatives multiply.
TEST(JsonSchema, RefusesSchemasThatWouldCostTooMuch) {
  nlohmann::json deep = {{"type", "string"}};
  for (int i = 0; i < JsonSchema::kMaxNesting; ++i) deep = {{"items", deep}};
  EXPECT_THROW(JsonSchema::compile(deep, "format"), Error);
  EXPECT_NO_THROW(JsonSchema::compile(deep["items"], "format"));
  nlohmann::json wide = {{"type", "integer"}};
  for (int i = 0; i < 7; ++i) wide = {{"anyOf", {wide, wide}}};  // 2^7 = 128 schemas once flattened
  try {
    JsonSchema::compile(wide, "format");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 64 alternatives"), std::string::npos) << e.what();
  }
}

// A long enum is matched by bisection: every one of 5,000 values is accepted, a near miss is not.
TEST(JsonSchema, LongEnumsMatchEveryValue) {
  nlohmann::json values = nlohmann::json::array();
  for (int i = 0; i < 5000; ++i) values.push_back("v" + std::to_string(i * 7));
  const auto s = JsonSchema::compile({{"enum", values}}, "format");
  for (const auto& v : values) {
    JsonPrefix p(*s);
    ASSERT_TRUE(p.feed(v.dump()) && p.complete()) << v;
  }
  JsonPrefix miss(*s);
  EXPECT_FALSE(miss.feed("\"v1\""));
}

// Sixty-five properties do not fit the recognizer's bit per property.
TEST(JsonSchema, RefusesMoreThanItCanTrack) {
  nlohmann::json props = nlohmann::json::object();
  for (int i = 0; i <= JsonSchema::kMaxProperties; ++i) props["p" + std::to_string(i)] = {{"type", "integer"}};
  EXPECT_THROW(JsonSchema::compile({{"properties", props}}, "format"), Error);
  props.erase("p0");
  EXPECT_NO_THROW(JsonSchema::compile({{"properties", props}}, "format"));
}

// A key may not repeat, and a required one must come before the object closes.
TEST(JsonSchema, ObjectsHoldTheirKeysToTheSchema) {
  const auto s = JsonSchema::compile(nlohmann::json::parse(R"({"properties": {"a": {"type": "integer"},
      "ab": {"type": "string"}}, "required": ["ab"]})"), "format");
  EXPECT_FALSE(JsonPrefix(*s).feed(R"({"b)"));          // no such property
  EXPECT_FALSE(JsonPrefix(*s).feed(R"({"a":1})"));      // "ab" is missing
  EXPECT_FALSE(JsonPrefix(*s).feed(R"({"a":1,"a")"));   // twice
  EXPECT_FALSE(JsonPrefix(*s).feed(R"({"a":"x")"));     // a string where an integer goes
  JsonPrefix p(*s);
  EXPECT_TRUE(p.feed(R"({"ab": "x", "a": 2})"));
  EXPECT_TRUE(p.complete());
  JsonPrefix full(*s);  // both present: no key can follow a comma
  EXPECT_TRUE(full.feed(R"({"ab": "x", "a": 2)"));
  EXPECT_FALSE(full.feed(','));
}

}  // namespace
}  // namespace lowbit
