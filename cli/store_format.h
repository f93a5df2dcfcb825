// How the store commands (create/list/show/ps) print models: sizes, ages, tables, and the JSON
// shape of Ollama's /api/tags entries.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/chat/chat_template.h"
#include "store/model_store.h"

namespace lowbit::cli {

std::string human_bytes(int64_t n);  // "101 MB", "1.2 GB" (decimal units, as Ollama prints)
// "3 minutes ago", "in 4 minutes", for an RFC 3339 UTC time ("2026-12-03T07:29:47Z"); the text
// itself when it does not parse.
std::string relative_time(const std::string& rfc3339, std::time_t now);
// Columns padded to the widest cell, three spaces apart; rows[0] is the header.
void print_table(const std::vector<std::vector<std::string>>& rows, const std::string& indent = "");
// One entry of Ollama's /api/tags "models" list.
nlohmann::json stored_model_json(const StoredModel& m);
// The model's chat template (null when it has none).
std::unique_ptr<ChatTemplate> model_chat_template(const std::string& model_dir);
// What the model can be asked for, in Ollama's words: "completion", and "tools" when its chat
// template (null: none) writes tool calls (runtime/chat/tool_calls.h).
std::vector<std::string> capabilities(const ChatTemplate* tmpl);

}  // namespace lowbit::cli
