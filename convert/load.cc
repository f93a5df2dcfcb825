#include "convert/load.h"

#include <filesystem>

#include "convert/convert.h"

namespace lowbit {

namespace fs = std::filesystem;

std::unique_ptr<Model> load_model(const std::string& path, const LoadParams& params, LoadInfo* info) {
  LoadInfo li;
  std::unique_ptr<Model> model;
  if (fs::is_directory(path) && fs::exists(fs::path(path) / kManifestFile)) {
    li.format = "manifest";
    model = Model::load(path, params);
  } else {
    ConvertOptions opt;
    opt.source_types = true;  // GGUF: its own types; an HF directory has none and gets the 4-bit recipe
    opt.threads = params.threads;
    ImportedModel m = import_model(path, opt);
    li.format = m.header.recipe.value("source_format", "");
    li.imported = true;
    li.import_seconds = m.summary.seconds;
    model = Model::load(Manifest::from_memory(m.header, std::move(m.weights), std::move(m.tokenizer_files), path),
                        params);
  }
  if (info) *info = li;
  return model;
}

}  // namespace lowbit
