#include "store/modelfile.h"

#include <cctype>
#include <filesystem>

#include "kernels/error.h"

namespace lowbit {
namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::string upper(std::string s) {
  for (char& c : s) c = (char)std::toupper((unsigned char)c);
  return s;
}

}  // namespace

std::string write_modelfile(const std::string& from, const ModelDefaults& defaults, const std::string& chat_template) {
  std::string out = "FROM " + from + "\n";
  // A value as parse_modelfile() reads it back: as it is on one line, else between """ and """;
  // one holding """ or ending in a quote cannot be written so, and is left out with a comment.
  auto value = [&](const char* word, const std::string& text) {
    if (text.empty()) return;
    if (text.find("\"\"\"") != std::string::npos || text.back() == '"')
      out += std::string("# ") + word + " left out: it holds a quote a Modelfile cannot write\n";
    else if (text.find('\n') == std::string::npos && text.front() != '"')
      out += std::string(word) + " " + text + "\n";
    else
      out += std::string(word) + " \"\"\"" + text + "\"\"\"\n";
  };
  value("TEMPLATE", chat_template);
  value("SYSTEM", defaults.system);
  for (const auto& [name, value] : defaults.parameters.items())
    for (const auto& v : value.is_array() ? value : nlohmann::ordered_json::array({value}))
      out += "PARAMETER " + name + " " + (v.is_string() ? nlohmann::ordered_json(v).dump() : v.dump()) + "\n";
  return out;
}

Modelfile parse_modelfile(const std::string& text, const std::string& path) {
  Modelfile m;
  std::vector<std::string> lines;
  for (size_t at = 0; at <= text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    at = end + 1;
  }
  auto fail = [&](size_t line, const std::string& what) -> void {
    throw Error(ErrorCode::bad_format, path + ":" + std::to_string(line + 1) + ": " + what);
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string line = trim(lines[i]);
    if (line.empty() || line[0] == '#') continue;
    const size_t cut = line.find_first_of(" \t");
    const std::string word = upper(line.substr(0, cut));
    std::string value = cut == std::string::npos ? "" : trim(line.substr(cut));
    const size_t first = i;
    // A value between """ and """, across lines: kept as written between them.
    if (value.rfind("\"\"\"", 0) == 0) {
      std::string rest = value.substr(3), body;
      size_t close = rest.find("\"\"\"");
      while (close == std::string::npos) {
        body += rest + "\n";
        if (++i >= lines.size()) fail(first, word + ": the \"\"\" opened here is never closed");
        rest = lines[i];
        close = rest.find("\"\"\"");
      }
      body += rest.substr(0, close);
      if (!trim(rest.substr(close + 3)).empty()) fail(i, word + ": text after the closing \"\"\"");
      value = body;
    } else if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (value.empty() && word != "SYSTEM" && word != "TEMPLATE") fail(first, word + ": a value is required");
    if (word == "FROM") {
      if (!m.from.empty()) fail(first, "FROM: a second FROM (a Modelfile has one)");
      const std::filesystem::path p(value);
      const auto beside = std::filesystem::absolute(path).parent_path() / p;
      std::error_code ec;
      // A path (as Ollama reads one: relative to the Modelfile), else a stored model's name.
      m.from = p.is_relative() && std::filesystem::exists(beside, ec) ? beside.lexically_normal().string() : value;
    } else if (word == "PARAMETER") {
      const size_t sp = value.find_first_of(" \t");
      if (sp == std::string::npos) fail(first, "PARAMETER: must be PARAMETER NAME VALUE");
      std::string v = trim(value.substr(sp));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      m.parameters.push_back(value.substr(0, sp) + " " + v);
    } else if (word == "SYSTEM") {
      m.system = value;
    } else if (word == "TEMPLATE") {
      m.chat_template = value;
    } else if (word == "LICENSE") {
      // Read so that a multi-line license parses; lowbit keeps no license text.
    } else if (word == "ADAPTER" || word == "MESSAGE") {
      fail(first, word + ": is not supported (lowbit " +
                      (word == "ADAPTER" ? std::string("has no LoRA adapters") : "keeps no preset conversation") + ")");
    } else {
      fail(first, "'" + line.substr(0, cut) + "' is not a Modelfile instruction (FROM, PARAMETER, SYSTEM, TEMPLATE, "
                                             "LICENSE, ADAPTER, MESSAGE)");
    }
  }
  if (m.from.empty()) throw Error(ErrorCode::bad_format, path + ": no FROM line (the model to start from)");
  return m;
}

}  // namespace lowbit
