#include <iostream>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/ringserve-cli/cli.h"

namespace ringserve::tools::cli {
namespace {

constexpr char kUsagePayload[] = "ringserve.cli/usage";

}  // namespace

void CommonFlags::Register(ArgParser& parser) {
  parser.AddString("target", &target, "HOST:PORT of a router or worker (default 127.0.0.1:50051)");
  parser.AddFloat("timeout-s", &timeout_s, "call deadline in seconds; 0 = none");
  parser.AddBool("json", &json, "print one JSON object instead of text");
  security.Register(parser);
}

absl::Status UsageError(absl::Status status) {
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

absl::Status ParseCommand(const std::string& usage, CommandArgs& args, ArgParser& parser) {
  args.common.Register(parser);
  parser.SetUsage(usage);
  if (absl::Status s = parser.Parse(args.argc, args.argv, args.first); !s.ok()) {
    return UsageError(s);
  }
  if (!parser.positional().empty()) {
    return UsageError(
        absl::InvalidArgumentError("unexpected argument '" + parser.positional().front() + "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const CommonFlags& common) {
  absl::StatusOr<ChannelFactory> channels = ChannelFactory::Create(common.security);
  if (!channels.ok()) return UsageError(channels.status());
  return channels->Make(common.target);
}

void PrintJson(const nlohmann::json& value) {
  std::cout << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

absl::Status ParseTokenIds(const std::string& list, ringserve::v1::TokenIds* ids) {
  for (absl::string_view piece : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens: '", std::string(piece), "' is not a token id"));
    }
    ids->add_ids(id);
  }
  if (ids->ids().empty()) return absl::InvalidArgumentError("--tokens: no ids");
  return absl::OkStatus();
}

}  // namespace ringserve::tools::cli
