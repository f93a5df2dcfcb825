// The MODEL argument every command that loads a model takes (run, logits, info, bench model,
// eval): an existing path (manifest directory, GGUF file, HF directory) as it is, else the name
// of a model in the store (store/model_store.h), and the --models flag that says where the store
// is. Defined once here so every command resolves names alike.
#pragma once

#include <string>

#include "cli/args.h"

namespace lowbit::cli {

// --models DIR; left out ("" in `dir`), $LOWBIT_MODELS, else ~/.lowbit/models.
void add_models(Args& args, std::string& dir);
// The store's root for a --models value ("" for the default).
std::string models_root(const std::string& dir);
// What to load for MODEL: the path, or the stored model's directory. Throws Error(not_found)
// naming both readings when it is neither.
std::string resolve_model(const std::string& model, const std::string& models_dir);

}  // namespace lowbit::cli
