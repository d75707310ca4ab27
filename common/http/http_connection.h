// Internal to rs_http: one client connection as the server's thread runs it. Reading a
// request, handing it to the handler, sending its response as the handler writes it, then
// the next request or closing.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_CONNECTION_H_
#define RINGSERVE_COMMON_HTTP_HTTP_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "common/http/http_exchange.h"
#include "common/http/http_request_parser.h"
#include "common/http/http_server.h"
#include "common/unique_fd.h"

namespace ringserve::http::internal {

// What connections use of their server, which outlives them.
struct ServerContext {
  const HttpServerOptions* options;
  const Handler* handler;
  std::shared_ptr<ServerLink> link;
};

// Owner and thread: the server's thread, alone (handlers reach a connection only through its
// Channel). Invariants: at most one request is with the handler at a time, and the next
// request is parsed only after the last byte of the current response went to the socket; a
// closed connection has released its descriptor and run its OnClientGone callback.
class Connection {
 public:
  Connection(ServerContext server, UniqueFd fd, uint64_t id, std::string peer, absl::Time now);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  uint64_t id() const { return channel_->id; }
  int fd() const { return fd_.get(); }
  short events() const;  // what to poll for
  absl::Time deadline() const { return deadline_; }
  bool closed() const { return phase_ == Phase::kClosed; }
  // A handler's response is unfinished or not yet all sent (Shutdown waits for these).
  bool busy() const { return phase_ == Phase::kHandling; }

  void OnReady(short revents, absl::Time now);  // poll reported these events
  void OnPosted(absl::Time now);                // the handler wrote or finished
  void OnDeadline(absl::Time now);              // now >= deadline()
  // Closes now; the client is gone for an unfinished response.
  void Close();

 private:
  enum class Phase {
    kReading,   // a request: waiting for it, or receiving it
    kHandling,  // its response: waiting for the handler, or sending
    kClosing,   // the last response sent, or being sent; then input drained until EOF
    kClosed,
  };

  void Read(short revents, absl::Time now);
  void OnPeerClosed(absl::Time now);
  void Advance(absl::Time now);
  // Each returns whether the phase changed, so Advance goes on.
  bool AdvanceReading(absl::Time now);
  // Runs the response's OnWritable callbacks whose low water the socket has reached.
  void RunWritable();
  bool AdvanceHandling(absl::Time now);
  void AdvanceClosing(absl::Time now);
  void Dispatch(absl::Time now);
  // Answers with a response of the server's own, then closes.
  void Reject(int status, absl::string_view message, absl::Time now);
  void StartClosing(absl::Time now);
  // Sends what it can; false when that closed the connection.
  bool Flush();

  const ServerContext server_;
  UniqueFd fd_;
  const std::shared_ptr<Channel> channel_;
  const std::string peer_;
  HttpRequestParser parser_;
  Phase phase_ = Phase::kReading;
  absl::Time deadline_;
  std::string input_;    // received and not yet parsed (a pipelined request waits here)
  std::string sending_;  // being sent: the handler's output, or the server's own
  size_t sent_ = 0;      // of sending_
  std::shared_ptr<Exchange> exchange_;  // the current response, while kHandling
  bool response_finished_ = false;      // as of the last TakeOutput
  bool close_after_ = false;            // the current response ends the connection
  bool continue_sent_ = false;          // "100 Continue" for the request being received
  bool peer_closed_ = false;            // read returned 0
  bool lingering_ = false;              // kClosing: sent all and shut down for writing
};

}  // namespace ringserve::http::internal

#endif  // RINGSERVE_COMMON_HTTP_HTTP_CONNECTION_H_
