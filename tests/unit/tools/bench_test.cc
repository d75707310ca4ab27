// ringserve-bench end to end against an in-process fake worker: closed loop, open loop
// and multi-turn sessions complete without errors and report every figure.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/router/fake_worker.h"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

using router::testing::FakeWorker;

class BenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = std::make_unique<FakeWorker>("fake-bench");
    // A little time per token, so TTFT and inter-token gaps are not all zero.
    worker_->set_tokens(1, absl::Milliseconds(1));
  }

  nlohmann::json Bench(const std::string& args) {
    const ToolRun run =
        RunTool("ringserve-bench", "--target " + worker_->address() + " --json " + args);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    const nlohmann::json out = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(out.is_discarded()) << run.out;
    return out;
  }

  static void ExpectEveryKey(const nlohmann::json& out) {
    for (const char* key :
         {"requests_ok", "requests_failed", "errors", "duration_s", "requests_per_s",
          "output_tokens_per_s", "total_tokens_per_s", "cache_hit_ratio", "config"}) {
      EXPECT_TRUE(out.contains(key)) << key;
    }
    for (const char* key : {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}) {
      for (const char* figure : {"mean", "p50", "p95", "p99"}) {
        EXPECT_TRUE(out[key].contains(figure)) << key << "." << figure;
      }
    }
  }

  std::unique_ptr<FakeWorker> worker_;
};

// --embed K: Embed calls of K inputs each; every input comes back as an embedding.
TEST_F(BenchTest, EmbedCallsReportEmbeddingsPerSecond) {
  const nlohmann::json out = Bench("--requests 20 --concurrency 4 --prompt-tokens 16 --embed 3");
  ExpectEveryKey(out);
  EXPECT_EQ(out["requests_ok"], 20);
  EXPECT_EQ(out["requests_failed"], 0) << out["errors"];
  EXPECT_EQ(out["embeddings"], 60);
  EXPECT_GT(out["embeddings_per_s"].get<double>(), 0);
  EXPECT_EQ(out["input_tokens"], 20 * 3 * 16);
  EXPECT_EQ(out["prompt_tokens"], 20 * 3 * 16);  // the fake worker counts every id
  EXPECT_EQ(out["output_tokens"], 0);
  EXPECT_EQ(out["config"]["embed_inputs"], 3);
  const ToolRun refused =
      RunTool("ringserve-bench", "--target " + worker_->address() + " --embed 2 --sessions 3");
  EXPECT_EQ(refused.exit_code, 2);
}

TEST_F(BenchTest, ClosedLoopCompletesEveryRequest) {
  const nlohmann::json out =
      Bench("--requests 50 --concurrency 8 --prompt-tokens 32 --output-tokens 4");
  ExpectEveryKey(out);
  EXPECT_EQ(out["requests_ok"], 50);
  EXPECT_EQ(out["requests_failed"], 0);
  EXPECT_TRUE(out["errors"].empty()) << out["errors"];
  EXPECT_EQ(out["output_tokens"], 50 * 4);
  EXPECT_EQ(out["input_tokens"], 50 * 32);
  EXPECT_GT(out["ttft_ms"]["p50"].get<double>(), 0);
  EXPECT_GT(out["tpot_ms"]["mean"].get<double>(), 0);
  EXPECT_EQ(out["cache_hit_ratio"], 0);
}

// --regex: every request carries the structured-output format.
TEST_F(BenchTest, RegexHoldsEveryReplyToTheFormat) {
  const nlohmann::json out = Bench("--requests 6 --concurrency 2 --output-tokens 2 --regex 'a+'");
  EXPECT_EQ(out["requests_ok"], 6);
  EXPECT_EQ(out["config"]["regex"], "a+");
  EXPECT_EQ(worker_->formatted_calls(), 6);
}

TEST_F(BenchTest, SessionsAppendTheirTurnsInOrder) {
  const nlohmann::json out = Bench(
      "--sessions 5 --turns 3 --concurrency 8 --prompt-tokens 16 --output-tokens 4 "
      "--shared-prefix 8");
  ExpectEveryKey(out);
  EXPECT_EQ(out["requests_ok"], 15);
  EXPECT_EQ(out["requests_failed"], 0);
  // The fake reports a session's history as cached: turn 2 reuses 20 of 36 prompt
  // tokens, turn 3 40 of 56, so (0 + 20 + 40) / (16 + 36 + 56) of the whole.
  EXPECT_NEAR(out["cache_hit_ratio"].get<double>(), 60.0 / 108.0, 1e-9);
  EXPECT_EQ(worker_->sessions().size(), 5u);
}

TEST_F(BenchTest, OpenLoopAtARate) {
  const nlohmann::json out =
      Bench("--requests 20 --rate 200 --prompt-tokens 8 --output-tokens 2 --seed 3");
  EXPECT_EQ(out["requests_ok"], 20);
  EXPECT_EQ(out["config"]["concurrency"], 0);
}

TEST_F(BenchTest, FailuresAreCountedByCode) {
  worker_->set_tokens(1, absl::Milliseconds(200));
  const nlohmann::json out =
      Bench("--requests 4 --concurrency 4 --output-tokens 2 --timeout-s 0.05");
  EXPECT_EQ(out["requests_ok"], 0);
  EXPECT_EQ(out["requests_failed"], 4);
  EXPECT_EQ(out["errors"], nlohmann::json({{"DEADLINE_EXCEEDED", 4}}));
}

TEST_F(BenchTest, AnUnreachableServerStopsTheRunBeforeItStarts) {
  worker_->set_unavailable(true);  // GetModelInfo is refused too
  const ToolRun run = RunTool("ringserve-bench", "--target " + worker_->address() +
                                                     " --json --requests 4 --output-tokens 2");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err.rfind("error: UNAVAILABLE: ", 0), 0u) << run.err;
}

TEST(BenchUsageTest, BadFlagsExitTwo) {
  for (const char* args :
       {"--requests 0", "--concurrency 0", "--prompt-tokens 4 --shared-prefix 5", "--bogus 1"}) {
    const ToolRun run = RunTool("ringserve-bench", std::string("--target 127.0.0.1:1 ") + args);
    EXPECT_EQ(run.exit_code, 2) << args << ": " << run.err;
  }
}

}  // namespace
}  // namespace ringserve::tools::testing
