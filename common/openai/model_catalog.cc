#include "common/openai/model_catalog.h"

#include <utility>

#include "common/openai/unary_call.h"

namespace ringserve::openai {

namespace pb = ringserve::v1;

ModelCatalog::ModelCatalog(std::shared_ptr<pb::Inference::Stub> stub, absl::Duration ttl)
    : stub_(std::move(stub)), ttl_(ttl) {}

void ModelCatalog::Get(const HttpClient& client, Callback done) {
  {
    std::unique_lock lock(mu_);
    if (cached_.has_value() && absl::Now() - fetched_at_ < ttl_) {
      pb::ModelInfo info = *cached_;
      lock.unlock();
      done(std::move(info));
      return;
    }
    std::vector<Callback>& waiting = waiting_[client.authorization];
    waiting.push_back(std::move(done));
    if (waiting.size() > 1) return;  // a fetch with these credentials is on its way
  }
  FetchModelInfo(
      *stub_, client,
      [self = shared_from_this(), authorization = client.authorization](
          absl::StatusOr<pb::ModelInfo> info) { self->Finish(authorization, std::move(info)); });
}

void FetchModelInfo(pb::Inference::Stub& stub, const HttpClient& client,
                    std::function<void(absl::StatusOr<pb::ModelInfo>)> done) {
  StartUnaryCall<pb::ModelInfo>(
      [&stub](auto* context, auto* request, auto* response, auto callback) {
        stub.async()->GetModelInfo(context, request, response, std::move(callback));
      },
      client, pb::GetModelInfoRequest(), /*cancel_with=*/nullptr, std::move(done));
}

void ModelCatalog::Finish(const std::string& authorization, absl::StatusOr<pb::ModelInfo> info) {
  std::vector<Callback> waiting;
  {
    std::lock_guard lock(mu_);
    if (info.ok()) {
      cached_ = *info;
      fetched_at_ = absl::Now();
    }
    const auto it = waiting_.find(authorization);
    waiting.swap(it->second);
    waiting_.erase(it);
  }
  for (Callback& done : waiting) done(info);
}

std::string AdapterFor(const std::string& model, const pb::ModelInfo& info,
                       const std::string& served_name) {
  if (model.empty() || model == info.model_name() || model == served_name) return "";
  return model;
}

}  // namespace ringserve::openai
