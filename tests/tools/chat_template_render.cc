// A command-line front to runtime/chat/chat_template.h, so tests/python/test_chat_template_reference.py
// can hold lowbit's renderings against transformers' / jinja2's:
//   chat_template_render < REQUESTS.json > RESULTS.json
// REQUESTS: a JSON array of {"template", "messages", "tools" (optional), "add_generation_prompt",
// "bos_token", "eos_token", "vars" (optional: more template variables)}, or of {"model": a model or tokenizer directory, "messages", ...}: then
// the template and BOS/EOS strings are the tokenizer's (chat_template_of(load_tokenizer(model))). RESULTS: one entry per request, {"text": rendering} or
// {"error": message, "code": error code name, "parse": whether the template failed to parse}.
// Objects keep their key order (ordered_json), as the Python side's dicts do.
#include <iostream>
#include <memory>
#include <iterator>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "runtime/chat/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

int main() {
  using nlohmann::ordered_json;
  try {
    const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    const ordered_json requests = ordered_json::parse(input);
    ordered_json results = ordered_json::array();
    std::map<std::string, std::unique_ptr<lowbit::ChatTemplate>> by_model;  // loaded once per directory
    for (const ordered_json& r : requests) {
      ordered_json out;
      bool parsed = false;
      try {
        std::unique_ptr<lowbit::ChatTemplate> owned;
        const lowbit::ChatTemplate* tp;
        if (r.contains("model")) {
          const std::string model = r["model"].get<std::string>();
          auto& slot = by_model[model];
          if (!slot) slot = lowbit::chat_template_of(*lowbit::load_tokenizer(model));
          if (!slot) throw lowbit::Error(lowbit::ErrorCode::not_found, model + " has no chat template");
          tp = slot.get();
        } else {
          owned = std::make_unique<lowbit::ChatTemplate>(r.at("template").get<std::string>(),
                                                         r.value("bos_token", ""), r.value("eos_token", ""));
          tp = owned.get();
        }
        const lowbit::ChatTemplate& t = *tp;
        parsed = true;
        out["text"] = t.render(r.at("messages"), r.value("add_generation_prompt", false),
                               r.contains("tools") ? r["tools"] : ordered_json(nullptr),
                               r.contains("vars") ? r["vars"] : ordered_json(nullptr));
      } catch (const lowbit::Error& e) {
        out["error"] = e.what();
        out["code"] = lowbit::error_code_name(e.code());
        out["parse"] = !parsed;
      }
      results.push_back(std::move(out));
    }
    std::cout << results.dump(-1, ' ', false, ordered_json::error_handler_t::replace) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "chat_template_render: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
