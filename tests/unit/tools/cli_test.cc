// ringserve-cli end to end against an in-process fake worker: every command's JSON, the
// streamed text, and the exit statuses (1 for a failed call, 2 for a bad command line).
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/router/fake_worker.h"
#include "tests/unit/tools/run_tool.h"

namespace ringserve::tools::testing {
namespace {

using router::testing::FakeWorker;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = std::make_unique<FakeWorker>("fake-w1");
    worker_->set_tokens(4, absl::ZeroDuration());
  }

  ToolRun Cli(const std::string& args) {
    return RunTool("ringserve-cli", "--target " + worker_->address() + " " + args);
  }

  // Runs a command that must succeed and print one JSON object.
  nlohmann::json CliJson(const std::string& args) {
    const ToolRun run = Cli(args + " --json");
    EXPECT_EQ(run.exit_code, 0) << args << ": " << run.err;
    const nlohmann::json out = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(out.is_discarded()) << args << " printed: " << run.out;
    return out;
  }

  std::unique_ptr<FakeWorker> worker_;
};

TEST_F(CliTest, GenerateJsonHasEveryKey) {
  const nlohmann::json out = CliJson("generate --session s1 --text hello --max-tokens 3 --seed 7");
  EXPECT_EQ(out["text"], "t0 t1 t2 ");
  EXPECT_EQ(out["token_ids"], nlohmann::json({0, 1, 2}));
  EXPECT_EQ(out["finish_reason"], "max_tokens");
  EXPECT_EQ(out["worker"], "fake-w1");
  EXPECT_EQ(out["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(out["usage"]["cached_tokens"], 0);
  EXPECT_EQ(out["usage"]["completion_tokens"], 3);
  for (const char* key : {"queue_time_us", "time_to_first_token_us"}) {
    EXPECT_TRUE(out["usage"].contains(key)) << key;
  }
  EXPECT_EQ(out["history_tokens"], 8);
  EXPECT_TRUE(out.contains("seed"));
}

TEST_F(CliTest, GenerateStreamsTextAndAppendsToTheSession) {
  const ToolRun first = Cli("generate --session s2 --tokens 5,6,7");
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.out, "t0 t1 t2 t3 \n");
  EXPECT_NE(first.err.find("max_tokens; worker fake-w1"), std::string::npos) << first.err;
  const nlohmann::json second = CliJson("generate --session s2 --text ab --append");
  EXPECT_EQ(second["usage"]["prompt_tokens"], 7 + 2);
  EXPECT_EQ(second["usage"]["cached_tokens"], 7);
}

// --message ROLE:TEXT, repeated, is one chat request (the fake worker counts a byte per
// "role:content" character as its prompt).
TEST_F(CliTest, MessagesMakeOneChatRequest) {
  const nlohmann::json out =
      CliJson("generate --session c1 --message \"system:Be brief.\" --message user:hi:there");
  EXPECT_EQ(out["usage"]["prompt_tokens"], std::string("system:Be brief.user:hi:there").size());
  EXPECT_EQ(out["token_ids"], nlohmann::json({0, 1, 2, 3}));
  // tool@ID: a result naming the call it answers (the fake worker counts the id's bytes).
  const nlohmann::json result = CliJson("generate --message tool@abcDEF123:18C");
  EXPECT_EQ(result["usage"]["prompt_tokens"], std::string("tool:18CabcDEF123").size());
  // --continue: the last message is the start of the reply (the fake counts its content).
  const nlohmann::json continued =
      CliJson("generate --message user:hi --message \"assistant:Sure, \" --continue");
  EXPECT_EQ(continued["usage"]["prompt_tokens"], std::string("user:hiSure, ").size());
  EXPECT_EQ(Cli("generate --text hi --continue").exit_code, 2);
}

// chat: a line of stdin a turn, each appended to one session, which is closed at the end; a
// session the worker lost is recovered by resending the conversation.
TEST_F(CliTest, ChatTurnsAppendToOneSessionAndSurviveItsLoss) {
  const std::string input = ::testing::TempDir() + "/cli_chat.txt";
  std::ofstream(input) << "hi\n\nagain\n";
  const auto turns = [&](const std::string& flags) {
    const ToolRun run = Cli("chat --max-tokens 2 --json " + flags + " < " + input);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    std::vector<nlohmann::json> out;
    for (const std::string& line :
         std::vector<std::string>(absl::StrSplit(run.out, '\n', absl::SkipEmpty()))) {
      out.push_back(nlohmann::json::parse(line));
    }
    return out;
  };
  std::vector<nlohmann::json> out = turns("--session c1 --system Be");
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[0]["usage"]["prompt_tokens"], std::string("system:Beuser:hi").size());
  EXPECT_EQ(out[0]["text"], "t0 t1 ");
  EXPECT_EQ(out[1]["usage"]["cached_tokens"], out[0]["history_tokens"]);
  EXPECT_EQ(out[1]["usage"]["prompt_tokens"],
            out[0]["history_tokens"].get<int>() + std::string("user:again").size());
  EXPECT_FALSE(worker_->HasHistory("c1"));  // closed

  // Lost after each reply: the next turn resends the whole conversation, reply included.
  worker_->set_forget_sessions(true);
  out = turns("--session c2");
  ASSERT_EQ(out.size(), 2U);
  EXPECT_EQ(out[1]["usage"]["cached_tokens"], 0);
  EXPECT_EQ(out[1]["usage"]["prompt_tokens"],
            std::string("user:hiassistant:t0 t1 user:again").size());
}

// --tools FILE (plain or OpenAI-wrapped entries) and --tool-choice make the chat's tools; the
// fake worker answers with a call whose arguments describe what it was offered.
TEST_F(CliTest, ToolsAndToolChoiceGoWithTheChat) {
  const std::string file = ::testing::TempDir() + "/cli_tools.json";
  {
    std::ofstream out(file);
    out << R"([{"type": "function", "function": {"name": "get_weather", "description": "d",
               "parameters": {"type": "object"}}}, {"name": "now"}])";
  }
  const nlohmann::json out =
      CliJson("generate --message user:hi --tools " + file + " --tool-choice now");
  EXPECT_EQ(out["finish_reason"], "tool_calls");
  ASSERT_EQ(out["tool_calls"].size(), 1U);
  EXPECT_EQ(out["tool_calls"][0]["name"], "get_weather");
  EXPECT_EQ(nlohmann::json::parse(out["tool_calls"][0]["arguments"].get<std::string>()),
            nlohmann::json::parse(
                R"({"tools": 2, "mode": 2, "only": "now", "parameters": {"type": "object"}})"));
  const ToolRun text = Cli("generate --message user:hi --max-tokens 1 --tools " + file);
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("[call call_fake] get_weather {\"tools\": 2, \"mode\": 0"),
            std::string::npos)
      << text.out;
  const nlohmann::json single =
      CliJson("generate --message user:hi --tools " + file + " --no-parallel-tool-calls");
  EXPECT_EQ(
      nlohmann::json::parse(single["tool_calls"][0]["arguments"].get<std::string>())["parallel"],
      false);
  // Streamed, the call's line fills as its arguments come, and is printed once.
  const ToolRun streamed =
      Cli("generate --message user:hi --max-tokens 1 --stream-tool-calls --tools " + file);
  EXPECT_EQ(streamed.exit_code, 0);
  const size_t line = streamed.out.find("[call call_fake] get_weather {\"tools\": 2");
  EXPECT_NE(line, std::string::npos) << streamed.out;
  EXPECT_EQ(streamed.out.find("[call", line + 1), std::string::npos) << streamed.out;
  EXPECT_EQ(Cli("generate --text hi --tools " + file).exit_code, 2);
  EXPECT_EQ(Cli("generate --text hi --stream-tool-calls").exit_code, 2);
  EXPECT_EQ(Cli("generate --text hi --no-parallel-tool-calls").exit_code, 2);
  std::ofstream(file) << R"({"name": "x"})";
  EXPECT_EQ(Cli("generate --message user:hi --tools " + file).exit_code, 2);
}

TEST_F(CliTest, ForkAndClose) {
  ASSERT_EQ(Cli("generate --session parent --text abc").exit_code, 0);
  const nlohmann::json forked = CliJson("fork --session parent --n 2");
  EXPECT_EQ(forked["session_ids"], nlohmann::json({"parent#1", "parent#2"}));
  EXPECT_EQ(forked["worker"], "fake-w1");
  const nlohmann::json closed = CliJson("close --session parent#1");
  EXPECT_EQ(closed["num_tokens"], 3 + 4);
  EXPECT_EQ(closed["worker"], "fake-w1");
  const ToolRun again = Cli("close --session parent#1");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_EQ(again.err, "error: NOT_FOUND: session_id: no such session\n");
}

TEST_F(CliTest, TokenizeInfoStatsHealthDrain) {
  const nlohmann::json tokens = CliJson("tokenize --text hi");
  EXPECT_EQ(tokens["token_ids"], nlohmann::json({'h', 'i'}));
  EXPECT_EQ(tokens["pieces"], nlohmann::json({"h", "i"}));
  // A conversation: the fake worker's stand-in rendering, "role:content" a byte a token.
  const nlohmann::json chat =
      CliJson("tokenize --message user:hi --message assistant:Su --continue");
  EXPECT_EQ(chat["token_ids"].size(), std::string("user:hiSu").size());
  EXPECT_EQ(Cli("tokenize --text hi --message user:hi").exit_code, 2);
  EXPECT_EQ(Cli("tokenize --text hi --append").exit_code, 2);
  EXPECT_EQ(CliJson("detokenize --ids 104,105")["text"], "hi");
  EXPECT_EQ(Cli("detokenize --ids '104 105'").out, "hi\n");
  EXPECT_EQ(Cli("detokenize --ids 104,x").exit_code, 2);
  EXPECT_EQ(Cli("detokenize --ids 104,1000").exit_code, 1);
  const nlohmann::json info = CliJson("info");
  EXPECT_EQ(info["vocab_size"], 32000);
  EXPECT_EQ(info["worker_id"], "fake-w1");
  const nlohmann::json stats = CliJson("stats");
  EXPECT_EQ(stats["workers"][0]["worker_id"], "fake-w1");
  const ToolRun text = Cli("stats");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("speculative decoding: 4 of 10 draft tokens accepted (40.0%)"),
            std::string::npos)
      << text.out;
  EXPECT_EQ(CliJson("health")["status"], "SERVING");
  EXPECT_EQ(CliJson("drain")["remaining_requests"], 0);
  const ToolRun drained = Cli("health");
  EXPECT_EQ(drained.exit_code, 1);
  EXPECT_EQ(drained.out, "NOT_SERVING\n");
}

TEST_F(CliTest, GlobalFlagsMayFollowTheCommand) {
  const ToolRun run = RunTool("ringserve-cli", "info --json --target=" + worker_->address());
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

TEST(CliErrorsTest, UnreachableTargetIsUnavailable) {
  const ToolRun run = RunTool("ringserve-cli", "--target 127.0.0.1:1 info");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err.rfind("error: UNAVAILABLE: ", 0), 0u) << run.err;
}

TEST(CliErrorsTest, UsageErrorsExitTwo) {
  for (const char* args :
       {"", "frobnicate", "generate --session s", "generate --text a --tokens 1",
        "generate --text a --max-tokens many", "info --bogus", "fork", "generate --tokens 1,x",
        "generate --text a --logit-bias 5", "generate --text a --logit-bias 5:x,6:1",
        "generate --text a --logit-bias 5:1:2", "generate --text a --logit-bias 5:1,5:2",
        "generate --message user", "generate --text a --message user:hi",
        "generate --text a --thinking", "generate --message user:hi --thinking --no-thinking",
        "generate --text a --json-object --json-schema /dev/null",
        "generate --text a --json-schema /nonexistent/schema.json"}) {
    const ToolRun run = RunTool("ringserve-cli", std::string("--target 127.0.0.1:1 ") + args);
    EXPECT_EQ(run.exit_code, 2) << args << ": " << run.err;
  }
}

TEST(CliErrorsTest, HelpExitsZero) {
  for (const char* args : {"--help", "generate --help", "drain --help"}) {
    const ToolRun run = RunTool("ringserve-cli", args);
    EXPECT_EQ(run.exit_code, 0) << args;
    EXPECT_NE(run.out.find("usage: ringserve-cli"), std::string::npos) << args << run.out;
  }
}

}  // namespace
}  // namespace ringserve::tools::testing
