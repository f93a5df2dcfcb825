// Python's str operations over UTF-8, as the filters and string methods need them. Whitespace is
// Unicode's (str.isspace); case mapping covers ASCII and Latin-1 only (see docs/CHAT_TEMPLATES.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lowbit::jinja {

std::string lower(const std::string& s);
std::string upper(const std::string& s);
std::string capitalize(const std::string& s);   // str.capitalize()
std::string py_title(const std::string& s);     // str.title()
std::string jinja_title(const std::string& s);  // jinja2's |title (words split at - space ( { [ <)
// str.strip/lstrip/rstrip: chars == nullptr strips whitespace, else any of chars' code points.
std::string strip(const std::string& s, const std::string* chars, bool left, bool right);
// str.split() with no separator: runs of whitespace, at most maxsplit splits (-1: all).
std::vector<std::string> split_ws(const std::string& s, int64_t maxsplit);
// str.split(sep, maxsplit) / str.rsplit(sep, maxsplit); sep must not be empty.
std::vector<std::string> split(const std::string& s, const std::string& sep, int64_t maxsplit, bool from_right);
std::vector<std::string> split_lines(const std::string& s, bool keepends);  // str.splitlines()
// str.replace(old, new, count); throws RenderError when the result would exceed max_bytes.
std::string replace(const std::string& s, const std::string& old, const std::string& rep, int64_t count,
                    int64_t max_bytes);
// int(s, base) / float(s) as Python parses strings; nullopt where Python raises ValueError.
std::optional<int64_t> parse_int(const std::string& s, int base);
std::optional<double> parse_float(const std::string& s);
bool is_space_cp(uint32_t cp);

}  // namespace lowbit::jinja
