#include "common/openai/call_context.h"

namespace ringserve::openai {

void PrepareContext(const HttpClient& client, grpc::ClientContext& context) {
  if (!client.authorization.empty()) context.AddMetadata("authorization", client.authorization);
  if (!client.address.empty()) context.AddMetadata(kClientAddressKey, client.address);
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace ringserve::openai
