// ScrapeServer: the HTTP/1.1 listener behind /metrics. It answers GET and HEAD of one path
// with text rendered when the request arrives, from a single thread that polls every
// connection, and closes each connection after its one response.
//
// Why not an embedded web server: prometheus-cpp's exposer (civetweb) runs its handlers
// on threads with 100 KiB stacks, and glibc carves each thread's static TLS out of its
// stack. OpenBLAS's 60 KiB of TLS left the worker too little, and it crashed on its first
// scrape; cuBLASLt adds 92 KiB more on a GPU worker. This thread has an ordinary stack.
#ifndef RINGSERVE_COMMON_METRICS_SCRAPE_SERVER_H_
#define RINGSERVE_COMMON_METRICS_SCRAPE_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace ringserve::metrics {

struct ScrapeServerOptions {
  std::string host = "0.0.0.0";
  int port = 0;  // 0 picks a free port (see ScrapeServer::port)
  std::string path = "/metrics";
  std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
  // Connections held at once; more wait in the listen backlog. A scraper needs one.
  int max_connections = 32;
  // A connection that has not sent its request and taken its response by then is
  // closed, so idle or slow clients cannot hold the slots a scraper needs.
  absl::Duration connection_timeout = absl::Seconds(10);
};

// Owner: MetricsServer (or a test). Thread: construction and destruction on one thread;
// `render` runs on the server's own thread, once per GET or HEAD of the path.
class ScrapeServer {
 public:
  // UNAVAILABLE when the address cannot be resolved or bound.
  static absl::StatusOr<std::unique_ptr<ScrapeServer>> Start(const ScrapeServerOptions& options,
                                                             std::function<std::string()> render);
  // Stops serving: open connections are closed without a response.
  ~ScrapeServer();
  ScrapeServer(const ScrapeServer&) = delete;
  ScrapeServer& operator=(const ScrapeServer&) = delete;

  int port() const { return port_; }

 private:
  ScrapeServer(ScrapeServerOptions options, std::function<std::string()> render, UniqueFd listener,
               UniqueFd wake, int port);
  void Serve();

  const ScrapeServerOptions options_;
  const std::function<std::string()> render_;
  const UniqueFd listener_;
  const UniqueFd wake_;  // an eventfd the destructor signals
  const int port_;
  std::thread thread_;
};

// The whole HTTP response to one request head (request line and headers, without the
// blank line that ends them). Exposed for tests.
std::string ScrapeResponse(absl::string_view request_head, const ScrapeServerOptions& options,
                           const std::function<std::string()>& render);
// The response to a request head over the server's limit.
std::string RequestTooLargeResponse();

}  // namespace ringserve::metrics

#endif  // RINGSERVE_COMMON_METRICS_SCRAPE_SERVER_H_
