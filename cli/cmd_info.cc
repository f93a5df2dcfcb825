// lowbit info: what this machine and this build can do.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/model_arg.h"
#include "convert/source.h"
#include "backend/backend.h"
#include "kernels/cuda_backend.h"
#include "kernels/error.h"
#include "kernels/isa.h"
#include "runtime/chat/chat_template.h"
#include "runtime/chat/thinking.h"
#include "runtime/chat/tool_calls.h"
#include "runtime/manifest.h"
#include "runtime/placement.h"
#include "runtime/tokenizer/tokenizer.h"

namespace lowbit::cli {
namespace {

int64_t meminfo(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string k, unit;
  int64_t kb;
  while (in >> k >> kb >> unit)
    if (k == key) return kb * 1024;
  return -1;
}

// What a chat front end finds in the model's tokenizer: its template, and what the template
// offers (tool calls, thinking, the token a turn ends with); null when the model has no tokenizer.
nlohmann::json chat_info(const Tokenizer& tok) {
  std::unique_ptr<ChatTemplate> t;
  try {
    t = chat_template_of(tok);
  } catch (const Error& e) {
    return {{"template", false}, {"error", e.what()}};
  }
  if (!t) return {{"template", false}};
  const auto end = end_of_turn_token(*t, tok);
  return {{"template", true}, {"tools", ToolCallSyntax::of(*t).has_value()}, {"thinking", template_thinks(*t)},
          {"end_of_turn", end ? nlohmann::json(tok.id_to_piece(*end)) : nlohmann::json(nullptr)}};
}

// What a model file holds, without loading its weights: the format, the architecture, the
// tensor types (for a GGUF or HF directory, the types it would keep or get at `lowbit run`) and
// its chat template's offer.
nlohmann::json model_info(const std::string& path) {
  nlohmann::json m;
  std::map<std::string, int> types;
  ModelConfig c;
  std::unique_ptr<Tokenizer> tok;
  if (std::filesystem::exists(std::filesystem::path(path) / kManifestFile)) {
    const Manifest mf = Manifest::open(path);
    c = mf.config();
    m["format"] = "manifest";
    for (const TensorEntry& t : mf.header().tensors) ++types[type_name(t.type)];
    m["weights_bytes"] = mf.weights_bytes();
    try {
      tok = load_tokenizer(path);
    } catch (const Error&) {  // a manifest converted without tokenizer files
    }
  } else {
    const std::unique_ptr<ModelSource> src = open_source(path);
    c = src->config();
    m["format"] = src->format();
    for (const TensorSpec& t : expected_tensors(c)) ++types[src->source_type_name(t)];
    try {
      tok = load_tokenizer_files(src->tokenizer_files(), path);
    } catch (const Error&) {
    }
  }
  m["chat"] = tok ? chat_info(*tok) : nlohmann::json(nullptr);
  m["path"] = path;
  m["config"] = config_to_json(c);
  m["tensor_types"] = types;
  return m;
}

int info_main(int argc, char** argv) {
  bool json_out = false;
  std::string model_path, models;
  Args args("lowbit info", "What this machine and this build can do: CPU, ISA, RAM, CUDA devices, kernels in use.");
  args.flag("--json", json_out, "print one JSON object");
  args.positional("MODEL", model_path, "also describe this model: manifest directory, GGUF file, HF directory or stored model name");
  add_models(args, models);
  if (!args.parse(argc, argv)) return 0;
  const CpuInfo cpu = cpu_info();
  nlohmann::json j;
  j["lowbit_version"] = LOWBIT_VERSION_STRING;
  j["build_features"] = LOWBIT_BUILD_FEATURES;
  j["cpu"] = {{"model", cpu.model}, {"arch", cpu.arch}, {"features", cpu.features}, {"threads", cpu.threads}};
  j["ram_bytes"] = meminfo("MemTotal:");
  j["ram_available_bytes"] = meminfo("MemAvailable:");
  nlohmann::json isas = nlohmann::json::array();
  for (Isa i : available_isas()) isas.push_back(isa_name(i));
  j["cpu_isas"] = isas;
  std::string isa_error;
  try {
    j["cpu_backend"] = isa_name(default_isa());
  } catch (const std::exception& e) {
    isa_error = e.what();
    j["cpu_backend"] = nullptr;
    j["cpu_backend_error"] = isa_error;
  }
  std::string why;
  const CudaBackend* cuda = cuda_backend(&why);
  nlohmann::json devices = nlohmann::json::array();
  if (cuda) {
    int n = 0;
    cuda->device_count(&n);
    for (int d = 0; d < n; ++d) {
      LowbitCudaDeviceInfo di{};
      if (cuda->device_info(d, &di) != 0) continue;
      devices.push_back({{"index", d}, {"name", di.name}, {"compute_capability", std::to_string(di.cc_major) + "." + std::to_string(di.cc_minor)},
                         {"memory_bytes", di.total_bytes}, {"free_bytes", di.free_bytes}, {"sm_count", di.sm_count}});
    }
  }
  j["cuda"] = {{"available", cuda != nullptr}, {"devices", devices}, {"reason", cuda ? "" : why}};
  // Where `lowbit run --gpu-layers` would put layers: the device backend, when there is one.
  std::string device_why;
  const bool device_backend = make_device_backend({}, &device_why) != nullptr;
  j["backend"] = device_backend ? "cpu+cuda" : "cpu";
  if (!device_backend) j["device_backend_reason"] = device_why;

  if (!model_path.empty()) {
    const std::string resolved = resolve_model(model_path, models);
    j["model"] = model_info(resolved);
    // The memory planner's answer for --gpu-layers auto on device 0 at the trained context.
    if (!devices.empty() && std::filesystem::exists(std::filesystem::path(resolved) / kManifestFile)) {
      const Manifest mf = Manifest::open(resolved);
      const int64_t ctx = std::max<int64_t>(1, mf.config().max_ctx);
      const LayerPlan plan = plan_device_layers(device_footprint(mf.config(), mf, ctx, 1, 512),
                                                (int64_t)devices[0]["free_bytes"].get<uint64_t>());
      j["model"]["gpu_plan"] = {{"ctx", ctx}, {"layers", plan.layers}, {"arithmetic", plan.arithmetic}};
    }
  }

  if (json_out) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("lowbit %s (%s)\n", LOWBIT_VERSION_STRING, LOWBIT_BUILD_FEATURES);
  std::printf("CPU:     %s (%s), %d threads\n", cpu.model.empty() ? "unknown" : cpu.model.c_str(), cpu.arch.c_str(), cpu.threads);
  std::string feats;
  for (const auto& f : cpu.features) feats += (feats.empty() ? "" : " ") + f;
  std::printf("ISA:     %s\n", feats.empty() ? "(none of avx2/fma/f16c/neon/dotprod)" : feats.c_str());
  std::printf("RAM:     %.1f GiB total, %.1f GiB available\n", meminfo("MemTotal:") / 1073741824.0,
              meminfo("MemAvailable:") / 1073741824.0);
  std::printf("kernels: %s (compiled and supported: %s)%s\n",
              isa_error.empty() ? isa_name(default_isa()) : "?", isas.dump().c_str(),
              isa_error.empty() ? "" : ("  error: " + isa_error).c_str());
  if (cuda) {
    for (const auto& d : devices)
      std::printf("CUDA:    device %d: %s, compute capability %s, %.1f GiB (%.1f GiB free), %d SMs\n",
                  d["index"].get<int>(), d["name"].get<std::string>().c_str(),
                  d["compute_capability"].get<std::string>().c_str(), d["memory_bytes"].get<uint64_t>() / 1073741824.0,
                  d["free_bytes"].get<uint64_t>() / 1073741824.0, d["sm_count"].get<int>());
  } else {
    std::printf("CUDA:    no CUDA device (%s); using the CPU\n", why.c_str());
  }
  if (j.contains("model")) {
    const nlohmann::json& m = j["model"];
    const nlohmann::json& c = m["config"];
    std::printf("model:   %s (%s): %s, %lld layers, dim %lld, %lld heads (%lld KV), ffn %lld, vocab %lld, context %lld\n",
                model_path.c_str(), m["format"].get<std::string>().c_str(), c["arch"].get<std::string>().c_str(),
                (long long)c["n_layers"], (long long)c["dim"], (long long)c["n_heads"], (long long)c["n_kv_heads"],
                (long long)c["ffn_dim"], (long long)c["vocab_size"], (long long)c["max_ctx"]);
    if (c["n_experts"].get<int64_t>() > 0)
      std::printf("experts: %lld of %lld per token, ffn %lld each%s\n", (long long)c["n_experts_used"],
                  (long long)c["n_experts"], (long long)c["moe_ffn_dim"],
                  c["moe_layers"].empty() ? ", every layer" : "");
    std::string types;
    for (const auto& [t, n] : m["tensor_types"].items()) types += (types.empty() ? "" : ", ") + std::to_string(n.get<int>()) + " x " + t;
    std::printf("tensors: %s\n", types.c_str());
    const nlohmann::json& chat = m["chat"];
    if (chat.is_null()) {
      std::printf("chat:    no tokenizer\n");
    } else if (!chat["template"].get<bool>()) {
      std::printf("chat:    no chat template%s (lowbit run continues text)\n",
                  chat.contains("error") ? (": " + chat["error"].get<std::string>()).c_str() : "");
    } else {
      std::string offers = chat["tools"].get<bool>() ? "tools" : "";
      if (chat["thinking"].get<bool>()) offers += offers.empty() ? "thinking" : ", thinking";
      std::printf("chat:    template%s%s\n", offers.empty() ? "" : (" with " + offers).c_str(),
                  chat["end_of_turn"].is_null() ? "" : ("; a turn ends with " + chat["end_of_turn"].get<std::string>()).c_str());
    }
    if (m.contains("gpu_plan"))
      std::printf("GPU:     --gpu-layers auto at ctx %lld: %s\n", (long long)m["gpu_plan"]["ctx"].get<int64_t>(),
                  m["gpu_plan"]["arithmetic"].get<std::string>().c_str());
  }
  return 0;
}

Registrar reg("info", "CPU, ISA, RAM, CUDA devices, the kernel backend in use; a model's layout", info_main);

}  // namespace
}  // namespace lowbit::cli
