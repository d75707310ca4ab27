// `ringserve-cli fork` and `close`: the session calls that need no stream.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "ringserve/v1/inference.grpc.pb.h"
#include "tools/ringserve-cli/cli.h"

namespace ringserve::tools::cli {
namespace {

using ringserve::v1::CloseSessionRequest;
using ringserve::v1::CloseSessionResponse;
using ringserve::v1::ForkRequest;
using ringserve::v1::ForkResponse;
using ringserve::v1::Inference;

absl::Status RequireSession(const std::string& session) {
  if (!session.empty()) return absl::OkStatus();
  return UsageError(absl::InvalidArgumentError("--session is required"));
}

}  // namespace

absl::Status RunFork(CommandArgs args) {
  std::string session;
  int num_forks = 1;
  ArgParser parser;
  parser.AddString("session", &session, "the parent session");
  parser.AddInt("n", &num_forks, "how many sessions to make, in [1, 64] (default 1)");
  RS_RETURN_IF_ERROR(
      ParseCommand("usage: ringserve-cli fork --session S [--n N] [--json]", args, parser));
  RS_RETURN_IF_ERROR(RequireSession(session));
  ForkRequest request;
  request.set_session_id(session);
  request.set_num_forks(num_forks);
  RS_ASSIGN_OR_RETURN(ForkResponse response,
                      Unary<Inference>(args.common, &Inference::Stub::Fork, request));
  if (args.common.json) {
    PrintJson({{"session_ids", response.session_ids()}, {"worker", response.worker_id()}});
  } else {
    for (const std::string& id : response.session_ids()) std::cout << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunClose(CommandArgs args) {
  std::string session;
  ArgParser parser;
  parser.AddString("session", &session, "the session to forget");
  RS_RETURN_IF_ERROR(ParseCommand("usage: ringserve-cli close --session S [--json]", args, parser));
  RS_RETURN_IF_ERROR(RequireSession(session));
  CloseSessionRequest request;
  request.set_session_id(session);
  RS_ASSIGN_OR_RETURN(CloseSessionResponse response,
                      Unary<Inference>(args.common, &Inference::Stub::CloseSession, request));
  if (args.common.json) {
    PrintJson({{"session", session},
               {"num_tokens", response.num_tokens()},
               {"worker", response.worker_id()}});
  } else {
    std::cout << "closed " << session << " (" << response.num_tokens() << " tokens) on "
              << response.worker_id() << "\n";
  }
  return absl::OkStatus();
}

}  // namespace ringserve::tools::cli
