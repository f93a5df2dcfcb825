// lowbit: the command-line front end. Holds argument handling only; every command calls into
// the library. A usage error is one line on stderr and exit status 2 (cli/args.h); any other
// lowbit::Error one line and exit status 1.
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli/args.h"
#include "cli/command.h"
#include "kernels/error.h"

namespace lowbit::cli {

std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

}  // namespace lowbit::cli

static void usage(FILE* out) {
  std::fprintf(out, "usage: lowbit COMMAND [ARGS...]\n       lowbit --version | --help\n\ncommands:\n");
  for (const auto& c : lowbit::cli::commands()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out,
               "\noptions:\n"
               "  --version  print the version and exit\n"
               "  -h, --help print this help and exit\n"
               "\n'lowbit COMMAND --help' describes a command. Exit status: 0 done, 1 an error, 2 a usage\n"
               "error (eval: 3 a gate failed; run: 130 interrupted).\n");
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("lowbit %s\n", LOWBIT_VERSION_STRING);
    return 0;
  }
  for (const auto& c : lowbit::cli::commands()) {
    if (std::strcmp(c.name, argv[1]) != 0) continue;
    try {
      return c.fn(argc - 1, argv + 1);
    } catch (const lowbit::cli::UsageError& e) {
      std::fprintf(stderr, "lowbit %s: %s (see lowbit %s --help)\n", c.name, e.what(), c.name);
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lowbit %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "lowbit: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
