// lowbit: the command-line front end. Holds argument handling only; every command calls into
// the library, and every lowbit::Error becomes one line on stderr and a non-zero exit.
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli/command.h"
#include "kernels/error.h"

namespace lowbit::cli {

std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

std::string option_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) throw Error(std::string("option ") + argv[i] + " needs a value");
  return argv[++i];
}

}  // namespace lowbit::cli

static void usage(FILE* out) {
  std::fprintf(out, "usage: lowbit COMMAND [ARGS...]\n\ncommands:\n");
  for (const auto& c : lowbit::cli::commands()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\n'lowbit COMMAND --help' describes a command.\n");
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
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lowbit %s: error: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "lowbit: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
