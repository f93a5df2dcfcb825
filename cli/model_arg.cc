#include "cli/model_arg.h"

#include "store/model_store.h"

namespace lowbit::cli {

void add_models(Args& args, std::string& dir) {
  args.text("--models", dir, "the model store (default: $LOWBIT_MODELS, else ~/.lowbit/models)").metavar("DIR");
}

std::string models_root(const std::string& dir) { return dir.empty() ? ModelStore::default_root() : dir; }

std::string resolve_model(const std::string& model, const std::string& models_dir) {
  return ModelStore(models_root(models_dir)).resolve(model);
}

}  // namespace lowbit::cli
