// ringserve-bench --api openai end to end: against the router's OpenAI front end in process
// (over a fake worker) it reports what the gRPC API reports for the same workload; against a
// bare OpenAI-style server it copes with replies without token ids, and a stream that ends
// early is a failed request.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/http/http_server.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/router/openai_stack.h"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

using Json = nlohmann::json;
using router::testing::OpenAiStack;

Json BenchJson(const std::string& args, int expected_exit = 0) {
  const ToolRun run = RunTool("ringserve-bench", "--json " + args);
  EXPECT_EQ(run.exit_code, expected_exit) << run.err;
  const Json out = Json::parse(run.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(out.is_discarded(), expected_exit != 0) << run.out;
  return out;
}

class BenchOpenAiTest : public ::testing::Test {
 protected:
  BenchOpenAiTest() { stack_.worker().set_tokens(1, absl::Milliseconds(1)); }

  std::string OpenAiTarget() {
    return absl::StrCat("--api openai --vocab-size 32000 --target http://127.0.0.1:",
                        stack_.http().port());
  }
  std::string GrpcTarget() { return absl::StrCat("--target 127.0.0.1:", stack_.router().port()); }

  OpenAiStack stack_;
};

TEST_F(BenchOpenAiTest, TheSameWorkloadReportsTheSameAsOverGrpc) {
  const std::string workload =
      "--sessions 4 --turns 3 --concurrency 4 --prompt-tokens 16 --output-tokens 5 "
      "--shared-prefix 8 --seed 7";
  const Json grpc = BenchJson(GrpcTarget() + " --session-prefix g " + workload);
  const Json http = BenchJson(OpenAiTarget() + " --session-prefix h " + workload);
  EXPECT_EQ(http["config"]["api"], "openai");
  EXPECT_EQ(http["config"]["model"], "fake");  // the first /v1/models lists
  EXPECT_EQ(http["requests_ok"], 12);
  EXPECT_EQ(http["requests_failed"], 0) << http["errors"];
  for (const char* key : {"requests_ok", "input_tokens", "output_tokens", "prompt_tokens",
                          "cached_tokens", "cache_hit_ratio"}) {
    EXPECT_EQ(http[key], grpc[key]) << key;
  }
  EXPECT_EQ(http["ttft_ms"]["count"], 12);
  EXPECT_EQ(http["itl_ms"]["count"], 12 * 4);  // a gap after each token but the first
  EXPECT_GT(http["ttft_ms"]["p50"].get<double>(), 0);
  // --stateless resends each conversation whole: its replies go back as the ids streamed.
  const Json stateless = BenchJson(OpenAiTarget() + " --stateless " + workload);
  EXPECT_EQ(stateless["requests_ok"], 12);
  EXPECT_EQ(stateless["input_tokens"], grpc["prompt_tokens"]);
}

TEST_F(BenchOpenAiTest, EmbeddingsAndErrorsByTheirCode) {
  const Json embed = BenchJson(OpenAiTarget() + " --requests 6 --concurrency 2 --embed 3");
  EXPECT_EQ(embed["requests_ok"], 6);
  EXPECT_EQ(embed["embeddings"], 18);
  // A router that caps max_tokens refuses each request: its error names the gRPC code.
  router::RouterOptions options;
  options.policy.max_tokens = 4;
  OpenAiStack capped(options);
  const Json refused_all = BenchJson(
      absl::StrCat("--api openai --vocab-size 32000 --target 127.0.0.1:", capped.http().port(),
                   " --requests 3 --output-tokens 8"));
  EXPECT_EQ(refused_all["errors"], Json({{"INVALID_ARGUMENT", 3}})) << refused_all;
  const ToolRun missing = RunTool("ringserve-bench", OpenAiTarget() + " --model nope");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "NOT_FOUND")) << missing.err;
  const ToolRun refused = RunTool("ringserve-bench", OpenAiTarget() + " --connections 2");
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  for (const char* target : {"https://127.0.0.1:1", "127.0.0.1", "127.0.0.1:x"}) {
    const ToolRun bad = RunTool("ringserve-bench", absl::StrCat("--api openai --vocab-size 99 "
                                                                "--target ",
                                                                target));
    EXPECT_EQ(bad.exit_code, 2) << target << ": " << bad.err;
  }
  // An OpenAI SDK's base URL is taken as it is.
  const Json base_url =
      BenchJson(absl::StrCat("--api openai --vocab-size 32000 --target "
                             "http://127.0.0.1:",
                             stack_.http().port(), "/v1/ --requests 2"));
  EXPECT_EQ(base_url["requests_ok"], 2);
  const ToolRun no_vocab = RunTool(
      "ringserve-bench", absl::StrCat("--api openai --target 127.0.0.1:", stack_.http().port()));
  EXPECT_EQ(no_vocab.exit_code, 2) << no_vocab.err;
}

// A server of OpenAI's API that streams text without token ids (as servers without vLLM's
// return_token_ids do), and checks what each request carries.
class TextOnlyServer {
 public:
  TextOnlyServer() {
    http::HttpServerOptions options;
    options.host = "127.0.0.1";
    server_ = std::move(*http::HttpServer::Start(
        options, [this](http::HttpRequest request, std::shared_ptr<http::ResponseWriter> w) {
          Handle(request, *w);
        }));
  }
  int port() const { return server_->port(); }
  std::vector<std::string> problems() const {
    const std::lock_guard lock(mu_);
    return problems_;
  }

 private:
  void Handle(const http::HttpRequest& request, http::ResponseWriter& writer) {
    if (request.path == "/v1/models") {
      writer.Respond(200, "application/json",
                     R"({"object": "list", "data": [{"id": "text-model", "max_model_len": 64}, )"
                     R"({"id": "cut-model"}]})");
      return;
    }
    const Json body = Json::parse(request.body, nullptr, false);
    const std::string* id = request.Header("x-request-id");
    const std::string* auth = request.Header("authorization");
    if (body.is_discarded() || !body["prompt"].is_array() || body["stream"] != true ||
        !body["model"].is_string() || id == nullptr || !absl::StartsWith(*id, "bench-") ||
        auth == nullptr || *auth != "Bearer secret") {
      const std::lock_guard lock(mu_);
      problems_.push_back(request.body);
    }
    const int max_tokens = body.value("max_tokens", 1);
    writer.StartStream(200, "text/event-stream");
    for (int i = 0; i < max_tokens; ++i) {
      const bool last = i + 1 == max_tokens;
      writer.Write(absl::StrCat(R"(data: {"choices": [{"index": 0, "text": "a", "finish_reason": )",
                                last ? R"("length")" : "null", "}]}\n\n"));
    }
    // The "cut-model" stream stops before its usage and [DONE].
    if (body["model"] != "cut-model") {
      writer.Write(absl::StrCat(R"(data: {"choices": [], "usage": {"prompt_tokens": )",
                                body["prompt"].size(), R"(, "completion_tokens": )", max_tokens,
                                "}}\n\ndata: [DONE]\n\n"));
    }
    writer.Finish();
  }

  mutable std::mutex mu_;
  std::vector<std::string> problems_;
  std::unique_ptr<http::HttpServer> server_;
};

TEST(BenchOpenAiTextOnlyTest, RepliesWithoutIdsCountTheServersTokens) {
  TextOnlyServer server;
  const std::string target = absl::StrCat("--api openai --vocab-size 100 --token secret ",
                                          "--target 127.0.0.1:", server.port());
  const Json one_off =
      BenchJson(target + " --requests 5 --concurrency 2 --prompt-tokens 8 --output-tokens 3");
  EXPECT_EQ(one_off["requests_ok"], 5) << one_off["errors"];
  EXPECT_EQ(one_off["output_tokens"], 15);
  EXPECT_EQ(one_off["prompt_tokens"], 40);
  EXPECT_EQ(one_off["itl_ms"]["count"], 5 * 2);
  // Conversations resend their replies as ids: without ids they cannot, and say so.
  const Json turns =
      BenchJson(target + " --sessions 2 --turns 2 --prompt-tokens 8 --output-tokens 3 --stateless");
  EXPECT_EQ(turns["errors"], Json({{"FAILED_PRECONDITION", 4}})) << turns;
  // The context the model has (max_model_len) bounds the conversation.
  const ToolRun too_long = RunTool("ringserve-bench", target + " --prompt-tokens 80");
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(too_long.err, "context of 64")) << too_long.err;
  // A stream that stops before its usage chunk and [DONE] is a failure.
  const Json cut = BenchJson(target + " --model cut-model --requests 2 --output-tokens 2");
  EXPECT_EQ(cut["errors"], Json({{"DATA_LOSS", 2}})) << cut;
  EXPECT_EQ(cut["config"]["model"], "cut-model");
  EXPECT_TRUE(server.problems().empty()) << server.problems()[0];
}

}  // namespace
}  // namespace ringserve::tools::testing
