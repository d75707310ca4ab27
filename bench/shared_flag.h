// The benchmarks that read ../shared's reference files take its location as `--shared DIR`
// before Google Benchmark's own flags.
#ifndef RINGSERVE_BENCH_SHARED_FLAG_H_
#define RINGSERVE_BENCH_SHARED_FLAG_H_

#include <cstring>
#include <string>

namespace ringserve::bench {

// Removes `--shared DIR` from the arguments, setting `*shared` to DIR where it is given.
inline void TakeSharedFlag(int* argc, char** argv, std::string* shared) {
  for (int i = 1; i + 1 < *argc; ++i) {
    if (std::strcmp(argv[i], "--shared") != 0) continue;
    *shared = argv[i + 1];
    for (int j = i; j + 2 <= *argc; ++j) argv[j] = argv[j + 2];
    *argc -= 2;
    return;
  }
}

}  // namespace ringserve::bench

#endif  // RINGSERVE_BENCH_SHARED_FLAG_H_
