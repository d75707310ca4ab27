// router/ may use the generated proto code and common/ only (docs/design.md): it must
// never include worker, KV-cache or kernel code, so the router builds and scales apart.
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace {

TEST(RouterDependencyTest, RouterIncludesNothingFromWorkerKvcacheOrKernels) {
  const std::filesystem::path router_dir = std::filesystem::path(RINGSERVE_SOURCE_DIR) / "router";
  ASSERT_TRUE(std::filesystem::is_directory(router_dir)) << router_dir;
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(router_dir)) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".h" && ext != ".cc" && ext != ".txt") continue;
    ++files;
    std::ifstream in(entry.path());
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      for (const char* forbidden : {"worker/", "kvcache/", "kernels/", "rs_engine", "rs_model",
                                    "rs_kvcache", "rs_kernels", "rs_tokenizer"}) {
        const bool include =
            line.rfind("#include", 0) == 0 && line.find(forbidden) != std::string::npos;
        const bool link = ext == ".txt" && line.find(forbidden) != std::string::npos &&
                          line.find('#') == std::string::npos;
        EXPECT_FALSE(include || link) << entry.path().string() << ":" << number << ": " << line;
      }
    }
  }
  EXPECT_GT(files, 5);
}

}  // namespace
