// The model store on disk (store/model_store.h).
//
// Layout: ROOT/<name>/:<tag>/ is the manifest directory of the model "<name>:<tag>" (a name may
// hold '/', e.g. ROOT/library/smollm2/:latest). The tag directory starts with ':', which no name
// component may hold, so a model directory is never mistaken for a name component: "a:b" is
// ROOT/a/:b and "a/b:c" is ROOT/a/b/:c. Work in progress lives in ROOT/.tmp-* (a dot no name
// component may start with, so list() never sees it) and is renamed into place on the same file
// system; a replaced or removed model is first renamed out of the way, then deleted.
#include "store/model_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "convert/convert.h"
#include "kernels/error.h"
#include "runtime/chat/chat_template.h"
#include "runtime/manifest.h"
#include "store/sha256.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxNameLength = 256;
constexpr const char* kLatest = "latest";
constexpr const char* kDefaultsFile = "defaults.json";  // ModelDefaults, beside the manifest

bool is_alnum(char c) { return std::isalnum((unsigned char)c) != 0; }

// One component of a name or a tag: [A-Za-z0-9._-], starting with a letter or digit (so never
// ".", "..", or a hidden file).
std::string component_problem(const std::string& c) {
  if (c.empty()) return "has an empty component";
  if (!is_alnum(c[0])) return "has a component ('" + c + "') that does not start with a letter or digit";
  for (char ch : c)
    if (!is_alnum(ch) && ch != '.' && ch != '_' && ch != '-')
      return std::string("holds '") + ch + "', outside [A-Za-z0-9._-/:]";
  if (c.find("..") != std::string::npos) return "holds '..'";
  return "";
}

[[noreturn]] void bad_name(const std::string& name, const std::string& why) {
  throw Error(ErrorCode::invalid_argument, "model name '" + name + "' " + why);
}

std::pair<std::string, std::string> split_name(const std::string& normalized) {
  const size_t colon = normalized.rfind(':');
  return {normalized.substr(0, colon), normalized.substr(colon + 1)};
}

fs::path model_dir(const std::string& root, const std::string& normalized) {
  const auto [name, tag] = split_name(normalized);
  return fs::path(root) / name / (":" + tag);
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error(fs::exists(p) ? ErrorCode::io : ErrorCode::not_found, p.string() + ": cannot open");
  std::ostringstream s;
  s << f.rdbuf();
  if (!f && !f.eof()) throw Error(ErrorCode::io, p.string() + ": read failed");
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(text.data(), (std::streamsize)text.size());
  f.close();
  if (!f) throw Error(ErrorCode::io, p.string() + ": write failed (disk full?)");
}

std::string rfc3339_utc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "135M", "1.1B", "260K": Ollama's parameter_size, two significant digits below 10 of a unit.
std::string parameter_size(int64_t n) {
  static const std::pair<double, const char*> units[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto& [scale, suffix] : units) {
    const double v = (double)n / scale;
    // Rounded to what is printed, so 999.6K reads "1.0M" rather than "1000K".
    if (std::round(v * 10) / 10 >= 1.0) {
      char buf[32];
      if (v >= 9.95)
        std::snprintf(buf, sizeof buf, "%.0f%s", v, suffix);
      else
        std::snprintf(buf, sizeof buf, "%.1f%s", v, suffix);
      return buf;
    }
  }
  return std::to_string(n);
}

std::string upper(std::string s) {
  for (char& c : s) c = (char)std::toupper((unsigned char)c);
  return s;
}

// What Ollama/llama.cpp quantization names and plain bit widths become in lowbit's recipe: the
// lowbit type of no fewer bits per weight (lowbit has 1, 2, 4, 8, 16 and 32). q4_0/q8_0 are
// symmetric and q4_1 carries a minimum, so they keep their scheme; the k-quants' 4- and 2-bit
// codes come with a minimum per sub-block, so asymmetric (lowbit's default below 8 bits).
ConvertOptions convert_options(const std::string& quantize) {
  ConvertOptions opt;
  opt.source_types = quantize.empty();
  if (quantize.empty()) return opt;
  static const std::map<std::string, std::pair<int, int>> table = {
      // name -> bits, scheme (-1: lowbit's default for the bits)
      {"1", {1, -1}},
      {"2", {2, -1}},
      {"4", {4, -1}},
      {"8", {8, -1}},
      {"16", {16, -1}},
      {"32", {32, -1}},
      {"f32", {32, -1}},
      {"fp32", {32, -1}},
      {"f16", {16, -1}},
      {"fp16", {16, -1}},
      {"bf16", {16, -1}},
      {"q8_0", {8, (int)Scheme::sym}},
      {"q8_1", {8, -1}},
      {"q8_k", {8, -1}},
      {"q6_k", {8, -1}},
      {"q5_0", {8, -1}},
      {"q5_1", {8, -1}},
      {"q5_k", {8, -1}},
      {"q5_k_s", {8, -1}},
      {"q5_k_m", {8, -1}},
      {"q4_0", {4, (int)Scheme::sym}},
      {"q4_1", {4, (int)Scheme::asym}},
      {"q4_k", {4, -1}},
      {"q4_k_s", {4, -1}},
      {"q4_k_m", {4, -1}},
      {"iq4_nl", {4, -1}},
      {"iq4_xs", {4, -1}},
      {"q3_k", {4, -1}},
      {"q3_k_s", {4, -1}},
      {"q3_k_m", {4, -1}},
      {"q3_k_l", {4, -1}},
      {"iq3_xxs", {4, -1}},
      {"iq3_s", {4, -1}},
      {"q2_k", {2, -1}},
      {"q2_k_s", {2, -1}},
      {"iq2_xxs", {2, -1}},
      {"iq2_xs", {2, -1}},
      {"iq2_s", {2, -1}},
      {"tq2_0", {2, -1}},
      {"tq1_0", {2, -1}},
      {"iq1_s", {1, -1}},
      {"iq1_m", {1, -1}},
  };
  std::string key = quantize;
  for (char& c : key) c = (char)std::tolower((unsigned char)c);
  const auto it = table.find(key);
  if (it == table.end())
    throw Error(ErrorCode::invalid_argument,
                "quantization '" + quantize +
                    "' is not a bit width (1, 2, 4, 8, 16, 32) or a known quantization name (q8_0, q6_K, q5_K_M, "
                    "q4_0, q4_1, q4_K_M, q4_K_S, q3_K_M, q2_K, f16, ...)");
  opt.bits = it->second.first;
  opt.scheme = it->second.second;
  return opt;
}

// A unique directory name in root for work in progress.
fs::path temp_path(const fs::path& root, const char* what) {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return root / (std::string(".tmp-") + what + "-" + std::to_string(getpid()) + "-" +
                 std::to_string(counter.fetch_add(1)) + "-" + std::to_string(rd() & 0xffffff));
}

// Deletes the work directories of processes that died in the middle of a create, copy or remove
// (a crash, SIGKILL): each is named after its process, and one whose process is gone is garbage.
void sweep_stale(const fs::path& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string leaf = e.path().filename().string();
    if (leaf.rfind(".tmp-", 0) != 0) continue;
    const size_t a = leaf.find('-', 5), b = a == std::string::npos ? a : leaf.find('-', a + 1);
    if (b == std::string::npos) continue;
    const long pid = std::strtol(leaf.c_str() + a + 1, nullptr, 10);
    if (pid > 0 && ::kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
      std::error_code ec2;
      fs::remove_all(e.path(), ec2);
    }
  }
}

// Removes the now-empty directories between `dir` and root (after a model left them), stopping
// at the first that is not empty; a concurrent create that needs one again recreates it.
void prune_empty_parents(const fs::path& root, fs::path dir) {
  const fs::path r = fs::absolute(root).lexically_normal();
  dir = fs::absolute(dir).lexically_normal();
  while (dir != r && dir.string().size() > r.string().size()) {
    if (::rmdir(dir.c_str()) != 0) break;
    dir = dir.parent_path();
  }
}

// Moves the complete directory `ready` to `dest`, replacing what is there in one step, so a
// reader sees the old model or the new one and never neither. Returns the path where the
// replaced model now is (inside `ready`'s parent, for the caller to delete), or "" if none.
fs::path publish(const fs::path& root, const fs::path& ready, const fs::path& dest) {
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    if (ec) throw Error(ErrorCode::io, dest.parent_path().string() + ": cannot create (" + ec.message() + ")");
    if (::renameat2(AT_FDCWD, ready.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) == 0) return {};
    int err = errno;
    if (err == EEXIST) {
      // A model of that name is there: swap the two atomically; the old one is now at `ready`.
      if (::renameat2(AT_FDCWD, ready.c_str(), AT_FDCWD, dest.c_str(), RENAME_EXCHANGE) == 0) return ready;
      err = errno;
    }
    // ENOENT: a concurrent remove pruned the parent between create_directories and the rename.
    // EINVAL: a file system without renameat2's flags; fall back to rename-aside-then-rename.
    if (err == EINVAL) {
      const fs::path aside = temp_path(root, "old");
      const bool had = ::rename(dest.c_str(), aside.c_str()) == 0;
      if (::rename(ready.c_str(), dest.c_str()) == 0) return had ? aside : fs::path();
      err = errno;
    }
    if (err != ENOENT || attempt >= 8)
      throw Error(ErrorCode::io, dest.string() + ": cannot move the model into place (" + std::strerror(err) + ")");
  }
}

// A directory's regular files, by name (a model directory holds no subdirectories).
std::vector<fs::path> files_of(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

bool is_manifest_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::is_regular_file(p / kManifestFile, ec);
}

// What describe_dir() reads from one directory handle.
enum class Read { whole, broken, gone };

Read describe_once(const fs::path& dir, StoredModel& m, struct stat& opened) {
  // Every file is read through one handle on the directory: a concurrent replace swaps the
  // directory at `dir` for another, and the manifest and weights must come from the same one.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fstat(dfd, &opened) != 0) {
    if (dfd >= 0) ::close(dfd);
    return Read::gone;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{dfd};
  std::string text;
  {
    const int fd = ::openat(dfd, kManifestFile, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Read::gone;
    struct stat st{};
    if (::fstat(fd, &st) == 0) m.modified_at = rfc3339_utc(st.st_mtime);
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, (size_t)n);
    ::close(fd);
    if (n < 0) return Read::gone;
  }
  m.digest = sha256_hex(text);
  m.size = 0;
  int64_t weights_size = -1;
  {
    const int fd2 = ::dup(dfd);
    DIR* d = fd2 >= 0 ? ::fdopendir(fd2) : nullptr;
    if (!d) {
      if (fd2 >= 0) ::close(fd2);
      return Read::gone;
    }
    while (const dirent* e = ::readdir(d)) {
      struct stat st{};
      if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
      m.size += (int64_t)st.st_size;
      if (std::strcmp(e->d_name, kWeightsFile) == 0) weights_size = (int64_t)st.st_size;
    }
    ::closedir(d);
  }
  if (weights_size < 0) return Read::broken;
  try {
    const ManifestHeader h = parse_manifest(text, (uint64_t)weights_size, (dir / kManifestFile).string());
    m.details.family = h.config.arch;
    int64_t params = 0;
    std::map<std::string, int64_t> weights_of_type;
    for (const TensorEntry& t : h.tensors) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      params += n;
      weights_of_type[type_name(t.type)] += n;
    }
    m.details.parameter_size = parameter_size(params);
    const auto dominant = std::max_element(weights_of_type.begin(), weights_of_type.end(),
                                           [](const auto& a, const auto& b) { return a.second < b.second; });
    if (dominant != weights_of_type.end()) m.details.quantization_level = upper(dominant->first);
    if (h.recipe.is_object()) {
      const auto p = h.recipe.find("parent_model");
      if (p != h.recipe.end() && p->is_string()) m.details.parent_model = p->get<std::string>();
    }
    m.defaults = ModelStore::read_defaults(dir.string());
  } catch (const Error&) {
    return Read::broken;
  }
  return Read::whole;
}

// Everything about one stored model; nullopt when it vanished meanwhile (a concurrent remove).
// A model that reads as broken is read again when its directory was replaced meanwhile (the
// handle was on the old one, being deleted); one broken on disk is listed with what can be
// told (no details): it will not load, and `lowbit rm` removes it.
std::optional<StoredModel> describe_dir(const fs::path& dir, const std::string& name) {
  for (int attempt = 0;; ++attempt) {
    StoredModel m;
    m.name = name;
    m.dir = dir.string();
    struct stat opened{}, now{};
    const Read r = describe_once(dir, m, opened);
    if (r == Read::whole) return m;
    const bool replaced = ::stat(dir.c_str(), &now) != 0 || now.st_ino != opened.st_ino || now.st_dev != opened.st_dev;
    if (!replaced) {
      if (r == Read::gone) return std::nullopt;
      m.details = ModelDetails{};
      return m;
    }
    if (attempt >= 8) return std::nullopt;
  }
}

// Sets recipe.KEY in a model's manifest (readers ignore fields they do not know, so the manifest
// stays valid for every reader): where it came from, which chat template it carries.
void set_recipe(const fs::path& dir, const std::string& key, const std::string& value) {
  const fs::path file = dir / kManifestFile;
  nlohmann::json j = nlohmann::json::parse(read_file(file), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(ErrorCode::bad_format, file.string() + ": not a JSON object");
  j["recipe"][key] = value;
  write_file(file, j.dump(1) + "\n");
}

// A chat template given at create: refused before any work when it does not parse. Ollama's
// `template` is a Go template ({{ .Prompt }}); one of those gets a message saying so.
void check_chat_template(const std::string& name, const std::string& text) {
  const bool go = text.find("{{ .") != std::string::npos || text.find("{{- .") != std::string::npos ||
                  text.find("{{ range .") != std::string::npos || text.find("{{- range .") != std::string::npos;
  try {
    ChatTemplate(text, "", "");
  } catch (const Error& e) {
    throw Error(ErrorCode::invalid_argument,
                "cannot create '" + name + "': its chat template " +
                    (go ? std::string("looks like an Ollama Go template ({{ .Prompt }}); lowbit reads Jinja chat "
                                      "templates, as Hugging Face's tokenizer_config.json carries them")
                        : std::string("does not parse: ") + e.what()));
  }
}

void copy_model_files(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const fs::path& f : files_of(from)) {
    const fs::path dst = to / f.filename();
    std::error_code ec;
    // The weights are never written in place (a model is replaced by a rename), so a second
    // name for the same bytes is safe and costs no space; the small files are copied so each
    // model has its own manifest (and modification time).
    if (f.filename() == kWeightsFile) {
      fs::create_hard_link(f, dst, ec);
      if (!ec) continue;
    }
    fs::copy_file(f, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(ErrorCode::io, f.string() + ": cannot copy to " + dst.string() + " (" + ec.message() + ")");
  }
}

}  // namespace

ModelStore::ModelStore(std::string root) : root_(std::move(root)) {}

ModelDefaults ModelStore::defaults(const std::string& name) const {
  std::string n;
  try {
    n = normalize(name);
  } catch (const Error&) {
    return {};
  }
  const fs::path dir = model_dir(root_, n);
  return is_manifest_dir(dir) ? read_defaults(dir.string()) : ModelDefaults{};
}

ModelDefaults ModelStore::read_defaults(const std::string& dir) {
  ModelDefaults d;
  const fs::path p = fs::path(dir) / kDefaultsFile;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return d;
  std::ifstream f(p);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::bad_format, p.string() + ": not JSON: " + e.what());
  }
  const auto sys = j.is_object() ? j.find("system") : j.end();
  const auto par = j.is_object() ? j.find("parameters") : j.end();
  if (!j.is_object() || (sys != j.end() && !sys->is_string()) || (par != j.end() && !par->is_object()))
    throw Error(ErrorCode::bad_format, p.string() + ": must be {\"system\": TEXT, \"parameters\": {NAME: VALUE}}");
  if (sys != j.end()) d.system = sys->get<std::string>();
  if (par != j.end()) d.parameters = *par;
  return d;
}

std::string ModelStore::default_root() {
  if (const char* env = std::getenv("LOWBIT_MODELS"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : ".") / ".lowbit" / "models").string();
}

std::string ModelStore::normalize(const std::string& name) {
  if (name.empty()) throw Error(ErrorCode::invalid_argument, "model name is empty");
  if (name.size() > kMaxNameLength)
    bad_name(name.substr(0, 40) + "...", "is longer than " + std::to_string(kMaxNameLength) + " characters");
  const size_t colon = name.find(':');
  if (colon != std::string::npos && name.find(':', colon + 1) != std::string::npos) bad_name(name, "holds more than one ':'");
  const std::string base = name.substr(0, colon);
  const std::string tag = colon == std::string::npos ? kLatest : name.substr(colon + 1);
  if (base.empty()) bad_name(name, "has no name before the ':'");
  if (tag.empty()) bad_name(name, "has an empty tag after the ':'");
  if (base.front() == '/') bad_name(name, "starts with '/'");
  if (base.back() == '/') bad_name(name, "ends with '/'");
  if (tag.find('/') != std::string::npos) bad_name(name, "has a '/' in its tag");
  std::stringstream parts(base);
  for (std::string c; std::getline(parts, c, '/');)
    if (const std::string why = component_problem(c); !why.empty()) bad_name(name, why);
  if (const std::string why = component_problem(tag); !why.empty()) bad_name(name, why);
  return base + ":" + tag;
}

std::vector<StoredModel> ModelStore::list() const {
  std::vector<StoredModel> out;
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return out;
  fs::recursive_directory_iterator it(root_, fs::directory_options::skip_permission_denied, ec), end;
  // Entries may vanish while we walk (a concurrent remove): every step takes an error code.
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string leaf = p.filename().string();
    std::error_code ec2;
    if (!it->is_directory(ec2)) continue;
    if (leaf.empty() || leaf[0] == '.') {  // work in progress
      it.disable_recursion_pending();
      continue;
    }
    if (leaf[0] != ':') continue;
    it.disable_recursion_pending();
    const std::string rel = p.parent_path().lexically_relative(root_).generic_string();
    std::string name;
    try {
      name = normalize(rel + leaf);
    } catch (const Error&) {
      continue;  // not something the store wrote
    }
    if (!is_manifest_dir(p)) continue;
    if (auto m = describe_dir(p, name)) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const StoredModel& a, const StoredModel& b) { return a.name < b.name; });
  return out;
}

std::optional<StoredModel> ModelStore::find(const std::string& name) const {
  const std::string n = normalize(name);
  const fs::path dir = model_dir(root_, n);
  if (!is_manifest_dir(dir)) return std::nullopt;
  return describe_dir(dir, n);
}

StoredModel ModelStore::create(const std::string& name, const std::string& from, const CreateOptions& opt,
                               const std::function<void(const std::string&)>& progress) {
  const std::string n = normalize(name);
  if (opt.chat_template) check_chat_template(n, *opt.chat_template);
  ConvertOptions co = convert_options(opt.quantize);
  co.threads = opt.threads;
  co.cancel = opt.cancel;
  // Resolved before anything is written: a stored model's name works as a source too.
  std::string source;
  try {
    source = resolve(from);
  } catch (const Error& e) {
    throw Error(ErrorCode::not_found, "cannot create '" + n + "': " + e.what());
  }
  const bool from_manifest = is_manifest_dir(source);
  if (from_manifest && !opt.quantize.empty())
    throw Error(ErrorCode::invalid_argument,
                "cannot create '" + n + "' from " + source + " with quantization '" + opt.quantize +
                    "': a lowbit manifest is not requantized; create from the GGUF file or HF directory it came from");

  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw Error(ErrorCode::io, root_ + ": cannot create the model store (" + ec.message() + ")");
  sweep_stale(root_);
  const fs::path tmp = temp_path(root_, "create");
  const fs::path ready = tmp / "model";
  const fs::path dest = model_dir(root_, n);
  try {
    fs::create_directories(tmp);
    if (from_manifest) {
      if (progress) progress("copying " + source);
      copy_model_files(source, ready);
    } else {
      if (progress) co.progress = [&](const ConvertProgress& p) {
        progress("converting " + std::to_string(p.tensor + 1) + "/" + std::to_string(p.tensors) + " tensors: " +
                 p.name + " (" + p.source_type + " -> " + p.type + ")");
      };
      try {
        convert_model(source, ready.string(), co);
      } catch (const Error& e) {
        // The converter's parser errors carry no code; here a bad source is the caller's input.
        if (opt.cancel && opt.cancel->load()) throw Error(ErrorCode::cancelled, "creating '" + n + "': interrupted");
        if (e.code() == ErrorCode::unspecified) throw Error(ErrorCode::bad_format, e.what());
        throw;
      }
    }
    // A path as an absolute one (a relative path means nothing to a later reader); a stored
    // model by its full name.
    std::error_code pec;
    set_recipe(ready, "parent_model", !opt.parent.empty()     ? opt.parent
                                      : fs::exists(from, pec) ? fs::absolute(from).lexically_normal().string()
                                                              : normalize(from));
    if (opt.chat_template) {
      write_file(ready / "chat_template.jinja", *opt.chat_template);
      set_recipe(ready, "chat_template_sha256", sha256_hex(*opt.chat_template));
    }
    if (opt.system || !opt.parameters.empty()) {
      ModelDefaults d = read_defaults(ready.string());  // a stored source's, copied with it
      if (opt.system) d.system = *opt.system;
      for (const auto& [k, v] : opt.parameters.items()) d.parameters[k] = v;
      nlohmann::ordered_json j = nlohmann::ordered_json::object();
      if (!d.system.empty()) j["system"] = d.system;
      if (!d.parameters.empty()) j["parameters"] = d.parameters;
      const std::string text = j.dump(2);
      write_file(ready / kDefaultsFile, text);
      set_recipe(ready, "defaults_sha256", sha256_hex(text));  // the digest tells the defaults apart too
    }
    Manifest::open(ready.string());  // what load_model() will check: refuse to store what cannot load
    if (opt.cancel && opt.cancel->load()) throw Error(ErrorCode::cancelled, "creating '" + n + "': interrupted");
    publish(fs::path(root_), ready, dest);
  } catch (...) {
    fs::remove_all(tmp, ec);
    prune_empty_parents(root_, dest.parent_path());
    throw;
  }
  fs::remove_all(tmp, ec);  // and the replaced model, if any, swapped into it
  auto m = describe_dir(dest, n);
  if (!m) throw Error(ErrorCode::not_found, "model '" + n + "' was removed while it was being created");
  return *m;
}

StoredModel ModelStore::copy(const std::string& from, const std::string& to) {
  const std::string a = normalize(from), b = normalize(to);
  const fs::path src = model_dir(root_, a);
  if (!is_manifest_dir(src)) throw Error(ErrorCode::not_found, "model '" + a + "' not found in " + root_);
  const fs::path dest = model_dir(root_, b);
  if (a != b) {
    const fs::path tmp = temp_path(root_, "copy");
    std::error_code ec;
    try {
      copy_model_files(src, tmp / "model");
      publish(fs::path(root_), tmp / "model", dest);
    } catch (const fs::filesystem_error& e) {
      fs::remove_all(tmp, ec);
      prune_empty_parents(root_, dest.parent_path());
      throw Error(ErrorCode::io, "copying '" + a + "' to '" + b + "': " + e.what());
    } catch (...) {
      fs::remove_all(tmp, ec);
      prune_empty_parents(root_, dest.parent_path());
      throw;
    }
    fs::remove_all(tmp, ec);
  }
  auto m = describe_dir(dest, b);
  if (!m) throw Error(ErrorCode::not_found, "model '" + b + "' was removed while it was being copied");
  return *m;
}

void ModelStore::remove(const std::string& name) {
  const std::string n = normalize(name);
  const fs::path dir = model_dir(root_, n);
  if (!is_manifest_dir(dir)) throw Error(ErrorCode::not_found, "model '" + n + "' not found in " + root_);
  // Out of sight first, so nobody finds a half-deleted model; a process that has it mapped keeps
  // its weights (the file lives on until unmapped).
  const fs::path gone = temp_path(root_, "remove");
  if (::rename(dir.c_str(), gone.c_str()) != 0) {
    if (errno == ENOENT) throw Error(ErrorCode::not_found, "model '" + n + "' not found in " + root_);
    throw Error(ErrorCode::io, dir.string() + ": cannot remove (" + std::strerror(errno) + ")");
  }
  std::error_code ec;
  fs::remove_all(gone, ec);
  prune_empty_parents(root_, dir.parent_path());
}

StoredModel ModelStore::describe(const std::string& dir) {
  if (is_manifest_dir(dir))
    if (auto m = describe_dir(dir, dir)) return *m;
  throw Error(ErrorCode::not_found, dir + ": not a lowbit manifest directory (no " + kManifestFile + ")");
}

std::string ModelStore::resolve(const std::string& name_or_path) const {
  std::error_code ec;
  if (!name_or_path.empty() && fs::exists(name_or_path, ec)) return name_or_path;
  std::string why;
  try {
    if (auto m = find(name_or_path)) return m->dir;
    why = "nor a model in the store " + root_ + " ('lowbit list' shows them)";
  } catch (const Error& e) {
    why = std::string("nor a valid model name (") + e.what() + ")";
  }
  throw Error(ErrorCode::not_found, "'" + name_or_path + "' is neither an existing file or directory " + why);
}

}  // namespace lowbit
