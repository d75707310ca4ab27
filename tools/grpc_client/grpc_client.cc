#include "tools/grpc_client/grpc_client.h"

#include <chrono>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace ringserve::tools {
namespace {

constexpr char kWorkerKey[] = "x-ringserve-worker";

std::string FindWorker(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  const auto it = metadata.find(kWorkerKey);
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, int connection) {
  grpc::ChannelArguments args;
  // Subchannels are pooled process-wide by address and arguments; a local pool per
  // channel is what makes each channel open its own connection.
  if (connection > 0) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

void SetTimeout(grpc::ClientContext* context, double timeout_s) {
  if (timeout_s <= 0) return;
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string ServingWorker(const grpc::ClientContext& context, const std::string& reported) {
  if (!reported.empty()) return reported;
  std::string id = FindWorker(context.GetServerTrailingMetadata());
  return id.empty() ? FindWorker(context.GetServerInitialMetadata()) : id;
}

}  // namespace ringserve::tools
