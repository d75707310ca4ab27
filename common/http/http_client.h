// HttpClient: HTTP/1.1 requests to one server, many in flight at once, from one thread that
// polls every connection (for load generators: thousands of Server-Sent-Events streams
// without a thread each). HTTP/1.1 carries one exchange at a time, so each request in flight
// has a connection of its own; finished connections are kept alive and reused. Plain TCP
// only (no TLS), no redirects, no HTTP/2.
#ifndef RINGSERVE_COMMON_HTTP_HTTP_CLIENT_H_
#define RINGSERVE_COMMON_HTTP_HTTP_CLIENT_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/http/http_message.h"
#include "common/http/http_response_parser.h"
#include "common/unique_fd.h"

namespace ringserve::http {

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";  // origin-form: "/v1/completions"
  Headers headers;           // besides Host and Content-Length, which the client writes
  std::string body;
  // From Send to the response's end; past it the exchange ends DEADLINE_EXCEEDED.
  absl::Duration timeout = absl::InfiniteDuration();
};

// Receives one response. Thread: the client's, one call at a time; it must not block and
// must not destroy the client.
class HttpResponseHandler {
 public:
  virtual ~HttpResponseHandler() = default;
  // The response's final head (1xx interim heads are skipped), once.
  virtual void OnHead(const HttpResponseHead& head) = 0;
  // Body bytes, de-chunked, as they arrive.
  virtual void OnBody(absl::string_view bytes) = 0;
  // Last, once: OK when the whole response arrived; UNAVAILABLE when the server could not be
  // reached or the connection broke, DEADLINE_EXCEEDED past the request's timeout, INTERNAL
  // for a malformed response, CANCELLED when the client is destroyed first. The handler may
  // be destroyed as soon as this is called.
  virtual void OnDone(const absl::Status& status) = 0;
};

class HttpClient {
 public:
  // `host` (a name or an address) is resolved once, here: UNAVAILABLE when it cannot be.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(const std::string& host, int port);
  // Every exchange still in flight ends CANCELLED (its OnDone runs on the client's thread)
  // before this returns.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Thread-safe. `handler` must outlive its OnDone. A request that finds its reused
  // keep-alive connection closed by the server before any byte of the response came is sent
  // once more on a new connection (the server closed an idle connection it had not read
  // from).
  void Send(const HttpClientRequest& request, HttpResponseHandler* handler);

  // Connections open now (in use and idle); for tests.
  int open_connections() const;

 private:
  struct Exchange;
  struct Connection;

  HttpClient(sockaddr_storage address, socklen_t address_size, std::string host_header,
             UniqueFd epoll, UniqueFd wake);
  void Loop();
  void StartPending();
  // Sends the exchange on an idle connection, or a new one (always with `new_connection`).
  void Begin(std::unique_ptr<Exchange> exchange, bool new_connection = false);
  // A new non-blocking connection, registered for its first write; null when the socket
  // could not even be created (the exchange has then ended).
  Connection* Connect(std::unique_ptr<Exchange>& exchange);
  void OnEvent(uint64_t id, uint32_t events);
  void Flush(Connection& c);
  void Read(Connection& c);
  // Ends the connection's exchange with `status` (or sends it again on a new connection when
  // it may be retried) and closes the connection.
  void Fail(Connection& c, const absl::Status& status);
  void Close(uint64_t id);
  void Finish(Connection& c);
  void CheckDeadlines(absl::Time now);
  int PollTimeoutMs(absl::Time now) const;
  void Wake();

  const sockaddr_storage address_;
  const socklen_t address_size_;
  const std::string host_header_;
  const UniqueFd epoll_;
  const UniqueFd wake_;  // eventfd: Send and the destructor wake the loop

  mutable std::mutex mu_;
  std::deque<std::unique_ptr<Exchange>> pending_;  // guarded by mu_
  bool stopping_ = false;                          // guarded by mu_
  int open_connections_ = 0;                       // guarded by mu_

  // The loop thread's own.
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<uint64_t> idle_;  // keep-alive connections without an exchange, newest last
  uint64_t next_id_ = 1;        // epoll's key of a connection: never reused
  absl::Time next_deadline_ = absl::InfiniteFuture();

  std::thread thread_;
};

// One request sent and its whole response awaited, on the calling thread (for the odd setup
// call beside a client's streams). UNAVAILABLE, DEADLINE_EXCEEDED or INTERNAL as OnDone says.
struct HttpFetchResult {
  HttpResponseHead head;
  std::string body;
};
absl::StatusOr<HttpFetchResult> Fetch(HttpClient& client, const HttpClientRequest& request);

}  // namespace ringserve::http

#endif  // RINGSERVE_COMMON_HTTP_HTTP_CLIENT_H_
