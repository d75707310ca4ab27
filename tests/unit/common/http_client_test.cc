// HttpClient against HttpServer (and against bare sockets for what a well-behaved server never
// does) over loopback: many streams at once from one thread, keep-alive reuse, a stale
// keep-alive connection sent again, refusals, timeouts and shutting down with exchanges in
// flight.
#include "common/http/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http/http_server.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace ringserve::http {
namespace {

// Records one exchange; Wait() returns its status.
class Recorder final : public HttpResponseHandler {
 public:
  void OnHead(const HttpResponseHead& head) override {
    const std::lock_guard lock(mu_);
    ++heads_;
    status_code_ = head.status;
  }
  void OnBody(absl::string_view bytes) override {
    const std::lock_guard lock(mu_);
    body_.append(bytes.data(), bytes.size());
    ++pieces_;
  }
  void OnDone(const absl::Status& status) override {
    const std::lock_guard lock(mu_);
    ++dones_;
    status_ = status;
    cv_.notify_all();
  }

  absl::Status Wait() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(20), [this] { return dones_ > 0; });
    EXPECT_EQ(dones_, 1);
    return status_;
  }
  int status_code() const {
    const std::lock_guard lock(mu_);
    return status_code_;
  }
  std::string body() const {
    const std::lock_guard lock(mu_);
    return body_;
  }
  int heads() const {
    const std::lock_guard lock(mu_);
    return heads_;
  }
  int pieces() const {
    const std::lock_guard lock(mu_);
    return pieces_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int heads_ = 0;
  int dones_ = 0;
  int pieces_ = 0;
  int status_code_ = 0;
  std::string body_;
  absl::Status status_ = absl::UnknownError("not done");
};

std::unique_ptr<HttpServer> StartServer(Handler handler, HttpServerOptions options = {}) {
  options.host = "127.0.0.1";
  auto server = HttpServer::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  return std::move(*server);
}

std::unique_ptr<HttpClient> ClientOf(int port) {
  auto client = HttpClient::Create("127.0.0.1", port);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(*client);
}

HttpClientRequest Post(std::string body) {
  HttpClientRequest request;
  request.method = "POST";
  request.target = "/echo";
  request.headers = {{"Content-Type", "application/json"}};
  request.body = std::move(body);
  return request;
}

TEST(HttpClientTest, ManyStreamsAtOnceAndTheirConnectionsReused) {
  constexpr int kStreams = 200;
  constexpr int kEvents = 20;
  std::vector<std::thread> writers;
  std::mutex writers_mu;
  auto server = StartServer([&](HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
    const std::lock_guard lock(writers_mu);
    // Each stream is written from a thread of its own, a piece at a time, as a generation is.
    writers.emplace_back([writer, body = request.body] {
      writer->StartStream(200, "text/event-stream");
      for (int i = 0; i < kEvents; ++i) writer->Write(absl::StrCat("data: ", body, i, "\n\n"));
      writer->Finish();
    });
  });
  const std::unique_ptr<HttpClient> client = ClientOf(server->port());
  for (int round = 0; round < 2; ++round) {
    std::vector<Recorder> recorders(kStreams);
    for (int s = 0; s < kStreams; ++s) client->Send(Post(absl::StrCat("s", s, "-")), &recorders[s]);
    for (int s = 0; s < kStreams; ++s) {
      ASSERT_TRUE(recorders[s].Wait().ok()) << s;
      EXPECT_EQ(recorders[s].status_code(), 200);
      EXPECT_EQ(recorders[s].heads(), 1);
      std::string expected;
      for (int i = 0; i < kEvents; ++i) absl::StrAppend(&expected, "data: s", s, "-", i, "\n\n");
      EXPECT_EQ(recorders[s].body(), expected) << s;
    }
    // The second round finds the first one's connections idle and opens none.
    EXPECT_LE(client->open_connections(), kStreams) << round;
    EXPECT_GT(client->open_connections(), 0) << round;
  }
  const std::lock_guard lock(writers_mu);
  for (std::thread& t : writers) t.join();
}

TEST(HttpClientTest, SequentialRequestsShareOneConnectionAndErrorsComeAsStatuses) {
  auto server = StartServer([](HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
    if (request.path == "/missing") {
      writer->Respond(404, "application/json", R"({"error": "no"})");
      return;
    }
    writer->Respond(200, "text/plain", absl::StrCat(request.method, " ", request.body));
  });
  const std::unique_ptr<HttpClient> client = ClientOf(server->port());
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpFetchResult> result = Fetch(*client, Post(absl::StrCat("n", i)));
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->head.status, 200);
    EXPECT_EQ(result->body, absl::StrCat("POST n", i));
    EXPECT_EQ(client->open_connections(), 1);
  }
  HttpClientRequest get;
  get.target = "/missing";
  absl::StatusOr<HttpFetchResult> missing = Fetch(*client, get);
  ASSERT_TRUE(missing.ok()) << missing.status();  // an answer, even if not the one wanted
  EXPECT_EQ(missing->head.status, 404);
  EXPECT_EQ(missing->body, R"({"error": "no"})");
  HttpClientRequest head;
  head.method = "HEAD";
  absl::StatusOr<HttpFetchResult> headed = Fetch(*client, head);
  ASSERT_TRUE(headed.ok()) << headed.status();
  EXPECT_EQ(headed->body, "");
  EXPECT_EQ(client->open_connections(), 1);
}

// A listener on a free loopback port, and the port.
UniqueFd Listen(int& port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::listen(fd.get(), 8), 0);
  socklen_t size = sizeof(address);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &size);
  port = ntohs(address.sin_port);
  return fd;
}

// Reads until a request head's end has arrived (the tests' requests have no body).
void ReadRequest(int fd) {
  std::string got;
  char buffer[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n <= 0) return;
    got.append(buffer, static_cast<size_t>(n));
  }
}

void WriteAll(int fd, absl::string_view bytes) {
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

TEST(HttpClientTest, AStaleKeepAliveConnectionIsSentAgainOnANewOne) {
  int port = 0;
  UniqueFd listener = Listen(port);
  std::thread server([&] {
    // The first connection answers once, then closes on reading the second request unanswered
    // (as a server does that let an idle connection go just as the request went out).
    UniqueFd first(::accept(listener.get(), nullptr, nullptr));
    ReadRequest(first.get());
    WriteAll(first.get(), "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    ReadRequest(first.get());
    first.Reset();
    UniqueFd second(::accept(listener.get(), nullptr, nullptr));
    ReadRequest(second.get());
    WriteAll(second.get(), "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
    ReadRequest(second.get());  // until the client goes
  });
  std::unique_ptr<HttpClient> client = ClientOf(port);
  HttpClientRequest get;
  absl::StatusOr<HttpFetchResult> one = Fetch(*client, get);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->body, "first");
  absl::StatusOr<HttpFetchResult> two = Fetch(*client, get);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->body, "second");
  client.reset();
  server.join();
}

TEST(HttpClientTest, ANewConnectionClosedUnansweredFailsAndSoDoesARefusedOne) {
  int port = 0;
  UniqueFd listener = Listen(port);
  std::thread server([&] {
    UniqueFd c(::accept(listener.get(), nullptr, nullptr));
    ReadRequest(c.get());
  });
  const std::unique_ptr<HttpClient> client = ClientOf(port);
  absl::StatusOr<HttpFetchResult> cut = Fetch(*client, HttpClientRequest());
  EXPECT_TRUE(absl::IsUnavailable(cut.status())) << cut.status();
  server.join();
  listener.Reset();  // nothing listens there now
  absl::StatusOr<HttpFetchResult> refused = Fetch(*client, HttpClientRequest());
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_EQ(client->open_connections(), 0);

  int bad_port = 0;
  UniqueFd bad = Listen(bad_port);
  std::thread liar([&] {
    UniqueFd c(::accept(bad.get(), nullptr, nullptr));
    ReadRequest(c.get());
    WriteAll(c.get(), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    ReadRequest(c.get());
  });
  const std::unique_ptr<HttpClient> other = ClientOf(bad_port);
  absl::StatusOr<HttpFetchResult> malformed = Fetch(*other, HttpClientRequest());
  EXPECT_TRUE(absl::IsInternal(malformed.status())) << malformed.status();
  liar.join();
}

TEST(HttpClientTest, AnExchangePastItsTimeoutEndsAndOthersGoOn) {
  std::mutex mu;
  std::vector<std::shared_ptr<ResponseWriter>> held;
  auto server = StartServer([&](HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
    if (request.path == "/slow") {
      const std::lock_guard lock(mu);
      held.push_back(writer);  // never answered while the test waits
      return;
    }
    writer->Respond(200, "text/plain", "fast");
  });
  const std::unique_ptr<HttpClient> client = ClientOf(server->port());
  HttpClientRequest slow;
  slow.target = "/slow";
  slow.timeout = absl::Milliseconds(200);
  Recorder late;
  const absl::Time start = absl::Now();
  client->Send(slow, &late);
  HttpClientRequest fast;
  fast.timeout = absl::Seconds(10);
  absl::StatusOr<HttpFetchResult> quick = Fetch(*client, fast);
  ASSERT_TRUE(quick.ok()) << quick.status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(late.Wait())) << late.Wait();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  const std::lock_guard lock(mu);
  held.clear();
}

TEST(HttpClientTest, DestroyingTheClientCancelsWhatIsInFlight) {
  std::mutex mu;
  std::vector<std::shared_ptr<ResponseWriter>> held;
  auto server = StartServer([&](HttpRequest, std::shared_ptr<ResponseWriter> writer) {
    writer->StartStream(200, "text/event-stream");
    writer->Write("data: first\n\n");
    const std::lock_guard lock(mu);
    held.push_back(writer);
  });
  std::unique_ptr<HttpClient> client = ClientOf(server->port());
  std::vector<Recorder> recorders(3);
  for (Recorder& r : recorders) client->Send(HttpClientRequest(), &r);
  for (const Recorder& r : recorders) {
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (r.pieces() == 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(5));
  }
  client.reset();
  for (Recorder& r : recorders) {
    EXPECT_TRUE(absl::IsCancelled(r.Wait()));
    EXPECT_EQ(r.body(), "data: first\n\n");
  }
  const std::lock_guard lock(mu);
  held.clear();
}

TEST(HttpClientTest, AnUnknownHostIsUnavailable) {
  auto client = HttpClient::Create("no-such-host.invalid", 80);
  EXPECT_TRUE(absl::IsUnavailable(client.status())) << client.status();
}

}  // namespace
}  // namespace ringserve::http
