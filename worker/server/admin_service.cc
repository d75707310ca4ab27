#include "worker/server/admin_service.h"

#include <thread>

#include "common/grpc/grpc_status.h"

namespace ringserve::server {

namespace pb = ringserve::v1;

namespace {

// LoadAdapter's and UnloadAdapter's answer on a worker without --max-loras.
absl::Status NoAdaptersWhileServing() {
  return absl::FailedPreconditionError(
      "this worker loads and unloads no LoRA adapters while serving; start it with "
      "--max-loras N");
}

}  // namespace

grpc::ServerUnaryReactor* AdminService::GetStats(grpc::CallbackServerContext* context,
                                                 const pb::GetStatsRequest* request,
                                                 pb::GetStatsResponse* response) {
  const engine::GeneratorStats stats = env_.service->generator->Stats();
  pb::WorkerStats* w = response->add_workers();
  w->set_worker_id(env_.service->worker_id);
  const absl::Time now = absl::Now();
  w->set_uptime_s(absl::ToDoubleSeconds(now - env_.started));
  w->set_draining(env_.draining());
  pb::KvCacheStats* kv = w->mutable_kv_cache();
  kv->set_blocks_total(stats.kv.num_blocks);
  kv->set_blocks_used(stats.kv.num_used_blocks);
  kv->set_blocks_cached(stats.kv.num_cached_blocks);
  kv->set_blocks_free(stats.kv.num_free_blocks - stats.kv.num_cached_blocks);
  kv->set_block_size_tokens(env_.service->generator->block_size_tokens());
  kv->set_prompt_tokens_total(stats.num_prompt_tokens);
  kv->set_cache_hit_tokens_total(stats.num_cached_tokens);
  kv->set_host_blocks_total(stats.kv.num_host_blocks);
  kv->set_host_blocks_stored(stats.kv.num_host_stored_blocks);
  kv->set_offloaded_blocks_total(stats.kv.num_offloaded_blocks);
  kv->set_host_hit_tokens_total(stats.kv.num_host_hit_tokens);
  env_.steps->Summarize(now, w->mutable_batches());
  w->set_running_requests(stats.num_running);
  w->set_waiting_requests(stats.num_waiting);
  w->set_queue_capacity(env_.queue_capacity);
  w->set_sessions(stats.num_sessions);
  w->set_requests_total(stats.num_jobs_finished + stats.num_jobs_cancelled + stats.num_jobs_failed);
  w->set_generated_tokens_total(stats.num_generated_tokens);
  w->set_preemptions_total(stats.num_preemptions);
  w->set_draft_tokens_total(stats.num_draft_tokens);
  w->set_accepted_draft_tokens_total(stats.num_accepted_tokens);
  w->set_waiting_for_adapter(stats.num_waiting_for_adapter);
  w->set_adapter_swaps_total(stats.num_adapter_swaps);
  context->AddTrailingMetadata("x-ringserve-worker", env_.service->worker_id);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Drain(grpc::CallbackServerContext* context,
                                              const pb::DrainRequest* request,
                                              pb::DrainResponse* response) {
  env_.begin_drain();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  engine::Generator* generator = env_.service->generator;
  auto remaining = [generator] {
    const engine::GeneratorStats s = generator->Stats();
    return s.num_running + s.num_waiting;
  };
  if (!request->wait()) {
    response->set_remaining_requests(remaining());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // Waiting may take as long as the longest request: it must not hold a gRPC callback
  // thread, so a short-lived thread waits and finishes the call (the call's context and
  // response live until Finish).
  const absl::Time deadline = absl::FromChrono(context->deadline());
  std::thread([generator, reactor, response, deadline, remaining] {
    const bool drained = generator->Drain(deadline - absl::Now());
    response->set_remaining_requests(drained ? 0 : remaining());
    reactor->Finish(drained ? grpc::Status::OK
                            : grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                           "requests still running at the call's deadline"));
  }).detach();
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::LoadAdapter(grpc::CallbackServerContext* context,
                                                    const pb::LoadAdapterRequest* request,
                                                    pb::AdapterResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  context->AddTrailingMetadata("x-ringserve-worker", env_.service->worker_id);
  if (!env_.read_adapter) {
    reactor->Finish(ToGrpcStatus(NoAdaptersWhileServing()));
    return reactor;
  }
  std::thread([this, reactor, response, name = request->name(), path = request->path()] {
    absl::Status status = model::CheckAdapterName(name);
    if (status.ok()) {
      absl::StatusOr<std::shared_ptr<const model::LoraAdapter>> adapter =
          env_.read_adapter(name, path);
      status = adapter.ok() ? env_.service->generator->LoadAdapter(name, *std::move(adapter))
                            : adapter.status();
    }
    if (status.ok()) response->add_worker_ids(env_.service->worker_id);
    reactor->Finish(ToGrpcStatus(status));
  }).detach();
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::UnloadAdapter(grpc::CallbackServerContext* context,
                                                      const pb::UnloadAdapterRequest* request,
                                                      pb::AdapterResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  context->AddTrailingMetadata("x-ringserve-worker", env_.service->worker_id);
  absl::Status status = env_.read_adapter ? env_.service->generator->UnloadAdapter(request->name())
                                          : NoAdaptersWhileServing();
  if (status.ok()) response->add_worker_ids(env_.service->worker_id);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace ringserve::server
