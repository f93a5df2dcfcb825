#include "cli/args.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include <CLI/CLI.hpp>

#include "kernels/isa.h"
#include "kernels/thread_pool.h"
#include "runtime/placement.h"

namespace lowbit::cli {

namespace {

std::string in_quotes(const std::string& v) { return "'" + v + "'"; }

// Whole-string integer parse: from_chars stops at the first character that is not a digit, so
// "5abc" is refused here rather than read as 5.
template <typename T>
bool parse_whole(const std::string& s, T& out) {
  const char* first = s.data();
  const char* end = s.data() + s.size();
  if (std::is_unsigned_v<T> && first != end && *first == '+') ++first;
  const auto [p, ec] = std::from_chars(first, end, out);
  return ec == std::errc() && p == end && first != end;
}

// A CLI11 validator from a check that returns the reason for refusing a value ("" to accept).
// No description: each option's help states its range in words.
CLI::Validator validator(std::function<std::string(const std::string&)> check) {
  return CLI::Validator([check = std::move(check)](std::string& v) { return check(v); }, "");
}

std::function<std::string(const std::string&)> integer_in(int64_t lo, int64_t hi) {
  return [lo, hi](const std::string& v) { return integer_problem(v, lo, hi); };
}

std::string finite_number(const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x)) return in_quotes(v) + " is not a number";
  return {};
}

}  // namespace

std::string integer_problem(const std::string& v, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (!parse_whole(v, x)) return in_quotes(v) + " is not an integer";
  if (x < lo) return in_quotes(v) + " must be >= " + std::to_string(lo);
  if (x > hi) return in_quotes(v) + " must be <= " + std::to_string(hi);
  return {};
}

Opt& Opt::required() {
  o_->required();
  return *this;
}

Opt& Opt::metavar(const std::string& name) {
  o_->type_name(name);
  return *this;
}

Opt& Opt::check(std::function<std::string(const std::string&)> check) {
  o_->check(validator(std::move(check)));
  return *this;
}

Opt& Opt::excludes(const Opt& other) {
  o_->excludes(other.o_);
  return *this;
}

Args::Args(const std::string& name, const std::string& description, const std::string& footer)
    : app_(std::make_unique<CLI::App>(description, name)) {
  app_->set_help_flag("-h,--help", "print this help and exit");
  app_->get_formatter()->column_width(34);
  if (!footer.empty()) app_->footer(footer);
}

Args::~Args() = default;

Opt Args::positional(const std::string& name, std::string& into, const std::string& help) {
  return Opt(app_->add_option(name, into, help)->type_name("TEXT"));
}

Opt Args::positionals(const std::string& name, std::vector<std::string>& into, const std::string& help) {
  return Opt(app_->add_option(name, into, help)->type_name("TEXT"));
}

Opt Args::text(const std::string& names, std::string& into, const std::string& help) {
  return Opt(app_->add_option(names, into, help)->type_name("TEXT"));
}

Opt Args::texts(const std::string& names, std::vector<std::string>& into, const std::string& help) {
  // One value per occurrence (a vector option would otherwise take the positionals after it).
  return Opt(app_->add_option(names, into, help)
                 ->type_name("TEXT")
                 ->expected(1)
                 ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll));
}

Opt Args::integer(const std::string& names, int64_t& into, const std::string& help, int64_t lo, int64_t hi) {
  return Opt(app_->add_option(names, into, help)->type_name("N")->check(validator(integer_in(lo, hi))));
}

Opt Args::integer(const std::string& names, int& into, const std::string& help, int64_t lo, int64_t hi) {
  lo = std::max<int64_t>(lo, std::numeric_limits<int>::min());
  hi = std::min<int64_t>(hi, std::numeric_limits<int>::max());
  return Opt(app_->add_option(names, into, help)->type_name("N")->check(validator(integer_in(lo, hi))));
}

Opt Args::seed(const std::string& names, uint64_t& into, const std::string& help) {
  return Opt(app_->add_option(names, into, help)->type_name("S")->check(validator([](const std::string& v) {
    uint64_t x = 0;
    return parse_whole(v, x) ? std::string() : in_quotes(v) + " is not an integer in [0, 2^64)";
  })));
}

Opt Args::number(const std::string& names, double& into, const std::string& help) {
  return Opt(app_->add_option(names, into, help)->type_name("X")->check(validator(finite_number)));
}

Opt Args::number(const std::string& names, float& into, const std::string& help) {
  return Opt(app_->add_option(names, into, help)->type_name("X")->check(validator(finite_number)));
}

Opt Args::choice(const std::string& names, std::string& into, const std::string& help,
                 std::vector<std::string> choices) {
  std::string list;
  for (const std::string& c : choices) list += (list.empty() ? "" : ", ") + c;
  return Opt(app_->add_option(names, into, help)->type_name("NAME")->check(validator(
      [choices = std::move(choices), list](const std::string& v) -> std::string {
        return std::find(choices.begin(), choices.end(), v) != choices.end() ? std::string()
                                                                             : in_quotes(v) + " is not one of " + list;
      })));
}

Opt Args::flag(const std::string& names, bool& into, const std::string& help) {
  return Opt(app_->add_flag(names, into, help));
}

bool Args::parse(int argc, char** argv) {
  try {
    app_->parse(argc, argv);  // argv[0] is taken as the program's name
  } catch (const CLI::CallForHelp&) {
    std::fputs(app_->help().c_str(), stdout);
    return false;
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  return true;
}

bool Args::given(const std::string& name) const { return app_->get_option(name)->count() > 0; }

std::vector<std::string> Args::values(const std::string& name) const { return app_->get_option(name)->results(); }

void check_setting(const Args& args, const std::optional<InvalidSetting>& bad,
                   const std::map<std::string, std::string>& flags) {
  if (!bad) return;
  const auto it = flags.find(bad->field);
  if (it == flags.end() || !args.given(it->second)) throw UsageError(bad->field + " must be " + bad->requirement);
  // The value as typed; of a repeated flag (--stop), the one out of range (the empty one).
  std::string value;
  for (const std::string& v : args.values(it->second))
    if (value.empty() || bad->field != "stop" || v.empty()) value = v;
  throw UsageError(it->second + ": " + in_quotes(value) + " must be " + bad->requirement);
}

int max_threads() {
  // More threads than this only take turns on the same cores; a larger figure is a typo.
  return 4 * hardware_threads();
}

void add_threads(Args& args, int& threads) {
  args.integer("--threads", threads,
               "worker threads, 1.." + std::to_string(max_threads()) +
                   " (4 x the hardware threads); default: every hardware thread",
               1, max_threads())
      .metavar("T");
}

void add_ctx(Args& args, int64_t& ctx, const std::string& what_it_is) { args.integer("--ctx", ctx, what_it_is, 1); }

void add_isa(Args& args, std::string& isa) {
  std::vector<std::string> names = {"auto"};
  for (Isa i : kIsas) names.push_back(isa_name(i));
  std::string help = "CPU kernels: auto (the best this CPU runs)";
  for (size_t i = 1; i < names.size(); ++i) help += (i + 1 == names.size() ? " or " : ", ") + names[i];
  args.choice("--isa", isa, help + "; default auto", names).metavar("ISA");
}

void add_gpu_layers(Args& args, int64_t& gpu_layers) {
  // Parsed in the check, which runs before the value is stored: the text is kept in a string
  // the option owns and gpu_layers is set from it.
  auto text = std::make_shared<std::string>();
  args.text("--gpu-layers", *text,
            "the first N layers on the GPU, the rest on the CPU; all, or auto: as many as fit in its free "
            "memory (default 0: the CPU)")
      .metavar("N|all|auto")
      .check([text, &gpu_layers](const std::string& v) -> std::string {
        try {
          gpu_layers = parse_gpu_layers(v, "--gpu-layers");
          return "";
        } catch (const Error&) {
          return "'" + v + "' is not a layer count, all or auto";
        }
      });
}

}  // namespace lowbit::cli
