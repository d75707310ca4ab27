#include "tools/ringserve-bench/progress_bar.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace ringserve::tools::bench {

ProgressBar::ProgressBar(int total) : total_(total), enabled_(isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() {
  if (drawn_) std::fputc('\n', stderr);
}

void ProgressBar::Update(int finished, int failed) {
  if (!enabled_ || total_ <= 0) return;
  constexpr int kWidth = 40;
  const int filled = static_cast<int>(static_cast<int64_t>(finished) * kWidth / total_);
  const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
  std::fprintf(stderr, "\r[%s] %d/%d (%d failed)", bar.c_str(), finished, total_, failed);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace ringserve::tools::bench
