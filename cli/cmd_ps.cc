// lowbit ps: the models a running `lowbit serve` has loaded, from its GET /api/ps (Ollama's shape).
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/store_format.h"
#include "kernels/error.h"

namespace lowbit::cli {
namespace {

constexpr const char* kDefaultHost = "127.0.0.1:11434";

// "H:P", "H" (port 11434) or "http://H:P" -> the base URL cpp-httplib's client takes.
std::string base_url(std::string host) {
  if (host.rfind("http://", 0) != 0 && host.rfind("https://", 0) != 0) host = "http://" + host;
  while (!host.empty() && host.back() == '/') host.pop_back();
  const size_t authority = host.find("://") + 3;
  const size_t bracket = host.rfind(']');  // an IPv6 literal: [::1]:11434
  const size_t colon = host.rfind(':');
  if (colon < authority || (bracket != std::string::npos && colon < bracket)) host += ":11434";
  return host;
}

int ps_main(int argc, char** argv) {
  const char* env = std::getenv("LOWBIT_HOST");
  std::string host = env && *env ? env : kDefaultHost;
  bool json_out = false;
  Args args("lowbit ps", "Lists the models a running lowbit server has loaded (its GET /api/ps).",
            "The server is asked at --host, else $LOWBIT_HOST, else 127.0.0.1:11434; $LOWBIT_API_KEY,\n"
            "when set, is sent as the bearer token a server started with --api-key expects.\n");
  args.text("--host", host, "the server, HOST:PORT or http://HOST:PORT").metavar("H:P");
  args.flag("--json", json_out, "print the server's answer as it came");
  if (!args.parse(argc, argv)) return 0;
  const std::string url = base_url(host);
  httplib::Client client(url);
  client.set_connection_timeout(3, 0);
  client.set_read_timeout(10, 0);
  httplib::Headers headers;
  if (const char* key = std::getenv("LOWBIT_API_KEY"); key && *key)
    headers.emplace("Authorization", std::string("Bearer ") + key);
  const httplib::Result res = client.Get("/api/ps", headers);
  if (!res)
    throw Error(ErrorCode::not_found, "no lowbit server answers at " + url + " (" + httplib::to_string(res.error()) +
                                          "); start one with 'lowbit serve', or name it with --host or LOWBIT_HOST");
  nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    const std::string why = !j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()
                                ? j["error"].get<std::string>()
                                : res->body.substr(0, 200);
    throw Error(ErrorCode::io, url + "/api/ps answered HTTP " + std::to_string(res->status) + ": " + why);
  }
  if (j.is_discarded() || !j.is_object() || !j.contains("models") || !j["models"].is_array())
    throw Error(ErrorCode::bad_format, url + "/api/ps: the answer is not {\"models\": [...]}");
  if (json_out) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "SIZE", "PROCESSOR", "UNTIL"}};
  const std::time_t now = std::time(nullptr);
  for (const auto& m : j["models"]) {
    const auto str = [&](const char* k) { return m.contains(k) && m[k].is_string() ? m[k].get<std::string>() : ""; };
    const auto num = [&](const char* k) { return m.contains(k) && m[k].is_number() ? m[k].get<int64_t>() : 0; };
    const int64_t size = num("size"), vram = num("size_vram");
    std::string processor = "100% CPU";
    if (size > 0 && vram >= size)
      processor = "100% GPU";
    else if (size > 0 && vram > 0)
      processor = std::to_string(100 * (size - vram) / size) + "%/" + std::to_string(100 * vram / size) + "% CPU/GPU";
    const std::string expires = str("expires_at");
    rows.push_back({str("name"), str("digest").substr(0, 12), human_bytes(size), processor,
                    expires.empty() ? "-" : relative_time(expires, now)});
  }
  print_table(rows);
  return 0;
}

Registrar reg("ps", "list the models a running lowbit server has loaded", ps_main);

}  // namespace
}  // namespace lowbit::cli
