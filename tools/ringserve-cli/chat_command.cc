// `ringserve-cli chat`: a conversation from stdin, a line a user message, each reply streamed
// as it is generated. The turns go to one session (each appends to it, so the worker reuses
// the KV blocks of the turns before); the whole conversation is also kept here, and resent
// when the session is gone or no longer holds what this client saw (a worker restarted, the
// ring changed): the recovery every long-lived client of the API needs.
#include <unistd.h>

#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/ringserve-cli/cli.h"

namespace ringserve::tools::cli {
namespace {

namespace pb = ringserve::v1;

constexpr char kUsage[] =
    "usage: ringserve-cli chat [--session S] [--system TEXT] [--max-tokens N]\n"
    "       [--temperature X] [--seed N] [--no-thinking] [--keep-session] [--json]\n"
    "       (user messages from stdin, one a line; replies on stdout)";

struct ChatFlags {
  std::string session;
  std::string system;
  int max_tokens = 0;
  double temperature = 1.0;
  int64_t seed = 0;
  bool no_thinking = false;
  bool keep_session = false;
};

// One reply as it came back.
struct Reply {
  std::string text;
  pb::GenerateFinal final;
  bool has_final = false;
};

std::string NewSessionId() {
  std::random_device random;
  return absl::StrFormat("cli-chat-%08x%08x", random(), random());
}

// `request` streamed, its text to stdout as it comes (the thought to stderr) unless `json`.
absl::StatusOr<Reply> Stream(pb::Inference::Stub& stub, const pb::GenerateRequest& request,
                             const CommonFlags& common) {
  grpc::ClientContext context;
  SetTimeout(&context, common.TimeoutOr(0));
  std::unique_ptr<grpc::ClientReader<pb::GenerateResponse>> reader =
      stub.Generate(&context, request);
  Reply reply;
  pb::GenerateResponse response;
  while (reader->Read(&response)) {
    reply.text += response.text();
    if (!common.json) {
      if (!response.reasoning().empty()) std::cerr << response.reasoning();
      std::cout << response.text() << std::flush;
    }
    if (response.has_final()) {
      reply.final = response.final();
      reply.has_final = true;
    }
  }
  if (grpc::Status status = reader->Finish(); !status.ok()) return FromGrpcStatus(status);
  if (!reply.has_final) return absl::DataLossError("the stream ended without a final message");
  return reply;
}

}  // namespace

absl::Status RunChat(CommandArgs args) {
  ChatFlags flags;
  ArgParser parser;
  parser.AddString("session", &flags.session, "the session's id (default: a new random one)");
  parser.AddString("system", &flags.system, "a system message that opens the conversation");
  parser.AddInt("max-tokens", &flags.max_tokens, "the most tokens a reply may have");
  parser.AddFloat("temperature", &flags.temperature, "0: greedy");
  parser.AddInt("seed", &flags.seed, "the first reply's seed (each later one the next)");
  parser.AddBool("no-thinking", &flags.no_thinking,
                 "a model that thinks first (info: thinking) answers without its thought");
  parser.AddBool("keep-session", &flags.keep_session,
                 "leave the session on the worker at the end (else it is closed)");
  RS_RETURN_IF_ERROR(ParseCommand(kUsage, args, parser));
  if (flags.session.empty()) flags.session = NewSessionId();
  RS_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenChannel(args.common));
  std::unique_ptr<pb::Inference::Stub> stub = pb::Inference::NewStub(channel);

  std::vector<pb::ChatMessage> conversation;  // every turn so far, replies included
  if (!flags.system.empty()) {
    conversation.emplace_back();
    conversation.back().set_role("system");
    conversation.back().set_content(flags.system);
  }
  std::optional<int32_t> history_tokens;  // what the session held after the last reply
  const bool interactive = isatty(STDIN_FILENO) != 0 && !args.common.json;
  std::string line;
  for (int turn = 0;; ++turn) {
    if (interactive) std::cerr << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) {
      --turn;
      continue;
    }
    pb::ChatMessage user;
    user.set_role("user");
    user.set_content(line);
    pb::GenerateRequest request;
    request.set_session_id(flags.session);
    if (parser.IsSet("max-tokens")) request.mutable_stop()->set_max_tokens(flags.max_tokens);
    if (parser.IsSet("temperature")) {
      request.mutable_sampling()->set_temperature(static_cast<float>(flags.temperature));
    }
    if (parser.IsSet("seed")) {
      request.mutable_sampling()->set_seed(static_cast<uint64_t>(flags.seed + turn));
    }
    if (flags.no_thinking) request.mutable_chat()->set_enable_thinking(false);
    // The next turn only, onto the session as the last reply left it ...
    pb::GenerateRequest appended = request;
    appended.set_append(true);
    appended.set_expected_history_tokens(history_tokens.value_or(0));
    *appended.mutable_chat()->add_messages() = user;
    // ... or the whole conversation, when there is no session yet or it went astray.
    pb::GenerateRequest whole = request;
    for (const pb::ChatMessage& m : conversation) *whole.mutable_chat()->add_messages() = m;
    *whole.mutable_chat()->add_messages() = user;

    absl::StatusOr<Reply> reply =
        Stream(*stub, history_tokens.has_value() ? appended : whole, args.common);
    if (!reply.ok() && history_tokens.has_value() &&
        (reply.status().code() == absl::StatusCode::kNotFound ||
         reply.status().code() == absl::StatusCode::kFailedPrecondition) &&
        reply.status().message().find("busy") == std::string::npos) {
      if (!args.common.json) std::cerr << "[the session was lost: resending the conversation]\n";
      reply = Stream(*stub, whole, args.common);
    }
    if (!reply.ok()) return reply.status();
    const pb::Usage& usage = reply->final.usage();
    if (args.common.json) {
      PrintJson({{"text", reply->text},
                 {"finish_reason", FinishReasonName(reply->final.finish_reason())},
                 {"history_tokens", reply->final.history_tokens()},
                 {"usage",
                  {{"prompt_tokens", usage.prompt_tokens()},
                   {"cached_tokens", usage.cached_tokens()},
                   {"completion_tokens", usage.completion_tokens()}}}});
    } else {
      std::cout << "\n" << std::flush;
    }
    conversation.push_back(user);
    conversation.emplace_back();
    conversation.back().set_role("assistant");
    conversation.back().set_content(reply->text);
    history_tokens = reply->final.history_tokens();
  }
  if (history_tokens.has_value() && !flags.keep_session) {
    pb::CloseSessionRequest close;
    close.set_session_id(flags.session);
    absl::Status closed =
        Unary<pb::Inference>(args.common, &pb::Inference::Stub::CloseSession, close).status();
    if (!closed.ok() && closed.code() != absl::StatusCode::kNotFound) return closed;  // gone
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools::cli
