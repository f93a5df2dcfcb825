// Command-line parsing for the lowbit commands: the conventions every command follows, and the
// flags several commands share, defined once here.
//  - A usage error (an unknown option, a missing argument, a value that is not a number or is
//    out of range) is one line on stderr that names the flag ("--temp: 'abc' is not a number")
//    and exit status 2; main.cc prints it.
//  - -h/--help prints the command's help on stdout and exits 0.
//  - Numbers must be whole: "5abc" is not an integer, "nan" and "inf" are not numbers.
// The parser is CLI11 (Debian's libcli11-dev). Its header takes ~15 s to compile, so it is
// included by args.cc alone and the commands see only the Args class below.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/isa.h"
#include "runtime/sampler.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace lowbit::cli {

// A mistake in the command line rather than in the input it names: exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// One option or positional, to set more about it.
class Opt {
 public:
  explicit Opt(CLI::Option* o) : o_(o) {}
  Opt& required();
  Opt& metavar(const std::string& name);  // the value's name in the help ("N", "DIR")
  // check(value) returns why the value is refused ("'x' is not NAME=TYPE"), or "" to accept it.
  Opt& check(std::function<std::string(const std::string&)> check);
  Opt& excludes(const Opt& other);

 private:
  CLI::Option* o_;
};

class Args {
 public:
  static constexpr int64_t kNoMin = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

  // name: "lowbit run"; description: one line; footer: text after the option list.
  Args(const std::string& name, const std::string& description, const std::string& footer = "");
  ~Args();

  Opt positional(const std::string& name, std::string& into, const std::string& help);
  Opt positionals(const std::string& name, std::vector<std::string>& into, const std::string& help);
  // names: "-p,--prompt". A vector collects a repeatable option, one value each time.
  Opt text(const std::string& names, std::string& into, const std::string& help);
  Opt texts(const std::string& names, std::vector<std::string>& into, const std::string& help);
  // Integers in [lo, hi]: "'5abc' is not an integer", "'-5' must be >= 1".
  Opt integer(const std::string& names, int64_t& into, const std::string& help, int64_t lo = kNoMin,
              int64_t hi = kNoMax);
  Opt integer(const std::string& names, int& into, const std::string& help, int64_t lo = kNoMin, int64_t hi = kNoMax);
  Opt seed(const std::string& names, uint64_t& into, const std::string& help);  // any 64-bit unsigned
  // Finite numbers: "'abc' is not a number".
  Opt number(const std::string& names, double& into, const std::string& help);
  Opt number(const std::string& names, float& into, const std::string& help);
  // One of the names: "'x' is not one of auto, scalar, avx2, neon".
  Opt choice(const std::string& names, std::string& into, const std::string& help, std::vector<std::string> choices);
  Opt flag(const std::string& names, bool& into, const std::string& help);

  // Parses argv (argv[0] is the command's name). Returns false when help was printed, in which
  // case the command returns 0; throws UsageError on a usage error.
  bool parse(int argc, char** argv);

  // After parse(): whether the option was on the command line, and its values as typed.
  bool given(const std::string& name) const;
  std::vector<std::string> values(const std::string& name) const;

 private:
  std::unique_ptr<CLI::App> app_;
};

// Why v is not an integer in [lo, hi] ("'5abc' is not an integer"), or "" when it is: for checks
// of list items and of values that may also be a word ("row").
std::string integer_problem(const std::string& v, int64_t lo, int64_t hi);

// Throws UsageError naming the flag of a library setting out of range, as invalid_setting()
// found it: flags maps the setting's field ("top_p") to the option that sets it ("--top-p").
void check_setting(const Args& args, const std::optional<InvalidSetting>& bad,
                   const std::map<std::string, std::string>& flags);

// The flags that load a model, shared by run, logits, eval and the benchmarks.
// --threads T: 1 .. max_threads(); left out, every hardware thread.
int max_threads();
void add_threads(Args& args, int& threads);
// --ctx N >= 1; what_it_is says what the number is for this command.
void add_ctx(Args& args, int64_t& ctx, const std::string& what_it_is);
// --isa auto|scalar|avx2|avxvnni|avx512|neon; read it with parse_isa() after Args::parse.
void add_isa(Args& args, std::string& isa);
// --gpu-layers N|all|auto into a LoadParams::gpu_layers value (runtime/placement.h).
void add_gpu_layers(Args& args, int64_t& gpu_layers);

}  // namespace lowbit::cli
