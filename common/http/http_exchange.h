// Internal to rs_http: what a response's writers share with the server's thread. A handler
// may answer from any thread, during or long after its call, even after the server is gone;
// everything here is therefore held by shared_ptr and guarded by one mutex per connection,
// and the loop is told of new output through an eventfd that lives as long as any writer.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_EXCHANGE_H_
#define RINGSERVE_COMMON_HTTP_HTTP_EXCHANGE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/http/http_message.h"
#include "common/http/http_server.h"
#include "common/unique_fd.h"

namespace ringserve::http::internal {

// The server's side of every connection's channel. Shared by the server and the channels,
// so a writer outliving the server still signals its own eventfd, never a descriptor number
// since reused for another file. Thread-safe.
class ServerLink {
 public:
  static absl::StatusOr<std::shared_ptr<ServerLink>> Create(std::string server_name);
  ServerLink(UniqueFd event_fd, std::string server_name);

  int event_fd() const { return event_fd_.get(); }
  const std::string& server_name() const { return server_name_; }
  // Connection `id` has something for the loop: output, or a finished response.
  void Post(uint64_t connection_id);
  // Wakes the loop with nothing posted (Shutdown and stopping).
  void Wake();
  // The loop's side: the ids posted since the last call; clears the eventfd.
  std::vector<uint64_t> TakePosted();

  // Requests dispatched whose response has not finished (HttpServer::active_requests).
  std::atomic<int> active_requests{0};
  // Shutdown has begun: responses say "Connection: close" and new requests get 503.
  std::atomic<bool> draining{false};

 private:
  const UniqueFd event_fd_;
  const std::string server_name_;
  std::mutex mu_;
  std::vector<uint64_t> posted_;  // guarded by mu_
};

// The one part of a connection that handlers' threads touch. Its mutex also guards the
// state of the connection's Exchanges.
struct Channel {
  Channel(uint64_t id, std::shared_ptr<ServerLink> link) : id(id), link(std::move(link)) {}
  // The connection is closed: writes from now on are dropped.
  void MarkGone();

  const uint64_t id;
  const std::shared_ptr<ServerLink> link;
  std::mutex mu;
  std::string outbound;  // guarded by mu: written by the handler, not yet taken by the loop
  bool posted = false;   // guarded by mu: the id is posted and the loop has not taken it
  bool gone = false;     // guarded by mu
  // Bytes the loop has taken and the socket has not accepted (for pending_bytes).
  std::atomic<size_t> unsent{0};
};

// One request's response, from the handler's first call to its last byte. Owner: the
// connection (while the response is current) and the request's Writer. The response methods
// follow ResponseWriter's contract and run on any thread; TakeOutput and Abandon run on the
// server's thread. A response is finished once Respond or Finish has run (or the handler
// dropped its writer); the next request on the connection waits for that and its last byte.
class Exchange {
 public:
  struct Params {
    int minor_version = 1;
    bool head_request = false;  // HEAD: the head a GET would get, without the body
    bool keep_alive = true;     // the request allows another one on the connection
  };

  Exchange(std::shared_ptr<Channel> channel, Params params);

  void Respond(int status, absl::string_view content_type, absl::string_view body,
               const Headers& extra);
  void StartStream(int status, absl::string_view content_type, const Headers& extra);
  void Write(std::string data);
  void Finish();
  void OnClientGone(std::function<void()> callback);
  size_t pending_bytes() const;
  void OnWritable(size_t low_water, std::function<void()> callback);
  // The server's thread, after sending: the OnWritable callbacks whose low water the
  // pending bytes have reached, to run outside the lock.
  std::vector<std::function<void()>> TakeWritable();
  // The handler let go of its writer: a request never answered gets 500, and a stream never
  // finished is cut off (the connection closes without its last chunk, so the client sees
  // it incomplete rather than a clean end).
  void WriterDropped();

  struct Output {
    bool finished = false;  // nothing more will be written
    bool close = false;     // the connection closes after the last byte
  };
  // The server's thread, with `sending` empty: swaps in what the handler wrote.
  Output TakeOutput(std::string& sending);
  // The server's thread, as the connection closes: later calls are no-ops. Returns the
  // callbacks to run (outside the lock): OnClientGone's when the response was unfinished,
  // then every OnWritable still waiting.
  std::vector<std::function<void()>> Abandon();

 private:
  enum class Phase { kAwaiting, kStreaming, kFinished };

  // These require channel_->mu held.
  bool Allowed(Phase expected, absl::string_view call);
  void RespondLocked(int status, absl::string_view content_type, absl::string_view body,
                     const Headers& extra);
  // The response is finished; returns whether to post the channel.
  bool FinishLocked(std::function<void()>& unused_callback);
  size_t PendingLocked() const;
  absl::string_view ConnectionValue() const;
  bool MarkPosted();

  const std::shared_ptr<Channel> channel_;
  const Params params_;
  // All guarded by channel_->mu.
  Phase phase_ = Phase::kAwaiting;
  bool chunked_ = false;       // the stream uses chunked framing (HTTP/1.1)
  bool body_allowed_ = true;   // false for HEAD, 204, 304: writes are dropped
  bool close_ = false;         // the connection closes after this response
  bool abandoned_ = false;     // the client went before the response finished
  bool callback_set_ = false;  // OnClientGone was called
  bool misuse_logged_ = false;
  std::function<void()> on_client_gone_;
  struct WritableWaiter {
    size_t low_water;
    std::function<void()> callback;
  };
  std::vector<WritableWaiter> writable_waiters_;
};

// What a handler holds. Forwards to the Exchange; the last copy going away without a
// finished response ends it (Exchange::WriterDropped).
class Writer final : public ResponseWriter {
 public:
  explicit Writer(std::shared_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}
  ~Writer() override { exchange_->WriterDropped(); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void Respond(int status, absl::string_view content_type, std::string body,
               Headers extra_headers) override {
    exchange_->Respond(status, content_type, body, extra_headers);
  }
  void StartStream(int status, absl::string_view content_type, Headers extra_headers) override {
    exchange_->StartStream(status, content_type, extra_headers);
  }
  void Write(std::string data) override { exchange_->Write(std::move(data)); }
  void Finish() override { exchange_->Finish(); }
  void OnClientGone(std::function<void()> callback) override {
    exchange_->OnClientGone(std::move(callback));
  }
  size_t pending_bytes() const override { return exchange_->pending_bytes(); }
  void OnWritable(size_t low_water, std::function<void()> callback) override {
    exchange_->OnWritable(low_water, std::move(callback));
  }

 private:
  const std::shared_ptr<Exchange> exchange_;
};

}  // namespace ringserve::http::internal

#endif  // RINGSERVE_COMMON_HTTP_HTTP_EXCHANGE_H_
