// For the seed-corpus writers (NAME_fuzz_seeds CORPUS_DIR) of fuzzers whose first input
// byte selects a mode: each seed is one file holding the mode byte, then the body.
#ifndef RINGSERVE_TESTS_FUZZ_SEED_CORPUS_H_
#define RINGSERVE_TESTS_FUZZ_SEED_CORPUS_H_

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace ringserve::fuzz {

class SeedCorpus {
 public:
  // The directory named on the command line, created; nullopt (after a message) unless the
  // arguments are exactly one directory that exists or could be made.
  static std::optional<SeedCorpus> FromArgs(int argc, char** argv) {
    if (argc != 2) {
      std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
      return std::nullopt;
    }
    std::error_code error;
    std::filesystem::create_directories(argv[1], error);
    if (error) {
      std::fprintf(stderr, "%s: %s\n", argv[1], error.message().c_str());
      return std::nullopt;
    }
    return SeedCorpus(argv[1]);
  }

  // Writes dir/name: `mode`, then `body`.
  void Add(const std::string& name, char mode, std::string_view body) {
    std::FILE* f = std::fopen((dir_ / name).c_str(), "wb");
    if (f == nullptr) {
      ok_ = false;
      return;
    }
    ok_ &= std::fputc(mode, f) != EOF && std::fwrite(body.data(), 1, body.size(), f) == body.size();
    ok_ &= std::fclose(f) == 0;
  }

  // The process exit code: 0 when every seed was written.
  int ExitCode() const { return ok_ ? 0 : 1; }

 private:
  explicit SeedCorpus(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::filesystem::path dir_;
  bool ok_ = true;
};

}  // namespace ringserve::fuzz

#endif  // RINGSERVE_TESTS_FUZZ_SEED_CORPUS_H_
