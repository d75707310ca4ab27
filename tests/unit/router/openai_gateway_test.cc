// OpenAiGateway behind ringserve-router's HTTP server and router, over a FakeWorker: a client
// that stops reading its stream stops the worker's stream too (flow control, as the gRPC
// proxy gives), a slow reader still gets every event, and a client that leaves cancels.
#include "common/openai/openai_gateway.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/http/http_server.h"
#include "common/openai/model_catalog.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "router/router_server.h"
#include "tests/unit/router/fake_worker.h"
#include "tests/unit/router/openai_stack.h"

namespace ringserve::openai {
namespace {

using ::ringserve::router::testing::Eventually;
using ::ringserve::router::testing::FakeWorker;

class OpenAiGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(router::RouterOptions()); }

  void Start(router::RouterOptions options, GatewayOptions gateway_options = GatewayOptions()) {
    stack_.reset();
    stack_ = std::make_unique<router::testing::OpenAiStack>(std::move(options),
                                                            std::move(gateway_options));
    worker_ = &stack_->worker();
    router_ = &stack_->router();
    http_ = &stack_->http();
  }

  // A connection that sent a streamed completion of `max_tokens` and reads nothing yet.
  // Its receive buffer is kept to 256 KiB so the server's output backs up soon (smaller
  // than loopback's 64 KiB segments would stall TCP itself on its persist timer).
  UniqueFd StartStream(int max_tokens) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    const int buffer = 256 << 10;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    EXPECT_EQ(Connect(fd), 0);
    const std::string body =
        absl::StrCat(R"({"prompt": "x", "stream": true, "max_tokens": )", max_tokens, "}");
    const std::string request = absl::StrCat(
        "POST /v1/completions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n",
        "Content-Type: application/json\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
    EXPECT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    return fd;
  }

  // Everything the server sends until it closes, read in small pieces with pauses.
  static std::string ReadSlowly(const UniqueFd& fd) {
    std::string all;
    char buffer[4096];
    for (int reads = 0;; ++reads) {
      const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) return all;
      all.append(buffer, static_cast<size_t>(n));
      if (reads % 64 == 0) absl::SleepFor(absl::Milliseconds(1));
    }
  }

  // This process's resident memory (router, gateway and fake worker all live here).
  static int64_t ResidentBytes() {
    std::ifstream statm("/proc/self/statm");
    int64_t size = 0;
    int64_t resident = 0;
    statm >> size >> resident;
    return resident * ::sysconf(_SC_PAGESIZE);
  }

  // connect() of `fd` to the HTTP server: 0, or -1 with errno.
  int Connect(const UniqueFd& fd) const {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(http_->port()));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
  }

  // Reads into `all` until it holds `events` token events; false if the connection ends first.
  static bool ReadEvents(const UniqueFd& fd, int events, std::string& all) {
    char buffer[4096];
    while (Count(all, R"("text":"t)") < events) {
      const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) return false;
      all.append(buffer, static_cast<size_t>(n));
    }
    return true;
  }

  // One request's whole exchange on a fresh connection ("Connection: close" is added).
  std::string Exchange(const std::string& head) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
    EXPECT_EQ(Connect(fd), 0);
    const std::string request = head + "Connection: close\r\n\r\n";
    EXPECT_EQ(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    return ReadSlowly(fd);
  }

  static int Count(const std::string& text, const std::string& needle) {
    int count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
      ++count;
    }
    return count;
  }

  std::unique_ptr<router::testing::OpenAiStack> stack_;
  // Parts of stack_.
  FakeWorker* worker_ = nullptr;
  router::RouterServer* router_ = nullptr;
  http::HttpServer* http_ = nullptr;
};

TEST_F(OpenAiGatewayTest, AClientThatStopsReadingStopsTheWorkersStream) {
  worker_->set_tokens(0, absl::ZeroDuration());
  constexpr int kTokens = 2'000'000;
  [[maybe_unused]] const int64_t rss_before = ResidentBytes();
  UniqueFd client = StartStream(kTokens);
  ASSERT_TRUE(Eventually([&] { return worker_->messages_written() > 0; }));
  // The stream backs up through the HTTP buffer, the router's windows toward the gateway
  // and the worker's toward the router (a few MB of small messages), then stops.
  int64_t last = -1;
  bool stopped = false;
  for (int i = 0; i < 60 && !stopped; ++i) {
    absl::SleepFor(absl::Milliseconds(300));
    const int64_t now = worker_->messages_written();
    stopped = now == last;
    last = now;
  }
  EXPECT_TRUE(stopped);
  EXPECT_LT(last, kTokens / 2) << "the worker streamed on for a client that reads nothing";
  // What backs up is gRPC's windows' worth of small messages (about 30 MB here, counting the
  // allocator's overhead), not the stream rendered as events in the HTTP buffer (over 150 MB
  // by then without the pause).
  // (Sanitizers' shadow memory grows with it: the bound holds for plain builds only.)
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_LT(ResidentBytes() - rss_before, 96 << 20);
#endif
  client.Reset();  // leaving cancels the generation
  EXPECT_TRUE(Eventually([&] { return worker_->cancellations() == 1; }));
}

// A worker lost after the stream began: the client gets an error event, then [DONE], and the
// connection ends cleanly (the head, 200, is long gone).
TEST_F(OpenAiGatewayTest, AWorkerLostMidStreamEndsItWithAnErrorEvent) {
  worker_->set_tokens(0, absl::Milliseconds(20));
  UniqueFd client = StartStream(1000);
  std::string all;
  ASSERT_TRUE(ReadEvents(client, 3, all));
  worker_->Kill();
  all += ReadSlowly(client);
  EXPECT_EQ(all.find("HTTP/1.1 200"), 0U);
  const size_t error = all.find(R"(data: {"error":)");
  ASSERT_NE(error, std::string::npos) << all.substr(all.size() - std::min<size_t>(all.size(), 400));
  EXPECT_NE(all.find("UNAVAILABLE", error), std::string::npos);
  EXPECT_NE(all.find("data: [DONE]", error), std::string::npos);
}

// CORS: a permitted origin's preflight gets the methods and headers (Authorization named),
// its responses the origin; another origin's preflight is refused and its responses carry
// nothing a browser would let a page read.
TEST_F(OpenAiGatewayTest, BrowsersFromAllowedOriginsOnly) {
  GatewayOptions options;
  options.allowed_origins = {"https://app.example"};
  Start(router::RouterOptions(), std::move(options));
  const std::string preflight =
      "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n"
      "Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization\r\n";
  std::string answer = Exchange(preflight);
  EXPECT_EQ(answer.find("HTTP/1.1 204"), 0U) << answer;
  EXPECT_NE(answer.find("Access-Control-Allow-Origin: https://app.example\r\n"), std::string::npos);
  EXPECT_NE(answer.find("Access-Control-Allow-Headers: Authorization"), std::string::npos);
  answer = Exchange("GET /health HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n");
  EXPECT_EQ(answer.find("HTTP/1.1 200"), 0U) << answer;
  EXPECT_NE(answer.find("Access-Control-Allow-Origin: https://app.example\r\n"), std::string::npos);
  EXPECT_NE(answer.find("Vary: Origin"), std::string::npos);

  answer = Exchange(absl::StrReplaceAll(preflight, {{"app.example", "evil.example"}}));
  EXPECT_EQ(answer.find("HTTP/1.1 403"), 0U) << answer;
  answer = Exchange("GET /health HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n");
  EXPECT_EQ(answer.find("HTTP/1.1 200"), 0U) << answer;
  EXPECT_EQ(answer.find("Access-Control-Allow-Origin"), std::string::npos);

  Start(router::RouterOptions());  // without allowed origins: no CORS at all
  answer = Exchange(preflight);
  EXPECT_EQ(answer.find("HTTP/1.1 405"), 0U) << answer;
  EXPECT_EQ(answer.find("Access-Control-Allow-Origin"), std::string::npos);
}

// GET /metrics answers the process's metrics where the API is, when the gateway is given them.
TEST_F(OpenAiGatewayTest, MetricsAreServedOnTheApiPortWhenGiven) {
  std::string answer = Exchange("GET /metrics HTTP/1.1\r\nHost: t\r\n");
  EXPECT_EQ(answer.find("HTTP/1.1 404"), 0U) << answer;
  GatewayOptions options;
  options.metrics_text = [] { return std::string("ringserve_router_up 1\n"); };
  Start(router::RouterOptions(), std::move(options));
  answer = Exchange("GET /metrics HTTP/1.1\r\nHost: t\r\n");
  EXPECT_EQ(answer.find("HTTP/1.1 200"), 0U) << answer;
  EXPECT_NE(answer.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\r\n\r\nringserve_router_up 1\n"), std::string::npos) << answer;
  answer = Exchange("POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n");
  EXPECT_EQ(answer.find("HTTP/1.1 405"), 0U) << answer;
}

// ringserve-router's drain order (main.cc): health NOT_SERVING, then the HTTP server stops
// taking requests and lets a stream in progress finish, then the router stops.
TEST_F(OpenAiGatewayTest, DrainLetsAStreamInProgressFinish) {
  worker_->set_tokens(0, absl::Milliseconds(10));
  constexpr int kTokens = 50;
  UniqueFd client = StartStream(kTokens);
  std::string all;
  ASSERT_TRUE(ReadEvents(client, 2, all));
  router_->BeginDrain();
  std::thread shutdown([this] { http_->Shutdown(absl::Seconds(10)); });
  all += ReadSlowly(client);
  shutdown.join();
  EXPECT_EQ(Count(all, R"("text":"t)"), kTokens);
  EXPECT_EQ(Count(all, "data: [DONE]"), 1);
  EXPECT_EQ(worker_->cancellations(), 0);
  UniqueFd late(::socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_NE(Connect(late), 0) << "a stopped server still accepts";
}

// Clients asking the catalog at once share a fetch only with the same credentials: one with
// a bad token does not fail another's request.
TEST_F(OpenAiGatewayTest, ABadTokensModelInfoFetchDoesNotFailAnothers) {
  router::RouterOptions options;
  auto tokens = TokenSet::Parse("good", "test");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  options.policy.tokens = *std::move(tokens);
  Start(std::move(options));
  auto catalog = std::make_shared<ModelCatalog>(
      ringserve::v1::Inference::NewStub(router_->LocalChannel()), absl::Seconds(30));
  std::mutex mu;
  std::vector<absl::Status> results(2, absl::UnknownError("no answer"));
  int answers = 0;
  const HttpClient clients[] = {{.authorization = "Bearer bad", .address = "10.0.0.1"},
                                {.authorization = "Bearer good", .address = "10.0.0.2"}};
  for (int i = 0; i < 2; ++i) {  // the second asks while the first's fetch is on its way
    catalog->Get(clients[i], [&, i](const absl::StatusOr<ringserve::v1::ModelInfo>& info) {
      const std::lock_guard lock(mu);
      results[i] = info.status();
      ++answers;
    });
  }
  ASSERT_TRUE(Eventually([&] {
    const std::lock_guard lock(mu);
    return answers == 2;
  }));
  EXPECT_EQ(results[0].code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(results[1].ok()) << results[1];
}

// The gateway's own tokens (a worker's --auth-token-file): every endpoint but /health and
// /metrics needs one, and a refusal says how to send it without naming any.
TEST_F(OpenAiGatewayTest, GatewayTokensGuardEveryEndpointButHealthAndMetrics) {
  GatewayOptions options;
  options.tokens = *TokenSet::Parse("alpha\nbeta\n", "test");
  options.metrics_text = [] { return std::string("m 1\n"); };
  options.allowed_origins = {"*"};
  Start(router::RouterOptions(), std::move(options));
  for (const char* missing : {"", "Authorization: Bearer gamma\r\n", "Authorization: alpha\r\n",
                              "Authorization: Basic alpha\r\n"}) {
    const std::string answer =
        Exchange(absl::StrCat("GET /v1/models HTTP/1.1\r\nHost: t\r\n", missing));
    EXPECT_EQ(answer.find("HTTP/1.1 401"), 0U) << missing << answer;
    EXPECT_NE(answer.find("WWW-Authenticate: Bearer\r\n"), std::string::npos) << answer;
    EXPECT_NE(answer.find("Authorization: Bearer <token>"), std::string::npos) << answer;
    EXPECT_EQ(answer.find("alpha"), std::string::npos) << answer;
  }
  for (const char* token : {"alpha", "beta"}) {
    const std::string answer = Exchange(absl::StrCat(
        "GET /v1/models HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ", token, "\r\n"));
    EXPECT_EQ(answer.find("HTTP/1.1 200"), 0U) << answer;
  }
  EXPECT_EQ(Exchange("GET /health HTTP/1.1\r\nHost: t\r\n").find("HTTP/1.1 200"), 0U);
  EXPECT_EQ(Exchange("GET /metrics HTTP/1.1\r\nHost: t\r\n").find("HTTP/1.1 200"), 0U);
  // A browser's preflight carries no credentials: it is answered, the request after it is not.
  const std::string preflight = Exchange(
      "OPTIONS /v1/models HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n"
      "Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n");
  EXPECT_EQ(preflight.find("HTTP/1.1 204"), 0U) << preflight;
}

TEST_F(OpenAiGatewayTest, ASlowReaderGetsEveryEvent) {
  worker_->set_tokens(0, absl::ZeroDuration());
  constexpr int kTokens = 20'000;  // about 3 MB of events: paused and resumed many times
  UniqueFd client = StartStream(kTokens);
  const std::string all = ReadSlowly(client);
  EXPECT_EQ(Count(all, R"("text":"t)"), kTokens);
  EXPECT_EQ(Count(all, "data: [DONE]"), 1);
  EXPECT_EQ(worker_->cancellations(), 0);
}

}  // namespace
}  // namespace ringserve::openai
