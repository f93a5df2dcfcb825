// Ollama's Modelfile, read for `lowbit create NAME -f Modelfile` and written for `lowbit show
// --modelfile` and /api/show (what one reads, the other wrote). FROM (a model name or a path, relative
// to the Modelfile's directory), PARAMETER NAME VALUE (repeatable; stop gathers), SYSTEM and
// TEMPLATE (a value on the rest of the line, or between """ and """ across lines), LICENSE (read,
// not kept), '#' comments and blank lines; instructions in any case. ADAPTER and MESSAGE are
// refused (lowbit has no adapters and keeps no preset conversation).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "store/model_store.h"

namespace lowbit {

struct Modelfile {
  std::string from;                         // as written (a path made absolute against the file's directory)
  std::vector<std::string> parameters;      // "NAME VALUE", in order
  std::optional<std::string> system, chat_template;
};

// A stored model as a Modelfile: FROM its directory, its SYSTEM and PARAMETER defaults, and its
// chat template as TEMPLATE (a Jinja one, which lowbit reads back; left out, with a comment, when it
// holds """, which a Modelfile cannot quote).
std::string write_modelfile(const std::string& from, const ModelDefaults& defaults, const std::string& chat_template);

// Parses text (of the file at `path`, which errors name with the line: "Modelfile:3: ...").
// Throws Error(bad_format) on an unknown or refused instruction, a missing value, an unclosed
// """, a second FROM, or no FROM.
Modelfile parse_modelfile(const std::string& text, const std::string& path);

}  // namespace lowbit
