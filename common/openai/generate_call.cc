#include "common/openai/generate_call.h"

#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/openai/openai_error.h"
#include "grpcpp/support/client_callback.h"

namespace ringserve::openai {
namespace {

namespace pb = ringserve::v1;

constexpr char kJson[] = "application/json";
constexpr char kEventStream[] = "text/event-stream";
// The worker that served the first stream, as the router names it to gRPC clients.
constexpr char kWorkerKey[] = "x-ringserve-worker";
// Flow control toward a slow HTTP client, as the gRPC proxy's one message in flight gives a
// slow gRPC client: past this much unsent output a stream stops reading from the router (so
// the worker's stream waits too) until the client has taken all but kResumeBytes.
constexpr size_t kPauseBytes = 256 << 10;
constexpr size_t kResumeBytes = 64 << 10;

// Owner: itself (through its streams, each holding it until its OnDone). Thread: gRPC's
// callback threads, one mutex over the rendering and the writer's order.
class Call : public std::enable_shared_from_this<Call> {
 public:
  Call(std::vector<pb::GenerateRequest> requests, bool stream,
       std::unique_ptr<GenerateRenderer> renderer, std::shared_ptr<http::ResponseWriter> writer,
       std::function<void(const absl::Status&)> on_done)
      : stream_(stream),
        renderer_(std::move(renderer)),
        writer_(std::move(writer)),
        on_done_(std::move(on_done)),
        requests_(std::move(requests)),
        streams_left_(static_cast<int>(requests_.size())) {}

  void Start(const std::shared_ptr<pb::Inference::Stub>& stub, const HttpClient& client) {
    for (size_t i = 0; i < requests_.size(); ++i) {
      streams_.push_back(std::make_unique<Stream>(shared_from_this(), static_cast<int>(i)));
      PrepareContext(client, streams_.back()->context);
    }
    // Registered before any stream starts: a client already gone cancels them at their start.
    writer_->OnClientGone([weak = weak_from_this()] {
      if (const std::shared_ptr<Call> call = weak.lock()) call->CancelAll();
    });
    for (size_t i = 0; i < streams_.size(); ++i) {
      Stream* s = streams_[i].get();
      stub->async()->Generate(&s->context, &requests_[i], s);
      s->StartRead(&s->response);
      s->StartCall();
    }
  }

 private:
  class Stream final : public grpc::ClientReadReactor<pb::GenerateResponse> {
   public:
    Stream(std::shared_ptr<Call> owner, int index) : owner_(std::move(owner)), index_(index) {}

    void OnReadDone(bool ok) override {
      if (!ok) return;  // the stream ended; OnDone follows
      owner_->OnMessage(*this, response);
      if (owner_->writer_->pending_bytes() <= kPauseBytes) {
        StartRead(&response);
        return;
      }
      // The hold keeps OnDone (and this stream's end) from coming before the read resumes;
      // the writer runs the callback once the client catches up, leaves, or the server stops.
      AddHold();
      owner_->writer_->OnWritable(kResumeBytes, [this] {
        StartRead(&response);
        RemoveHold();
      });
    }
    void OnDone(const grpc::Status& status) override {
      // The last stream's owner reference may be the call's last: it goes (and this stream
      // with it) when `owner` leaves scope, after which nothing here is touched.
      const std::shared_ptr<Call> owner = std::move(owner_);
      owner->OnStreamDone(status);
    }

    grpc::ClientContext context;
    pb::GenerateResponse response;

   private:
    std::shared_ptr<Call> owner_;
    const int index_;
    friend class Call;
  };

  void CancelAll() {
    for (const auto& s : streams_) s->context.TryCancel();
  }

  void StartStreamLocked(const Stream& s) {
    if (started_) return;
    started_ = true;
    http::Headers headers = {{"Cache-Control", "no-cache"}};
    const auto& initial = s.context.GetServerInitialMetadata();
    if (const auto it = initial.find(kWorkerKey); it != initial.end()) {
      headers.emplace_back("X-Ringserve-Worker", std::string(it->second.data(), it->second.size()));
    }
    writer_->StartStream(200, kEventStream, std::move(headers));
  }

  void OnMessage(const Stream& s, const pb::GenerateResponse& message) {
    std::lock_guard lock(mu_);
    if (!first_error_.ok()) return;  // the response is an error now; the rest is dropped
    if (!stream_) {
      renderer_->Accumulate(s.index_, message);
      return;
    }
    StartStreamLocked(s);
    std::string events = renderer_->StreamEvents(s.index_, message);
    if (!events.empty()) writer_->Write(std::move(events));
  }

  void OnStreamDone(const grpc::Status& status) {
    bool cancel_others = false;
    bool last = false;
    {
      std::lock_guard lock(mu_);
      if (!status.ok() && first_error_.ok()) {
        first_error_ = FromGrpcStatus(status);
        cancel_others = streams_left_ > 1;
      }
      last = --streams_left_ == 0;
      if (last) FinishLocked();
    }
    if (cancel_others) CancelAll();
    // No stream touches first_error_ once the last has ended.
    if (last && on_done_ != nullptr) on_done_(first_error_);
  }

  void FinishLocked() {
    if (!first_error_.ok() && !started_) {
      writer_->Respond(HttpStatusOf(first_error_.code()), kJson,
                       renderer_->ErrorJson(first_error_));
      return;
    }
    if (!stream_) {
      writer_->Respond(200, kJson, renderer_->Body());
      return;
    }
    if (!started_) {  // every stream ended without a message (n = 0 tokens and no final)
      started_ = true;
      writer_->StartStream(200, kEventStream, {{"Cache-Control", "no-cache"}});
    }
    writer_->Write(renderer_->StreamEnd(first_error_));
    writer_->Finish();
  }

  const bool stream_;
  std::mutex mu_;
  const std::unique_ptr<GenerateRenderer> renderer_;  // used under mu_
  bool started_ = false;      // guarded by mu_: the streamed response's head went out
  absl::Status first_error_;  // guarded by mu_
  const std::shared_ptr<http::ResponseWriter> writer_;
  const std::function<void(const absl::Status&)> on_done_;
  const std::vector<pb::GenerateRequest> requests_;
  std::vector<std::unique_ptr<Stream>> streams_;  // set before any starts, then fixed
  int streams_left_;                              // guarded by mu_
};

}  // namespace

void StartGenerateStreams(const std::shared_ptr<pb::Inference::Stub>& stub,
                          std::vector<pb::GenerateRequest> requests, bool stream,
                          std::unique_ptr<GenerateRenderer> renderer, const HttpClient& client,
                          std::shared_ptr<http::ResponseWriter> writer,
                          std::function<void(const absl::Status&)> on_done) {
  auto state = std::make_shared<Call>(std::move(requests), stream, std::move(renderer),
                                      std::move(writer), std::move(on_done));
  state->Start(stub, client);
}

void StartGenerateCall(const std::shared_ptr<pb::Inference::Stub>& stub, GenerateCall call,
                       ResponseMeta meta, const HttpClient& client,
                       std::shared_ptr<http::ResponseWriter> writer) {
  meta.include_usage = call.include_usage;
  meta.continuous_usage = call.continuous_usage;
  const int num_requests = static_cast<int>(call.requests.size());
  StartGenerateStreams(stub, std::move(call.requests), call.stream,
                       std::make_unique<ResponseRenderer>(std::move(meta), num_requests), client,
                       std::move(writer));
}

}  // namespace ringserve::openai
