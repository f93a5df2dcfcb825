// Finding the tokenizer files of a model, and the parts every format shares: EOS lookup and the
// streaming decoder.
#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "kernels/error.h"
#include "runtime/tokenizer/tokenizer_internal.h"

namespace lowbit {

namespace fs = std::filesystem;

bool Tokenizer::is_eos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

void Tokenizer::add_eos_id(int32_t id) {
  if (id < 0 || id >= vocab_size()) throw Error(ErrorCode::internal, "tokenizer: end token " + std::to_string(id) + " outside the vocabulary");
  if (!is_eos(id)) eos_ids_.push_back(id);
}

namespace {

// The folders whose JSON files describe a tokenizer found in `dir`: dir itself, then its parent
// when dir is a manifest's tokenizer/ subfolder.
std::vector<std::string> config_dirs(const fs::path& dir) {
  std::vector<std::string> dirs{dir.string()};
  if (dir.filename() == "tokenizer" && dir.has_parent_path()) dirs.push_back(dir.parent_path().string());
  return dirs;
}

std::unique_ptr<Tokenizer> load_file(const fs::path& file) {
  const std::string name = file.filename().string();
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  tok::TokenizerConfig cfg = tok::read_tokenizer_config(config_dirs(dir));
  if (name == "vocab.json" || name == "merges.txt") {
    fs::path vocab = dir / "vocab.json", merges = dir / "merges.txt";
    if (!fs::is_regular_file(vocab)) throw Error(file.string() + ": no vocab.json beside it");
    if (!fs::is_regular_file(merges)) throw Error(file.string() + ": no merges.txt beside it");
    return tok::make_vocab_merges_tokenizer(vocab.string(), merges.string(), cfg);
  }
  if (file.extension() == ".json") return tok::make_json_tokenizer(file.string(), cfg);
  if (file.extension() == ".model") return tok::make_spm_tokenizer(file.string(), cfg);
  throw Error(file.string() + ": not a tokenizer file this reader knows (tokenizer.json, "
              "tokenizer.model or vocab.json with merges.txt)");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const fs::path p(path);
  if (!fs::exists(p)) throw Error("tokenizer path " + path + " does not exist");
  if (!fs::is_directory(p)) return load_file(p);

  const fs::path dirs[] = {p, p / "tokenizer"};
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    for (const fs::path& d : dirs)
      if (fs::is_regular_file(d / name)) return load_file(d / name);
  }
  for (const fs::path& d : dirs) {
    if (!fs::is_regular_file(d / "vocab.json")) continue;
    if (!fs::is_regular_file(d / "merges.txt"))
      throw Error((d / "vocab.json").string() + " has no merges.txt beside it");
    return load_file(d / "vocab.json");
  }
  throw Error("no tokenizer in " + path + ": looked for tokenizer.json, tokenizer.model and "
              "vocab.json + merges.txt there and in its tokenizer/ subfolder");
}

std::unique_ptr<Tokenizer> load_tokenizer_files(const std::map<std::string, std::string>& files,
                                                const std::string& label) {
  const tok::TokenizerConfig cfg = tok::parse_tokenizer_config(files, label);
  if (auto it = files.find("tokenizer.json"); it != files.end())
    return tok::make_json_tokenizer_text(it->second, label + ":tokenizer.json", cfg);
  if (auto it = files.find("tokenizer.model"); it != files.end())
    return tok::make_spm_tokenizer_bytes(it->second, label + ":tokenizer.model", cfg);
  auto vocab = files.find("vocab.json"), merges = files.find("merges.txt");
  if (vocab != files.end() && merges != files.end())
    return tok::make_vocab_merges_tokenizer_text(vocab->second, label + ":vocab.json", merges->second,
                                                 label + ":merges.txt", cfg);
  if (vocab != files.end()) throw Error(label + ":vocab.json has no merges.txt beside it");
  throw Error(label + ": no tokenizer among its files (needs tokenizer.json, tokenizer.model or vocab.json + merges.txt)");
}

namespace {

bool ends_with_replacement_char(const std::string& s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  return s.size() >= kReplacement.size() && std::string_view(s).substr(s.size() - 3) == kReplacement;
}

// What `text` adds to `before`, the text already returned. With text_may_change() honoured,
// decode() of the window always extends `before`; should a tokenizer break that, what was
// returned cannot be taken back, so the rest starts at the next character boundary.
std::string text_after(const std::string& text, const std::string& before) {
  size_t start = before.size();
  if (text.compare(0, start, before) != 0) {
    while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  }
  return start < text.size() ? text.substr(start) : std::string();
}

}  // namespace

DecodeStream::DecodeStream(const Tokenizer& tokenizer, std::vector<int32_t> context)
    : tok_(tokenizer), window_(std::move(context)), done_(window_.size()), done_text_(tok_.decode(window_)) {}

std::string DecodeStream::push(int32_t id) {
  window_.push_back(id);
  std::string text = tok_.decode(window_);
  if (text.size() <= done_text_.size() || ends_with_replacement_char(text) || tok_.text_may_change(window_))
    return {};
  std::string out = text_after(text, done_text_);
  // Keep only the ids just returned: they give the next id its context (the SentencePiece
  // leading-space rule applies to the window's first token, whose text is already counted).
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(done_));
  done_ = window_.size();
  done_text_ = tok_.decode(window_);
  return out;
}

std::string DecodeStream::flush() {
  std::string out = window_.empty() ? std::string() : text_after(tok_.decode(window_), done_text_);
  window_.clear();
  done_ = 0;
  done_text_.clear();
  return out;
}

}  // namespace lowbit
