// Ollama's Modelfile, for `lowbit create NAME -f Modelfile`: FROM (a model name or a path, relative
// to the Modelfile's directory), PARAMETER NAME VALUE (repeatable; stop gathers), SYSTEM and
// TEMPLATE (a value on the rest of the line, or between """ and """ across lines), LICENSE (read,
// not kept), '#' comments and blank lines; instructions in any case. ADAPTER and MESSAGE are
// refused (lowbit has no adapters and keeps no preset conversation).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace lowbit::cli {

struct Modelfile {
  std::string from;                         // as written (a path made absolute against the file's directory)
  std::vector<std::string> parameters;      // "NAME VALUE", in order
  std::optional<std::string> system, chat_template;
};

// Parses text (of the file at `path`, which errors name with the line: "Modelfile:3: ...").
// Throws Error(bad_format) on an unknown or refused instruction, a missing value, an unclosed
// """, a second FROM, or no FROM.
Modelfile parse_modelfile(const std::string& text, const std::string& path);

}  // namespace lowbit::cli
