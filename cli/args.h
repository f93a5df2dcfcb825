// Command-line parsing for the lowbit commands, on CLI11 (Debian's libcli11-dev): the conventions
// every command follows, and the flags several commands share, defined once here.
//  - A usage error (an unknown option, a missing argument, a value that is not a number or is
//    out of range) is one line on stderr that names the flag ("--temp: 'abc' is not a number")
//    and exit status 2; main.cc prints it.
//  - -h/--help prints the command's help on stdout and exits 0.
//  - Numbers must be whole: "5abc" is not an integer, "nan" and "inf" are not numbers.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kernels/error.h"
#include "kernels/isa.h"
#include "runtime/sampler.h"

namespace lowbit::cli {

// A mistake in the command line rather than in the input it names: exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

// Sets app up the lowbit way (help flag, layout); name is "lowbit run", "lowbit bench matmul".
void configure(CLI::App& app);

// Parses argv (argv[0] is the command's name). Returns false when help was printed, in which
// case the command returns 0; throws UsageError on a usage error.
bool parse(CLI::App& app, int argc, char** argv);

// Values that read whole as an integer in [lo, hi]: "'5abc' is not an integer", "'-5' must be >= 1".
CLI::Validator integer(int64_t lo, int64_t hi = std::numeric_limits<int64_t>::max());
// Any unsigned 64-bit integer (seeds).
CLI::Validator uint64();
// One of the names: "'x' is not one of auto, scalar, avx2, neon".
CLI::Validator one_of(std::vector<std::string> names);
// Finite numbers: "'abc' is not a number". Ranges of library settings are the library's
// (invalid_setting()), checked after parsing with check_setting().
CLI::Validator number();

// Throws UsageError naming the flag of a library setting out of range, as invalid_setting()
// found it: flags maps the setting's field ("top_p") to the option that sets it (--top-p).
void check_setting(const std::optional<InvalidSetting>& bad, const std::map<std::string, CLI::Option*>& flags);

// The flags that load a model, shared by run, logits, eval and the benchmarks.
// --threads T: 1 .. max_threads(); left out, every hardware thread.
int max_threads();
CLI::Option* add_threads(CLI::App& app, int& threads);
// --ctx N >= 1; what_it_is says what the number is for this command.
CLI::Option* add_ctx(CLI::App& app, int64_t& ctx, const std::string& what_it_is);
// --isa auto|scalar|avx2|neon
CLI::Option* add_isa(CLI::App& app, Isa& isa);

}  // namespace lowbit::cli
