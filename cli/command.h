// Sub-command registry of the lowbit CLI. Each cli/cmd_*.cc defines its commands and registers
// them with a file-scope Registrar, so main.cc never lists them by hand.
#pragma once

#include <string>
#include <vector>

namespace lowbit::cli {

// argv[0] is the sub-command's name; returns the process exit code. Throws UsageError (cli/args.h)
// for a usage error (exit 2) and lowbit::Error for any other (exit 1).
using CommandFn = int (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* summary;
  CommandFn fn;
};

std::vector<Command>& commands();

struct Registrar {
  Registrar(const char* name, const char* summary, CommandFn fn) {
    commands().push_back({name, summary, fn});
  }
};

}  // namespace lowbit::cli
