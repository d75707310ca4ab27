// ringserve-cli's pieces: the flags every command shares, how a command reports a usage
// error (exit 2) apart from a failed call (exit 1), and the commands themselves.
#ifndef RINGSERVE_TOOLS_RINGSERVE_CLI_CLI_H_
#define RINGSERVE_TOOLS_RINGSERVE_CLI_CLI_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"
#include "ringserve/v1/inference.pb.h"
#include "tools/common/arg_parser.h"
#include "tools/grpc_client/grpc_client.h"

namespace ringserve::tools::cli {

// Flags accepted before the command name and after it (the later one wins).
struct CommonFlags {
  std::string target = "127.0.0.1:50051";
  // < 0: the command's own default (none for generate, 30 s for the rest); 0: none.
  double timeout_s = -1;
  bool json = false;
  ClientSecurity security;

  void Register(ArgParser& parser);
  double TimeoutOr(double fallback_s) const { return timeout_s < 0 ? fallback_s : timeout_s; }
};

// argv[first..argc) holds the command's own flags.
struct CommandArgs {
  int argc = 0;
  char** argv = nullptr;
  int first = 0;
  CommonFlags common;
};

// A bad command line: INVALID_ARGUMENT marked so main() exits 2, whereas an
// INVALID_ARGUMENT the server answered exits 1 like every failed call.
absl::Status UsageError(absl::Status status);
bool IsUsageError(const absl::Status& status);

// Registers `common` on the parser, sets the usage line, parses the command's flags and
// turns a parse failure into a usage error.
absl::Status ParseCommand(const std::string& usage, CommandArgs& args, ArgParser& parser);

// A channel to the command's target with its TLS files and token; a file that cannot be
// used is a usage error.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const CommonFlags& common);

// One JSON document on stdout. Text that is not UTF-8 (token pieces) is replaced rather
// than thrown on.
void PrintJson(const nlohmann::json& value);

// The deadline of every command but generate, unless --timeout-s says otherwise.
inline constexpr double kUnaryTimeoutS = 30;

// Runs one unary call of `Service` (e.g. `Unary<Inference>(common,
// &Inference::Stub::Fork, request)`) on the command's target under its deadline.
template <typename Service, typename Request, typename Response>
absl::StatusOr<Response> Unary(const CommonFlags& common,
                               grpc::Status (Service::Stub::*method)(grpc::ClientContext*,
                                                                     const Request&, Response*),
                               const Request& request) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = OpenChannel(common);
  if (!channel.ok()) return channel.status();
  auto stub = Service::NewStub(*channel);
  grpc::ClientContext context;
  SetTimeout(&context, common.TimeoutOr(kUnaryTimeoutS));
  Response response;
  if (grpc::Status status = ((*stub).*method)(&context, request, &response); !status.ok()) {
    return FromGrpcStatus(status);
  }
  return response;
}

// "1,2,3" (a --tokens flag) into `ids`; INVALID_ARGUMENT naming the piece that is not an id.
absl::Status ParseTokenIds(const std::string& list, ringserve::v1::TokenIds* ids);

// "FINISH_REASON_MAX_TOKENS" -> "max_tokens".
std::string FinishReasonName(ringserve::v1::FinishReason reason);

absl::Status RunGenerate(CommandArgs args);
absl::Status RunChat(CommandArgs args);
absl::Status RunFork(CommandArgs args);
absl::Status RunClose(CommandArgs args);
absl::Status RunTokenize(CommandArgs args);
absl::Status RunDetokenize(CommandArgs args);
absl::Status RunInfo(CommandArgs args);
absl::Status RunEmbed(CommandArgs args);
absl::Status RunStats(CommandArgs args);
absl::Status RunLoadAdapter(CommandArgs args);
absl::Status RunUnloadAdapter(CommandArgs args);
absl::Status RunDrain(CommandArgs args);
absl::Status RunHealth(CommandArgs args);

}  // namespace ringserve::tools::cli

#endif  // RINGSERVE_TOOLS_RINGSERVE_CLI_CLI_H_
