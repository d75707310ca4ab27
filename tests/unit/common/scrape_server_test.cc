// ScrapeServer and MetricsServer over real loopback sockets: what a scraper gets, what bad
// requests get, and that idle or slow clients cannot keep a scrape from being answered.
#include "common/metrics/scrape_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics_server.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace ringserve::metrics {
namespace {

UniqueFd Connect(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

void Send(const UniqueFd& fd, absl::string_view bytes) {
  ASSERT_EQ(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Everything the server sends until it closes (or 5 s pass).
std::string ReadToEnd(const UniqueFd& fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

std::string Fetch(int port, absl::string_view request) {
  const UniqueFd fd = Connect(port);
  Send(fd, request);
  return ReadToEnd(fd);
}

std::string Get(int port, absl::string_view target) {
  return Fetch(port, absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: x\r\n\r\n"));
}

std::unique_ptr<ScrapeServer> StartOrDie(ScrapeServerOptions options,
                                         std::function<std::string()> render) {
  options.host = "127.0.0.1";
  auto server = ScrapeServer::Start(options, std::move(render));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(ScrapeServerTest, ServesRenderedTextWithItsLengthAndType) {
  int renders = 0;
  auto server = StartOrDie({}, [&] { return absl::StrCat("scrape ", ++renders, "\n"); });
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(Get(server->port(), "/metrics"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 9\r\nConnection: close\r\n\r\nscrape 1\n");
  // Rendered per request, and a query string is ignored.
  EXPECT_TRUE(absl::EndsWith(Get(server->port(), "/metrics?name[]=x"), "\r\n\r\nscrape 2\n"));
}

TEST(ScrapeServerTest, HeadHasTheLengthButNoBody) {
  auto server = StartOrDie({}, [] { return std::string("abc"); });
  ASSERT_NE(server, nullptr);
  const std::string reply = Fetch(server->port(), "HEAD /metrics HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 200 OK\r\n")) << reply;
  EXPECT_TRUE(absl::StrContains(reply, "Content-Length: 3\r\n")) << reply;
  EXPECT_TRUE(absl::EndsWith(reply, "\r\n\r\n")) << reply;
}

TEST(ScrapeServerTest, RefusesWhatIsNotAScrape) {
  auto server = StartOrDie({}, [] { return std::string("body"); });
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  EXPECT_TRUE(absl::StartsWith(Get(port, "/"), "HTTP/1.1 404 Not Found\r\n"));
  EXPECT_TRUE(absl::StartsWith(Get(port, "/metricsx"), "HTTP/1.1 404 Not Found\r\n"));
  const std::string post = Fetch(port, "POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
  EXPECT_TRUE(absl::StartsWith(post, "HTTP/1.1 405 Method Not Allowed\r\n")) << post;
  EXPECT_TRUE(absl::StrContains(post, "Allow: GET, HEAD\r\n")) << post;
  for (const char* bad : {"garbage\r\n\r\n", "GET /metrics\r\n\r\n", "GET /metrics SPDY/3\r\n\r\n",
                          "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n"}) {
    EXPECT_TRUE(absl::StartsWith(Fetch(port, bad), "HTTP/1.1 400 Bad Request\r\n")) << bad;
  }
  const std::string huge = Fetch(
      port, absl::StrCat("GET /metrics HTTP/1.1\r\nX: ", std::string(20000, 'a'), "\r\n\r\n"));
  EXPECT_TRUE(absl::StartsWith(huge, "HTTP/1.1 431 ")) << huge.substr(0, 100);
  // Still serving after all of that.
  EXPECT_TRUE(absl::EndsWith(Get(port, "/metrics"), "\r\n\r\nbody"));
}

TEST(ScrapeServerTest, AnswersARequestThatArrivesInPieces) {
  auto server = StartOrDie({}, [] { return std::string("ok"); });
  ASSERT_NE(server, nullptr);
  const UniqueFd fd = Connect(server->port());
  for (const char c : absl::string_view("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")) {
    Send(fd, absl::string_view(&c, 1));
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_TRUE(absl::EndsWith(ReadToEnd(fd), "\r\n\r\nok"));
}

TEST(ScrapeServerTest, IdleClientsNeitherBlockAScrapeNorStayForever) {
  auto server = StartOrDie({.max_connections = 2, .connection_timeout = absl::Milliseconds(300)},
                           [] { return std::string("ok"); });
  ASSERT_NE(server, nullptr);
  const UniqueFd idle = Connect(server->port());
  const UniqueFd half = Connect(server->port());
  Send(half, "GET /metr");
  // Both slots are held; this scrape waits in the backlog until the timeout frees one.
  const absl::Time start = absl::Now();
  EXPECT_TRUE(absl::EndsWith(Get(server->port(), "/metrics"), "\r\n\r\nok"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(ReadToEnd(idle), "");  // closed by the server, not by the 5 s read timeout
  EXPECT_EQ(ReadToEnd(half), "");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(ScrapeServerTest, RendersOnAThreadWithRoomOnItsStack) {
  // The exposer this server replaced ran handlers on 100 KiB stacks, less the process's
  // static TLS; rendering with a 256 KiB frame crashed there.
  auto server = StartOrDie({}, [] {
    volatile char frame[256 * 1024];
    for (size_t i = 0; i < sizeof(frame); i += 4096) frame[i] = 'x';
    return std::string(1, frame[4096]);
  });
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(absl::EndsWith(Get(server->port(), "/metrics"), "\r\n\r\nx"));
}

TEST(ScrapeServerTest, StopsPromptlyWithClientsConnected) {
  auto server = StartOrDie({}, [] { return std::string("ok"); });
  ASSERT_NE(server, nullptr);
  const UniqueFd idle = Connect(server->port());
  const absl::Time start = absl::Now();
  server.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(ReadToEnd(idle), "");
}

TEST(ScrapeServerTest, ManyConcurrentScrapesAreAllAnswered) {
  auto server = StartOrDie({}, [] { return std::string(100000, 'm'); });
  ASSERT_NE(server, nullptr);
  std::atomic<int> complete{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (absl::EndsWith(Get(server->port(), "/metrics"), std::string(100000, 'm'))) ++complete;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(complete.load(), 80);
}

TEST(ScrapeServerTest, ABusyPortIsUnavailable) {
  auto first = StartOrDie({}, [] { return std::string(); });
  ASSERT_NE(first, nullptr);
  auto second =
      ScrapeServer::Start({.host = "127.0.0.1", .port = first->port()}, [] { return ""; });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(), "in use")) << second.status();
}

TEST(MetricsServerTest, ServesTheRegistryAsPrometheusText) {
  auto metrics = MetricsServer::Create({.serve = true, .host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto& family = prometheus::BuildCounter()
                     .Name("ringserve_test_events_total")
                     .Help("events")
                     .Register((*metrics)->registry());
  family.Add({{"kind", "a"}}).Increment(3);
  const std::string reply = Get((*metrics)->port(), "/metrics");
  EXPECT_TRUE(absl::StrContains(reply, "# TYPE ringserve_test_events_total counter\n")) << reply;
  EXPECT_TRUE(absl::StrContains(reply, "ringserve_test_events_total{kind=\"a\"} 3")) << reply;
}

TEST(MetricsServerTest, ScrapeHooksRefreshGaugesUntilTheirHandleGoes) {
  auto metrics = MetricsServer::Create({.serve = true, .host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto& gauge = prometheus::BuildGauge()
                    .Name("ringserve_test_depth")
                    .Help("depth")
                    .Register((*metrics)->registry())
                    .Add({});
  int refreshes = 0;
  auto hook = (*metrics)->OnScrape([&] { gauge.Set(++refreshes * 10); });
  EXPECT_TRUE(absl::StrContains(Get((*metrics)->port(), "/metrics"), "ringserve_test_depth 10\n"));
  EXPECT_TRUE(absl::StrContains(Get((*metrics)->port(), "/metrics"), "ringserve_test_depth 20\n"));
  hook.reset();
  EXPECT_TRUE(absl::StrContains(Get((*metrics)->port(), "/metrics"), "ringserve_test_depth 20\n"));
  EXPECT_EQ(refreshes, 2);
}

TEST(MetricsServerTest, NotServingListensNowhereAndBadPortsAreRefused) {
  auto quiet = MetricsServer::Create({.serve = false});
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ((*quiet)->port(), 0);
  EXPECT_EQ(MetricsServer::Create({.serve = true, .port = 70000}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::Create({.serve = true, .port = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringserve::metrics
