// A one-line progress bar redrawn in place on stderr, only when stderr is a terminal (a
// log file or a pipe gets nothing).
#ifndef RINGSERVE_TOOLS_RINGSERVE_BENCH_PROGRESS_BAR_H_
#define RINGSERVE_TOOLS_RINGSERVE_BENCH_PROGRESS_BAR_H_

namespace ringserve::tools::bench {

class ProgressBar {
 public:
  explicit ProgressBar(int total);
  ~ProgressBar();  // ends the line it drew on

  bool enabled() const { return enabled_; }
  void Update(int finished, int failed);

 private:
  const int total_;
  const bool enabled_;
  bool drawn_ = false;
};

}  // namespace ringserve::tools::bench

#endif  // RINGSERVE_TOOLS_RINGSERVE_BENCH_PROGRESS_BAR_H_
