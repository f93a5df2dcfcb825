// Reading the fields of a JSON request body, each mistake a RequestError(400) naming the field
// as the client wrote it: what request.cc's parsers and the Responses route's share.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/json_schema.h"
#include "server/request.h"

namespace lowbit::server {

// "FIELD: WHAT" as a 400.
[[noreturn]] void bad(const std::string& field, const std::string& what);
// "FIELD: must be WANT, got a string".
[[noreturn]] void wrong_type(const std::string& field, const nlohmann::ordered_json& v, const char* want);
// Present and not null (JSON clients often send null for "not set"), else nullptr.
const nlohmann::ordered_json* field(const nlohmann::ordered_json& obj, const std::string& key);
// Absent or null: nullopt; another type: a 400 naming `name`.
std::optional<std::string> opt_string(const nlohmann::ordered_json& obj, const std::string& key, const std::string& name);
std::optional<bool> opt_bool(const nlohmann::ordered_json& obj, const std::string& key, const std::string& name);
// A whole number: an integer, or a float with no fraction (JavaScript clients send 64.0).
std::optional<int64_t> opt_int(const nlohmann::ordered_json& obj, const std::string& key, const std::string& name);
std::optional<double> opt_number(const nlohmann::ordered_json& obj, const std::string& key, const std::string& name);
void check_object(const nlohmann::ordered_json& v, const std::string& name);
// A function's name: letters, digits, '_', '-' and '.', 1 to 64 of them.
void check_function_name(const nlohmann::ordered_json& v, const std::string& name);
// A request's tools: null when none; an array in the chat form ({"type": "function", "function":
// {...}}), read as sent or, flat (the Responses API's {"type": "function", "name", ...}), under
// those names. A 400 names the field at fault.
nlohmann::ordered_json parse_tools(const nlohmann::ordered_json& body, bool flat = false);
// OpenAI's output format into r (json, schema): chat completions' response_format (its schema in
// format.json_schema.schema: holder "json_schema") or the Responses API's text.format (in
// format.schema: holder ""); `name` is the field as the client wrote it.
void parse_output_format(const nlohmann::ordered_json& format, const std::string& name, const char* holder,
                         GenerationRequest& r);
// OpenAI's reasoning_effort into r.think ("none" does not think; "minimal" to "high" do), also the
// Responses API's reasoning.effort; null leaves it unset; `name` as the client wrote it.
void parse_reasoning_effort(const nlohmann::ordered_json& v, const std::string& name, GenerationRequest& r);
// The schema's own errors name the keyword and its place under field ("format.properties.age").
std::shared_ptr<const JsonSchema> compile_schema(const nlohmann::ordered_json& schema, const std::string& field);

}  // namespace lowbit::server
