#include "router/proxy_call.h"

#include <random>

#include "absl/strings/str_cat.h"

namespace ringserve::router {
namespace {

std::string Find(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto it = metadata.find(kWorkerKey);
  return it == metadata.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status FirstTarget(const ProxyEnv& env, RoutePlanner& planner, Target* target) {
  if (env.draining.load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the router is draining");
  }
  *target = planner.First();
  if (target->conn == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no healthy worker");
  }
  return grpc::Status::OK;
}

uint64_t RandomBits() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

std::string WorkerId(const grpc::ClientContext& context, const std::string& address,
                     bool call_done) {
  // Trailing metadata is complete only once the call is done; reading it earlier races
  // with gRPC filling it in and freezes the map empty for the later read.
  std::string id = call_done ? Find(context.GetServerTrailingMetadata()) : std::string();
  if (id.empty()) id = Find(context.GetServerInitialMetadata());
  return id.empty() ? address : id;
}

void AddWorkerMetadata(grpc::CallbackServerContext* context, const std::string& worker_id,
                       const std::string& address, bool initial) {
  if (initial) {
    context->AddInitialMetadata(kWorkerKey, worker_id);
    context->AddInitialMetadata(kWorkerAddressKey, address);
  } else {
    context->AddTrailingMetadata(kWorkerKey, worker_id);
    context->AddTrailingMetadata(kWorkerAddressKey, address);
  }
}

grpc::Status ClientStatus(const grpc::Status& status, const std::string& address,
                          int64_t messages_relayed, bool client_cancelled) {
  const grpc::StatusCode code = status.error_code();
  // A worker that is killed or shut down mid-call shows up as UNAVAILABLE (connection
  // lost) or CANCELLED (its server cancelled the call); INTERNAL and the rest are the
  // worker's own answers.
  const bool worker_failed = code == grpc::StatusCode::UNAVAILABLE ||
                             (code == grpc::StatusCode::CANCELLED && !client_cancelled);
  if (status.ok() || !worker_failed) return status;
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("worker ", address, " failed after ", messages_relayed,
                                   " response message(s) were relayed: ", status.error_message()));
}

}  // namespace ringserve::router
