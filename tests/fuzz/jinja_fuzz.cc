// libFuzzer target over the chat-template engine (runtime/chat): the input is a template, then a
// NUL byte, then a JSON messages array (when it parses; a fixed conversation otherwise). Parsing
// and rendering must either succeed or throw lowbit::Error, within the engine's limits; anything
// else (another exception, a crash, a sanitizer report, a hang) is a finding. Seeds:
// tests/fuzz/corpus_jinja (the models' templates and lowbit's own, see make_jinja_seeds.py).
#include <stdint.h>

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/chat/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::ordered_json;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t sep = in.find('\0');
  const std::string source(in.substr(0, sep));
  ordered_json messages = ordered_json::array(
      {{{"role", "system"}, {"content", "sys"}}, {{"role", "user"}, {"content", "Hi \"there\"\n"}},
       {{"role", "assistant"}, {"content", "ok"}, {"tool_calls", ordered_json::array({{{"function", {{"name", "f"}, {"arguments", {{"a", 1}}}}}}})}}});
  if (sep != std::string_view::npos) {
    ordered_json j = ordered_json::parse(in.substr(sep + 1), nullptr, false);
    if (j.is_array()) messages = std::move(j);
  }
  const ordered_json tools = ordered_json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  try {
    const lowbit::ChatTemplate t(source, "<s>", "</s>");
    try {
      t.render(messages, true);
    } catch (const lowbit::Error&) {
    }
    t.render(messages, false, tools);
  } catch (const lowbit::Error&) {
  }
  return 0;
}
