#include "cli/store_format.h"

#include <cctype>
#include <cstdio>
#include <memory>

#include "runtime/chat/chat_template.h"
#include "runtime/chat/tool_calls.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit::cli {

std::string human_bytes(int64_t n) {
  static const std::pair<double, const char*> units[] = {{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "KB"}};
  char buf[32];
  for (const auto& [scale, suffix] : units)
    if (n >= scale) {
      const double v = n / scale;
      std::snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, suffix);
      return buf;
    }
  return std::to_string(n) + " B";
}

std::string relative_time(const std::string& rfc3339, std::time_t now) {
  std::tm tm{};
  const char* rest = strptime(rfc3339.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return rfc3339;
  std::time_t t = timegm(&tm);
  if (*rest == '.')
    while (std::isdigit((unsigned char)*++rest)) {
    }
  int oh = 0, om = 0;  // a zone offset ("-07:00"): the time is local to it
  if ((*rest == '+' || *rest == '-') && std::sscanf(rest + 1, "%2d:%2d", &oh, &om) == 2)
    t -= (*rest == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  const long long d = (long long)now - (long long)t;
  const long long a = d < 0 ? -d : d;
  if (a < 10) return d < 0 ? "in a few seconds" : "just now";
  static const std::pair<long long, const char*> units[] = {
      {365LL * 86400, "year"}, {7 * 86400, "week"}, {86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
  for (const auto& [secs, name] : units)
    if (a >= secs) {
      const long long k = a / secs;
      const std::string span = std::to_string(k) + " " + name + (k == 1 ? "" : "s");
      return d < 0 ? "in " + span : span + " ago";
    }
  return rfc3339;
}

void print_table(const std::vector<std::vector<std::string>>& rows, const std::string& indent) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line = indent;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

nlohmann::json stored_model_json(const StoredModel& m) {
  const ModelDetails& d = m.details;
  return {{"name", m.name},
          {"model", m.name},
          {"modified_at", m.modified_at},
          {"size", m.size},
          {"digest", m.digest},
          {"details",
           {{"parent_model", d.parent_model},
            {"format", d.format},
            {"family", d.family},
            {"families", d.family.empty() ? nlohmann::json(nullptr) : nlohmann::json::array({d.family})},
            {"parameter_size", d.parameter_size},
            {"quantization_level", d.quantization_level}}}};
}

std::unique_ptr<ChatTemplate> model_chat_template(const std::string& model_dir) {
  return chat_template_of(*load_tokenizer(model_dir));
}

std::vector<std::string> capabilities(const ChatTemplate* tmpl) {
  std::vector<std::string> caps{"completion"};
  if (tmpl && ToolCallSyntax::of(*tmpl)) caps.push_back("tools");
  return caps;
}

}  // namespace lowbit::cli
