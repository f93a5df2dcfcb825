// `lowbit bench model ...`: whole-model benchmarks (prompt and generation tokens/s), defined in
// its own file by the runtime work. cmd_bench.cc dispatches `bench model` here and carries a
// weak stand-in definition that reports "not built" until the real one is linked in.
#pragma once

namespace lowbit::cli {

// argv[0] is "model"; the rest are its options. Returns the process exit code; throws
// lowbit::Error on bad input (main.cc prints it).
int bench_model_main(int argc, char** argv);

}  // namespace lowbit::cli
