#include "cli/args.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "kernels/thread_pool.h"

namespace lowbit::cli {

namespace {

std::string in_quotes(const std::string& v) { return "'" + v + "'"; }

// Whole-string integer parse: from_chars stops at the first character that is not a digit, so
// "5abc" is refused here rather than read as 5.
template <typename T>
bool parse_whole(const std::string& s, T& out) {
  const char* end = s.data() + s.size();
  const char* first = s.data();
  if (std::is_unsigned_v<T> && first != end && *first == '+') ++first;
  const auto [p, ec] = std::from_chars(first, end, out);
  return ec == std::errc() && p == end && first != end;
}

}  // namespace

void configure(CLI::App& app) {
  app.set_help_flag("-h,--help", "print this help and exit");
  app.get_formatter()->column_width(34);
  app.option_defaults()->always_capture_default(false);
}

bool parse(CLI::App& app, int argc, char** argv) {
  try {
    // CLI11 takes argv[0] as the program's name and the rest in order.
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return false;
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  return true;
}

CLI::Validator integer(int64_t lo, int64_t hi) {
  // No description: the help text of each option states its range in words.
  return CLI::Validator(
      [lo, hi](std::string& v) -> std::string {
        int64_t x = 0;
        if (!parse_whole(v, x)) return in_quotes(v) + " is not an integer";
        if (x < lo) return in_quotes(v) + " must be >= " + std::to_string(lo);
        if (x > hi) return in_quotes(v) + " must be <= " + std::to_string(hi);
        return {};
      },
      "");
}

CLI::Validator uint64() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        uint64_t x = 0;
        return parse_whole(v, x) ? std::string() : in_quotes(v) + " is not an integer in [0, 2^64)";
      },
      "");
}

CLI::Validator one_of(std::vector<std::string> names) {
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
  return CLI::Validator(
      [names, list](std::string& v) -> std::string {
        for (const std::string& n : names)
          if (v == n) return {};
        return in_quotes(v) + " is not one of " + list;
      },
      "");
}

CLI::Validator number() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x)) return in_quotes(v) + " is not a number";
        return {};
      },
      "");
}

void check_setting(const std::optional<InvalidSetting>& bad, const std::map<std::string, CLI::Option*>& flags) {
  if (!bad) return;
  const auto it = flags.find(bad->field);
  if (it == flags.end()) throw UsageError(bad->field + " must be " + bad->requirement);
  const CLI::Option* opt = it->second;
  // The value as typed; for a repeated flag (--stop) the one that is out of range.
  std::string value;
  for (const std::string& r : opt->results())
    if (value.empty() || bad->field != "stop" || r.empty()) value = r;
  throw UsageError(opt->get_name() + ": " + in_quotes(value) + " must be " + bad->requirement);
}

int max_threads() {
  // More threads than this only take turns on the same cores; a larger figure is a typo.
  return 4 * hardware_threads();
}

CLI::Option* add_threads(CLI::App& app, int& threads) {
  return app
      .add_option("--threads", threads,
                  "worker threads, 1.." + std::to_string(max_threads()) +
                      " (4 x the hardware threads); default: every hardware thread")
      ->type_name("T")
      ->check(integer(1, max_threads()));
}

CLI::Option* add_ctx(CLI::App& app, int64_t& ctx, const std::string& what_it_is) {
  return app.add_option("--ctx", ctx, what_it_is)->type_name("N")->check(integer(1));
}

CLI::Option* add_isa(CLI::App& app, Isa& isa) {
  return app
      .add_option_function<std::string>(
          "--isa", [&isa](const std::string& v) { isa = parse_isa(v); },
          "CPU kernels: auto (the best this CPU runs), scalar, avx2 or neon; default auto")
      ->type_name("ISA")
      ->check(one_of({"auto", "scalar", "avx2", "neon"}));
}

}  // namespace lowbit::cli
