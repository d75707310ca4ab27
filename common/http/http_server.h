// HttpServer: a small HTTP/1.1 server for JSON APIs and Server-Sent-Events streams to many
// clients at once. One thread polls the listener and every connection (no thread per
// connection); a handler answers through a ResponseWriter from any thread, at once or long
// after (a generation can stream for minutes), and learns when its client goes away.
//
// Keep-alive and pipelining (one request at a time per connection), Content-Length and
// chunked bodies, "Expect: 100-continue", limits on head and body size, and timeouts for
// slow or idle clients follow RFC 9110 and RFC 9112. No TLS, no HTTP/2, no upgrades.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_SERVER_H_
#define RINGSERVE_COMMON_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/http/http_message.h"
#include "common/unique_fd.h"

namespace ringserve::http {

// How a handler answers one request. Thread-safe: any thread may call it, during or after
// Handler's call. Exactly one of Respond or StartStream (then Writes, then Finish) per request;
// calls out of order are ignored (and logged once at most). After the client is gone every
// call is a cheap no-op. Letting go of the last reference without finishing ends the response
// anyway: 500 when nothing was sent, a cut-off stream (connection closed) otherwise.
//
// Framing headers are the server's: Content-Length, Transfer-Encoding and Connection in
// extra_headers are dropped ("Connection: close" is honoured), as are headers with CR or LF.
// A HEAD request gets the head without the body; 204 and 304 get no body.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A whole response with Content-Length.
  virtual void Respond(int status, absl::string_view content_type, std::string body,
                       Headers extra_headers = {}) = 0;
  // A streamed response (Transfer-Encoding: chunked on HTTP/1.1; on HTTP/1.0 the body runs to
  // the connection's close): the head now, then each Write as it comes, then Finish.
  virtual void StartStream(int status, absl::string_view content_type,
                           Headers extra_headers = {}) = 0;
  virtual void Write(std::string data) = 0;  // empty data: ignored
  virtual void Finish() = 0;
  // `callback` runs once, on the server's thread and without the server's locks held, when
  // the client goes away before the response is finished: connection closed (read returned
  // 0), reset, failed write, or the server stopping. If the client is already gone when this
  // is called, the callback runs at once on the calling thread. Set at most once.
  virtual void OnClientGone(std::function<void()> callback) = 0;
  // Bytes written by the handler but not yet sent to the socket (for a handler that wants
  // to slow down for a slow client).
  virtual size_t pending_bytes() const = 0;
  // `callback` runs once, when pending_bytes() is at most `low_water`: at once on the calling
  // thread if it already is (or the client is gone), else on the server's thread, without its
  // locks held, as soon as the socket has taken enough; also when the client goes away or the
  // server stops, so a handler waiting on it is never left waiting. Any number may wait.
  virtual void OnWritable(size_t low_water, std::function<void()> callback) = 0;
};

// Runs on the server's thread for each complete request; must not block (answer now, or
// keep the writer and answer later from any thread). It must not call Shutdown or destroy
// the server.
using Handler = std::function<void(HttpRequest request, std::shared_ptr<ResponseWriter> writer)>;

struct HttpServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;                      // 0 picks a free port
  size_t max_body_bytes = 16 << 20;  // larger: 413, connection closed
  size_t max_head_bytes = 16 << 10;  // larger: 431, connection closed
  int max_connections = 4096;        // more wait in the listen backlog
  // To receive a whole request once it began (and the first one after connecting); 408.
  absl::Duration request_timeout = absl::Seconds(30);
  // A keep-alive connection with no request, or a client not reading a finished response.
  absl::Duration idle_timeout = absl::Seconds(60);
  std::string server_name = "ringserve";  // the Server header
};

namespace internal {
class ServerLink;
}  // namespace internal

// Owner: whoever started it. Thread: Start, Shutdown and the destructor from any one thread
// at a time (not from a handler or callback); handlers and OnClientGone callbacks run on the
// server's own thread.
class HttpServer {
 public:
  // UNAVAILABLE when the address cannot be resolved or bound; INVALID_ARGUMENT without a
  // handler or with max_connections < 1.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           Handler handler);
  // Stops at once: open connections closed, OnClientGone callbacks of unfinished responses run.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // Stops accepting new connections and new requests (a request arriving on an open
  // keep-alive connection is answered 503 with "Connection: close"), then waits up to `grace`
  // for responses in progress to finish, then stops as the destructor does. Idempotent.
  void Shutdown(absl::Duration grace);
  // Requests whose response has not finished yet (for metrics and tests).
  int active_requests() const;

 private:
  HttpServer(HttpServerOptions options, Handler handler, UniqueFd listener,
             std::shared_ptr<internal::ServerLink> link, int port);
  void Serve();
  // Stops the thread; on it, connections close and OnClientGone callbacks run.
  void StopLoop();
  void ReportDrained();

  const HttpServerOptions options_;
  const Handler handler_;
  UniqueFd listener_;  // the server's thread only; closed when Shutdown begins
  const std::shared_ptr<internal::ServerLink> link_;
  const int port_;
  std::atomic<bool> stopping_{false};
  std::mutex lifecycle_mu_;  // serialises Shutdown and the destructor
  std::mutex drain_mu_;
  std::condition_variable drained_cv_;
  bool drained_ = false;  // guarded by drain_mu_: draining, and no response in progress
  std::thread thread_;
};

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_SERVER_H_
