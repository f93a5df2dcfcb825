// A progress line for long CLI commands: a redrawn bar on a terminal, and a plain line every
// 10% when stderr is not a terminal (logs, CI).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace lowbit::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label)
      : label_(std::move(label)), tty_(isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

  // fraction in [0, 1]; rate_text is appended (e.g. "120 tok/s").
  void update(double fraction, const std::string& text) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (tty_) {
      const int width = 30, filled = (int)(fraction * width + 0.5);
      std::fprintf(stderr, "\r%s [%s%s] %5.1f%% %6.1fs %-50.50s", label_.c_str(),
                   std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                   100 * fraction, secs, text.c_str());
      std::fflush(stderr);
    } else if (fraction >= next_) {
      std::fprintf(stderr, "%s: %5.1f%% %6.1fs %s\n", label_.c_str(), 100 * fraction, secs, text.c_str());
      while (next_ <= fraction) next_ += 0.1;
    }
  }

  // A line of its own that stays above the bar (a per-item report).
  void note(const std::string& line) {
    std::fprintf(stderr, tty_ ? "\r\033[K%s\n" : "%s\n", line.c_str());
  }

  void finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  std::string label_;
  bool tty_;
  double next_ = 0.0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lowbit::cli
