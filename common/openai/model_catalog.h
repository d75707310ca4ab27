// ModelCatalog: the served model's ModelInfo, fetched from the fleet (GetModelInfo through
// the router) and kept for a while, so that resolving a request's "model" costs no call.
#ifndef RINGSERVE_COMMON_OPENAI_MODEL_CATALOG_H_
#define RINGSERVE_COMMON_OPENAI_MODEL_CATALOG_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/openai/call_context.h"
#include "ringserve/v1/inference.grpc.pb.h"

namespace ringserve::openai {

// Owner: OpenAiGateway, shared with the calls fetching for it. Thread: any; one mutex guards
// the cached value and the waiting callbacks.
class ModelCatalog : public std::enable_shared_from_this<ModelCatalog> {
 public:
  using Callback = std::function<void(absl::StatusOr<ringserve::v1::ModelInfo>)>;

  ModelCatalog(std::shared_ptr<ringserve::v1::Inference::Stub> stub, absl::Duration ttl);

  // Calls `done` with the ModelInfo: at once (on this thread) when the cached one is fresh,
  // else once a GetModelInfo made with `client`'s credentials answers (callers with the same
  // credentials waiting meanwhile share that call and its answer; a client with a bad token
  // never fails another's). A failure is not cached.
  void Get(const HttpClient& client, Callback done);

 private:
  void Finish(const std::string& authorization, absl::StatusOr<ringserve::v1::ModelInfo> info);

  const std::shared_ptr<ringserve::v1::Inference::Stub> stub_;
  const absl::Duration ttl_;
  std::mutex mu_;
  std::optional<ringserve::v1::ModelInfo> cached_;  // guarded by mu_
  absl::Time fetched_at_ = absl::InfinitePast();    // guarded by mu_
  // Callbacks waiting on a fetch, by the Authorization header it was made with.
  absl::flat_hash_map<std::string, std::vector<Callback>> waiting_;  // guarded by mu_
};

// One GetModelInfo with `client`'s credentials; `done` runs on a gRPC thread with its answer.
void FetchModelInfo(ringserve::v1::Inference::Stub& stub, const HttpClient& client,
                    std::function<void(absl::StatusOr<ringserve::v1::ModelInfo>)> done);

// The adapter a request's "model" names: "" for the served model (its name, `served_name`
// when set, or no name at all), else the name itself, which the worker looks up among its
// LoRA adapters (NOT_FOUND when it has none by that name).
std::string AdapterFor(const std::string& model, const ringserve::v1::ModelInfo& info,
                       const std::string& served_name);

}  // namespace ringserve::openai

#endif  // RINGSERVE_COMMON_OPENAI_MODEL_CATALOG_H_
