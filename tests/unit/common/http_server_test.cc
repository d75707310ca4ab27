// HttpServer over real loopback sockets: keep-alive, streaming from other threads, clients
// that leave, 100-continue, the errors the server makes itself, timeouts, shutdown, and many
// streams at once. The client side parses responses itself, so the framing is checked too.
#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace ringserve::http {
namespace {

// An invalid fd when the connection is refused.
UniqueFd TryConnect(int port, int receive_buffer_bytes = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  if (receive_buffer_bytes > 0) {
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes,
                 sizeof(receive_buffer_bytes));
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return UniqueFd();
  }
  return fd;
}

struct Response {
  int status = 0;
  std::string head;  // status line and header fields as received
  Headers headers;   // names lower-cased
  std::string body;
  std::vector<std::string> chunks;  // of a chunked body, as framed

  const std::string* Header(absl::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return &v;
    }
    return nullptr;
  }
  bool Closes() const {
    return Header("connection") != nullptr && *Header("connection") == "close";
  }
};

// A blocking HTTP/1.1 client that parses what it reads (5 s receive timeout).
class Client {
 public:
  explicit Client(int port, int receive_buffer_bytes = 0)
      : fd_(TryConnect(port, receive_buffer_bytes)) {
    EXPECT_TRUE(fd_.valid()) << std::strerror(errno);
  }

  void Send(absl::string_view bytes) {
    ASSERT_EQ(::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  void Get(absl::string_view target, absl::string_view extra = "") {
    Send(absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: test\r\n", extra, "\r\n"));
  }

  // The status line and headers; nullopt when the connection ends first.
  std::optional<Response> ReadHead() {
    size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    Response r;
    r.head = buffer_.substr(0, end + 4);
    buffer_.erase(0, end + 4);
    const std::vector<absl::string_view> lines =
        absl::StrSplit(absl::string_view(r.head).substr(0, end), "\r\n");
    if (lines.empty() || lines[0].size() < 12 ||
        !absl::SimpleAtoi(lines[0].substr(9, 3), &r.status)) {
      ADD_FAILURE() << "bad status line: " << r.head;
      return std::nullopt;
    }
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      r.headers.emplace_back(absl::AsciiStrToLower(lines[i].substr(0, colon)),
                             std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
    }
    return r;
  }

  // One chunk of a chunked body; "" for the last chunk, nullopt when the connection ends.
  std::optional<std::string> ReadChunk() {
    std::string line;
    if (!ReadLine(line)) return std::nullopt;
    size_t size = 0;
    if (!absl::SimpleHexAtoi(line, &size)) {
      ADD_FAILURE() << "bad chunk size line: " << line;
      return std::nullopt;
    }
    if (size == 0) {
      while (ReadLine(line) && !line.empty()) {
      }
      return std::string();
    }
    std::string chunk;
    if (!ReadExact(size, chunk) || !ReadLine(line)) return std::nullopt;
    EXPECT_EQ(line, "") << "chunk longer than its size";
    return chunk;
  }

  // A whole response, its body framed as its head says; nullopt when the connection ends
  // first. A HEAD request's response has no body.
  std::optional<Response> Read(bool head_request = false) {
    std::optional<Response> r = ReadHead();
    if (!r || head_request || r->status < 200 || r->status == 204 || r->status == 304) return r;
    if (const std::string* length = r->Header("content-length")) {
      size_t n = 0;
      EXPECT_TRUE(absl::SimpleAtoi(*length, &n));
      if (!ReadExact(n, r->body)) return std::nullopt;
    } else if (r->Header("transfer-encoding") != nullptr) {
      EXPECT_EQ(*r->Header("transfer-encoding"), "chunked");
      for (;;) {
        std::optional<std::string> chunk = ReadChunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        r->body += *chunk;
        r->chunks.push_back(*std::move(chunk));
      }
    } else {
      r->body = ReadToEnd();
    }
    return r;
  }

  // Everything until the server closes (or 5 s pass), starting with what is buffered.
  std::string ReadToEnd() {
    while (Fill()) {
    }
    return std::exchange(buffer_, std::string());
  }
  // Whether the server closed the connection (rather than the 5 s timeout passing).
  bool ClosedByServer() {
    while (Fill()) {
    }
    return eof_;
  }

  // Closes with a reset instead of a FIN.
  void Reset() {
    const linger abort{.l_onoff = 1, .l_linger = 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
    fd_.Reset();
  }
  void Close() { fd_.Reset(); }

 private:
  bool Fill() {
    char buffer[65536];
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    buffer_.append(buffer, static_cast<size_t>(n));
    return true;
  }
  bool ReadLine(std::string& line) {
    size_t end = 0;
    while ((end = buffer_.find("\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    line = buffer_.substr(0, end);
    buffer_.erase(0, end + 2);
    return true;
  }
  bool ReadExact(size_t n, std::string& out) {
    while (buffer_.size() < n) {
      if (!Fill()) return false;
    }
    out.append(buffer_, 0, n);
    buffer_.erase(0, n);
    return true;
  }

  UniqueFd fd_;
  std::string buffer_;
  bool eof_ = false;
};

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

std::unique_ptr<HttpServer> StartOrDie(Handler handler, HttpServerOptions options = {}) {
  options.host = "127.0.0.1";
  auto server = HttpServer::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// Answers "METHOD target body-bytes peer".
void Echo(const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
  writer->Respond(200, "text/plain",
                  absl::StrCat(request.method, " ", request.target, " ", request.body.size(), " ",
                               request.peer),
                  {{"X-Path", request.path}});
}

// The writers handlers kept, for the test to answer through.
class Kept {
 public:
  void Add(std::shared_ptr<ResponseWriter> writer) {
    const std::lock_guard<std::mutex> lock(mu_);
    writers_.push_back(std::move(writer));
  }
  size_t size() {
    const std::lock_guard<std::mutex> lock(mu_);
    return writers_.size();
  }
  std::shared_ptr<ResponseWriter> at(size_t i) {
    const std::lock_guard<std::mutex> lock(mu_);
    return writers_.at(i);
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<ResponseWriter>> writers_;
};

TEST(HttpServerTest, AnswersAGet) {
  auto server = StartOrDie(Echo);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  Client client(server->port());
  client.Get("/v1/models?x=1");
  const std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(absl::StartsWith(r->head, "HTTP/1.1 200 OK\r\n")) << r->head;
  EXPECT_EQ(r->body, "GET /v1/models?x=1 0 127.0.0.1");
  ASSERT_NE(r->Header("server"), nullptr);
  EXPECT_EQ(*r->Header("server"), "ringserve");
  EXPECT_EQ(*r->Header("content-type"), "text/plain");
  EXPECT_EQ(*r->Header("x-path"), "/v1/models");
  EXPECT_EQ(r->Header("connection"), nullptr);  // HTTP/1.1 stays open without saying so
  EXPECT_EQ(server->active_requests(), 0);
}

TEST(HttpServerTest, KeepAliveCarriesRequestsOneAfterAnother) {
  auto server = StartOrDie(Echo);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Get("/first");
  std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /first 0 127.0.0.1");
  client.Send("POST /second HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde");
  r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /second 5 127.0.0.1");
  // HEAD: the length of the body a GET would get, and no body, so the next response is intact.
  client.Send("HEAD /third HTTP/1.1\r\n\r\n");
  r = client.Read(/*head_request=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r->Header("content-length"), absl::StrCat(std::strlen("HEAD /third 0 127.0.0.1")));
  client.Get("/fourth");
  r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /fourth 0 127.0.0.1");
}

TEST(HttpServerTest, PipelinedRequestsAreHandledOneAtATimeInOrder) {
  std::atomic<int> in_handler{0};
  std::atomic<bool> overlapped{false};
  std::vector<std::jthread> answers;
  auto server =
      StartOrDie([&](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        if (in_handler.fetch_add(1) != 0) overlapped = true;
        answers.emplace_back([&in_handler, path = request.path, writer] {
          absl::SleepFor(absl::Milliseconds(path == "/slow" ? 100 : 1));
          in_handler.fetch_sub(1);
          writer->Respond(200, "text/plain", path);
        });
      });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Send("GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n");
  for (const char* path : {"/slow", "/fast", "/last"}) {
    const std::optional<Response> r = client.Read();
    ASSERT_TRUE(r.has_value()) << path;
    EXPECT_EQ(r->body, path);
  }
  server.reset();  // handlers run on the server's thread; `answers` is then ours alone
  for (std::jthread& t : answers) t.join();
  EXPECT_FALSE(overlapped.load());
}

TEST(HttpServerTest, ConnectionCloseAndHttp10AreHonoured) {
  auto server = StartOrDie(Echo);
  ASSERT_NE(server, nullptr);
  {
    Client client(server->port());
    client.Get("/", "Connection: close\r\n");
    const std::optional<Response> r = client.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->Closes()) << r->head;
    EXPECT_TRUE(client.ClosedByServer());
  }
  {
    Client client(server->port());
    client.Send("GET /old HTTP/1.0\r\n\r\n");
    const std::optional<Response> r = client.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, "GET /old 0 127.0.0.1");
    EXPECT_TRUE(r->Closes()) << r->head;
    EXPECT_TRUE(client.ClosedByServer());
  }
  {
    // An HTTP/1.0 client keeps its connection only when told it may.
    Client client(server->port());
    client.Send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    std::optional<Response> r = client.Read();
    ASSERT_TRUE(r.has_value());
    ASSERT_NE(r->Header("connection"), nullptr);
    EXPECT_EQ(*r->Header("connection"), "keep-alive");
    client.Send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    r = client.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->body, "GET /b 0 127.0.0.1");
  }
}

TEST(HttpServerTest, StreamsChunksWrittenFromAnotherThreadInOrder) {
  std::vector<std::jthread> streams;
  auto server =
      StartOrDie([&](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        writer->StartStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
        streams.emplace_back([writer] {
          for (int i = 0; i < 20; ++i) {
            writer->Write(absl::StrCat("data: ", i, "\n\n"));
            writer->Write("");  // ignored, so it cannot end the chunked body early
            if (i % 5 == 0) absl::SleepFor(absl::Milliseconds(2));
          }
          writer->Finish();
        });
      });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  for (int round = 0; round < 2; ++round) {  // the connection is reusable after a stream
    client.Get("/stream");
    const std::optional<Response> r = client.Read();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r->Header("content-type"), "text/event-stream");
    EXPECT_EQ(*r->Header("cache-control"), "no-cache");
    EXPECT_EQ(r->Header("content-length"), nullptr);
    ASSERT_EQ(r->chunks.size(), 20u) << r->body;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(r->chunks[i], absl::StrCat("data: ", i, "\n\n"));
  }
  // HTTP/1.0 has no chunks: the body runs to the close.
  Client old(server->port());
  old.Send("GET /stream HTTP/1.0\r\n\r\n");
  const std::optional<Response> r = old.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->Header("transfer-encoding"), nullptr);
  EXPECT_TRUE(r->Closes());
  EXPECT_TRUE(absl::StartsWith(r->body, "data: 0\n\ndata: 1\n\n")) << r->body;
  EXPECT_TRUE(absl::EndsWith(r->body, "data: 19\n\n")) << r->body;
  server.reset();
  for (std::jthread& t : streams) t.join();
}

TEST(HttpServerTest, RespondsFromAnotherThreadAfterTheHandlerReturned) {
  Kept kept;
  auto server = StartOrDie(
      [&](const HttpRequest&, const std::shared_ptr<ResponseWriter>& writer) { kept.Add(writer); });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Get("/later");
  ASSERT_TRUE(WaitFor([&] { return kept.size() == 1; }));
  EXPECT_EQ(server->active_requests(), 1);
  std::thread([&] { kept.at(0)->Respond(201, "application/json", "{}"); }).join();
  const std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(absl::StartsWith(r->head, "HTTP/1.1 201 Created\r\n")) << r->head;
  EXPECT_EQ(r->body, "{}");
  EXPECT_EQ(server->active_requests(), 0);
  // Out of order: ignored, and the connection stays consistent.
  kept.at(0)->Respond(500, "text/plain", "again");
  kept.at(0)->Write("stray");
  kept.at(0)->Finish();
  client.Get("/next");
  ASSERT_TRUE(WaitFor([&] { return kept.size() == 2; }));
  kept.at(1)->Respond(200, "text/plain", "next");
  const std::optional<Response> next = client.Read();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, "next");
}

TEST(HttpServerTest, ClientLeavingMidStreamRunsOnClientGoneOnce) {
  for (const bool reset : {false, true}) {
    Kept kept;
    std::atomic<int> gone{0};
    std::atomic<bool> on_server_thread{false};
    std::thread::id handler_thread;
    auto server =
        StartOrDie([&](const HttpRequest&, const std::shared_ptr<ResponseWriter>& writer) {
          handler_thread = std::this_thread::get_id();
          writer->StartStream(200, "text/event-stream");
          writer->Write("data: hello\n\n");
          writer->OnClientGone([&] {
            on_server_thread = std::this_thread::get_id() == handler_thread;
            ++gone;
          });
          kept.Add(writer);
        });
    ASSERT_NE(server, nullptr);
    Client client(server->port());
    client.Get("/stream");
    ASSERT_TRUE(client.ReadHead().has_value());
    ASSERT_EQ(client.ReadChunk(), "data: hello\n\n");
    if (reset) {
      client.Reset();
    } else {
      client.Close();
    }
    ASSERT_TRUE(WaitFor([&] { return gone.load() > 0; })) << "reset=" << reset;
    EXPECT_TRUE(on_server_thread.load());
    EXPECT_EQ(server->active_requests(), 0);
    const std::shared_ptr<ResponseWriter> writer = kept.at(0);
    writer->Write("data: nobody\n\n");
    EXPECT_EQ(writer->pending_bytes(), 0u);
    writer->Finish();
    writer->OnClientGone([&] { ++gone; });  // a second callback is refused
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ(gone.load(), 1);
  }
}

TEST(HttpServerTest, OnClientGoneSetAfterTheClientLeftRunsAtOnce) {
  Kept kept;
  auto server = StartOrDie(
      [&](const HttpRequest&, const std::shared_ptr<ResponseWriter>& writer) { kept.Add(writer); });
  ASSERT_NE(server, nullptr);
  {
    Client client(server->port());
    client.Get("/");
    ASSERT_TRUE(WaitFor([&] { return kept.size() == 1; }));
  }
  ASSERT_TRUE(WaitFor([&] { return server->active_requests() == 0; }));
  std::thread::id ran_on;
  kept.at(0)->OnClientGone([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(HttpServerTest, ExpectContinueGetsContinueBeforeTheBody) {
  auto server = StartOrDie(Echo, {.max_body_bytes = 4096});
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Send("POST /upload HTTP/1.1\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n");
  std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->head, "HTTP/1.1 100 Continue\r\n\r\n");
  client.Send(std::string(2000, 'b'));
  r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "POST /upload 2000 127.0.0.1");

  // Too large: refused at once, without the 100 that would invite the body.
  Client big(server->port());
  big.Send("POST /upload HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n");
  r = big.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(r->Closes());
}

TEST(HttpServerTest, BadRequestsGetTheServersOwnErrorsAndClose) {
  auto server = StartOrDie(Echo, {.max_body_bytes = 1024, .max_head_bytes = 1024});
  ASSERT_NE(server, nullptr);
  const struct {
    std::string request;
    int status;
  } cases[] = {
      {absl::StrCat("POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", std::string(100000, 'x')),
       413},
      {absl::StrCat("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n",
                    std::string(2048, 'x'), "\r\n0\r\n\r\n"),
       413},
      {absl::StrCat("GET / HTTP/1.1\r\nX-Big: ", std::string(2000, 'h'), "\r\n\r\n"), 431},
      {"GET /\r\n\r\n", 400},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
      {"GET / HTTP/3.0\r\n\r\n", 505},
  };
  for (const auto& c : cases) {
    Client client(server->port());
    client.Send(c.request);
    const std::optional<Response> r = client.Read();
    ASSERT_TRUE(r.has_value()) << c.request.substr(0, 60);
    EXPECT_EQ(r->status, c.status) << c.request.substr(0, 60);
    EXPECT_TRUE(r->Closes()) << r->head;
    EXPECT_EQ(*r->Header("content-type"), "text/plain; charset=utf-8");
    EXPECT_EQ(*r->Header("server"), "ringserve");
    EXPECT_GT(r->body.size(), 1u);
    EXPECT_TRUE(client.ClosedByServer());
  }
  // A bad request closes only its own connection.
  Client client(server->port());
  client.Get("/still");
  const std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerTest, HandlerHeadersCannotBreakTheFraming) {
  auto server = StartOrDie([](const HttpRequest&, const std::shared_ptr<ResponseWriter>& writer) {
    writer->Respond(200, "text/plain", "body",
                    {{"X-Ok", "1"},
                     {"X-Bad", "v\r\nInjected: yes"},
                     {"Content-Length", "999"},
                     {"Connection", "close"}});
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Get("/");
  const std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "body");
  EXPECT_EQ(*r->Header("x-ok"), "1");
  EXPECT_EQ(r->Header("x-bad"), nullptr);
  EXPECT_FALSE(absl::StrContains(r->head, "Injected")) << r->head;
  EXPECT_EQ(*r->Header("content-length"), "4");
  EXPECT_TRUE(r->Closes());  // the handler's "Connection: close" is honoured
  EXPECT_TRUE(client.ClosedByServer());
}

TEST(HttpServerTest, AWriterDroppedUnfinishedEndsItsResponse) {
  auto server =
      StartOrDie([](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        if (request.path == "/stream") {
          writer->StartStream(200, "text/event-stream");
          writer->Write("partial");
        }
      });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Get("/nothing");
  const std::optional<Response> r = client.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);
  client.Get("/stream");
  ASSERT_TRUE(client.ReadHead().has_value());
  EXPECT_EQ(client.ReadChunk(), "partial");
  EXPECT_EQ(client.ReadChunk(), std::nullopt);  // cut off: no last chunk, the connection closed
  EXPECT_EQ(server->active_requests(), 0);
}

TEST(HttpServerTest, TimeoutsForSlowAndIdleClientsButNotForSlowHandlers) {
  Kept kept;
  auto server = StartOrDie(
      [&](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        if (request.path == "/slow") return kept.Add(writer);
        Echo(request, writer);
      },
      {.request_timeout = absl::Milliseconds(200), .idle_timeout = absl::Milliseconds(300)});
  ASSERT_NE(server, nullptr);
  const absl::Time start = absl::Now();
  Client partial(server->port());
  partial.Send("GET / HTTP/1.1\r\nHo");
  Client silent(server->port());
  Client idle(server->port());
  idle.Get("/");
  ASSERT_TRUE(idle.Read().has_value());
  Client slow(server->port());
  slow.Get("/slow");

  const std::optional<Response> r = partial.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 408);
  EXPECT_TRUE(partial.ClosedByServer());
  EXPECT_TRUE(silent.ClosedByServer());
  EXPECT_TRUE(idle.ClosedByServer());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  // The handler answers well after both timeouts.
  ASSERT_TRUE(WaitFor([&] { return kept.size() == 1; }));
  absl::SleepFor(absl::Milliseconds(600));
  kept.at(0)->Respond(200, "text/plain", "worth the wait");
  const std::optional<Response> late = slow.Read();
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->body, "worth the wait");
}

// Pending bytes grow for a client that does not read. OnWritable waits while the client
// lags, runs once the socket has taken the output down to its low water, and also runs for
// a client that leaves, so a waiter is never stranded.
TEST(HttpServerTest, OnWritableRunsWhenTheClientCatchesUpOrLeaves) {
  for (const bool client_reads : {true, false}) {
    Kept kept;
    auto server =
        StartOrDie([&](const HttpRequest&, const std::shared_ptr<ResponseWriter>& writer) {
          writer->StartStream(200, "application/octet-stream");
          kept.Add(writer);
        });
    ASSERT_NE(server, nullptr);
    Client client(server->port(), /*receive_buffer_bytes=*/64 << 10);
    client.Get("/");
    ASSERT_TRUE(WaitFor([&] { return kept.size() == 1; }));
    const std::shared_ptr<ResponseWriter> writer = kept.at(0);
    std::atomic<int> now_runs{0};
    writer->OnWritable(64 << 10, [&] { ++now_runs; });  // nothing pending yet: at once
    EXPECT_EQ(now_runs.load(), 1);
    const std::string piece(64 << 10, 'p');
    for (int i = 0; i < 128; ++i) writer->Write(piece);  // 8 MiB
    std::atomic<int> runs{0};
    writer->OnWritable(64 << 10, [&] { ++runs; });
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_EQ(runs.load(), 0) << "the client has read nothing";
    EXPECT_GT(writer->pending_bytes(), 64u << 10);
    if (client_reads) {
      writer->Finish();
      const std::optional<Response> r = client.Read();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->body.size(), 128 * piece.size());
      // The server's thread notes the last send only after the client may have read it.
      EXPECT_TRUE(WaitFor([&] { return writer->pending_bytes() == 0; }));
    } else {
      client.Close();
    }
    EXPECT_TRUE(WaitFor([&] { return runs.load() == 1; })) << client_reads;
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ(runs.load(), 1);  // once
  }
}

TEST(HttpServerTest, ShutdownLetsAStreamFinishAndRefusesNewRequests) {
  Kept kept;
  std::atomic<int> gone{0};
  auto server =
      StartOrDie([&](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        if (request.path != "/stream") return Echo(request, writer);
        writer->StartStream(200, "text/event-stream");
        writer->Write("first");
        writer->OnClientGone([&] { ++gone; });
        kept.Add(writer);
      });
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  Client streaming(port);
  streaming.Get("/stream");
  Client waiting(port);  // an idle keep-alive connection
  waiting.Get("/");
  ASSERT_TRUE(waiting.Read().has_value());
  ASSERT_TRUE(WaitFor([&] { return kept.size() == 1; }));

  std::atomic<bool> shut{false};
  std::jthread shutdown([&] {
    server->Shutdown(absl::Seconds(5));
    shut = true;
  });
  // New connections are refused once shutdown begins...
  ASSERT_TRUE(WaitFor([&] { return !TryConnect(port).valid(); }));
  // ...and a new request on an open connection gets 503.
  waiting.Get("/");
  const std::optional<Response> refused = waiting.Read();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 503);
  EXPECT_TRUE(refused->Closes());
  EXPECT_TRUE(waiting.ClosedByServer());

  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(shut.load());  // the stream is still in progress
  EXPECT_EQ(server->active_requests(), 1);
  const absl::Time finish = absl::Now();
  kept.at(0)->Write("second");
  kept.at(0)->Finish();
  shutdown.join();
  EXPECT_LT(absl::Now() - finish, absl::Seconds(1));
  const std::optional<Response> r = streaming.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "firstsecond");
  EXPECT_TRUE(streaming.ClosedByServer());
  EXPECT_EQ(gone.load(), 0);
  server->Shutdown(absl::Seconds(1));  // idempotent
}

// With nothing in progress, Shutdown returns at once rather than at the end of its grace:
// its own wake-up is what ends the loop's wait.
TEST(HttpServerTest, ShutdownOfAnIdleServerDoesNotWaitOutItsGrace) {
  auto server =
      StartOrDie([](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        Echo(request, writer);
      });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  client.Get("/");
  ASSERT_TRUE(client.Read().has_value());
  const absl::Time start = absl::Now();
  server->Shutdown(absl::Seconds(30));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(HttpServerTest, ShutdownGraceRunsOutAndTheDestructorEndsPendingResponses) {
  for (const bool use_shutdown : {true, false}) {
    Kept kept;
    std::atomic<int> gone{0};
    auto server =
        StartOrDie([&](const HttpRequest&, const std::shared_ptr<ResponseWriter>& writer) {
          writer->OnClientGone([&] { ++gone; });
          kept.Add(writer);
        });
    ASSERT_NE(server, nullptr);
    Client client(server->port());
    client.Get("/forever");
    ASSERT_TRUE(WaitFor([&] { return kept.size() == 1; }));
    const absl::Time start = absl::Now();
    if (use_shutdown) {
      server->Shutdown(absl::Milliseconds(200));
      EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
    }
    server.reset();
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    EXPECT_EQ(gone.load(), 1);
    EXPECT_TRUE(client.ClosedByServer());
    // The writer outlives the server; its calls are no-ops.
    kept.at(0)->Respond(200, "text/plain", "too late");
    EXPECT_EQ(kept.at(0)->pending_bytes(), 0u);
  }
}

TEST(HttpServerTest, ManyConcurrentStreamsEachGetTheirOwnData) {
  constexpr int kClients = 200;
  constexpr int kParts = 5;
  Kept kept;
  std::vector<std::shared_ptr<ResponseWriter>> by_client(kClients);
  std::mutex by_client_mu;
  auto server =
      StartOrDie([&](const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
        int id = -1;
        ASSERT_TRUE(absl::SimpleAtoi(request.path.substr(3), &id));
        writer->StartStream(200, "text/event-stream");
        {
          const std::lock_guard<std::mutex> lock(by_client_mu);
          by_client.at(id) = writer;
        }
        kept.Add(writer);
      });
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<Client>(server->port()));
    clients.back()->Get(absl::StrCat("/s/", i));
  }
  ASSERT_TRUE(WaitFor([&] { return kept.size() == kClients; }));
  EXPECT_EQ(server->active_requests(), kClients);
  std::jthread writer([&] {
    const std::lock_guard<std::mutex> lock(by_client_mu);
    for (int part = 0; part < kParts; ++part) {
      for (int i = 0; i < kClients; ++i) by_client[i]->Write(absl::StrCat(i, ":", part, ";"));
    }
    for (int i = 0; i < kClients; ++i) by_client[i]->Finish();
  });
  for (int i = 0; i < kClients; ++i) {
    const std::optional<Response> r = clients[i]->Read();
    ASSERT_TRUE(r.has_value()) << i;
    std::string expected;
    for (int part = 0; part < kParts; ++part) absl::StrAppend(&expected, i, ":", part, ";");
    EXPECT_EQ(r->body, expected);
    EXPECT_EQ(r->chunks.size(), static_cast<size_t>(kParts));
  }
  writer.join();
  EXPECT_EQ(server->active_requests(), 0);
}

TEST(HttpServerTest, ConnectionsOverTheLimitWaitInTheBacklog) {
  auto server = StartOrDie(Echo, {.max_connections = 1});
  ASSERT_NE(server, nullptr);
  auto holder = std::make_unique<Client>(server->port());
  holder->Get("/held");
  ASSERT_TRUE(holder->Read().has_value());
  Client waiting(server->port());  // connected by the kernel, not yet accepted
  waiting.Get("/waited");
  absl::SleepFor(absl::Milliseconds(100));
  holder.reset();
  const std::optional<Response> r = waiting.Read();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->body, "GET /waited 0 127.0.0.1");
}

double ProcessCpuSeconds() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

TEST(HttpServerTest, OutOfFileDescriptorsPausesAcceptingWithoutSpinning) {
  auto server = StartOrDie(Echo);
  ASSERT_NE(server, nullptr);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(server->port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Every descriptor below the lowest free one is in use: with that as the limit, the
  // server's accept fails with EMFILE.
  const int lowest_free = ::dup(0);
  ::close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  const bool connected =
      ::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  const double cpu_before = ProcessCpuSeconds();
  absl::SleepFor(absl::Milliseconds(300));
  const double cpu_seconds = ProcessCpuSeconds() - cpu_before;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(connected);
  EXPECT_LT(cpu_seconds, 0.15);  // spinning on the listener would take the whole 0.3 s
  // Once descriptors are free again the waiting client is served.
  const std::string request = "GET /after HTTP/1.1\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(client.get(), request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  timeval timeout{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string reply;
  char buffer[4096];
  for (ssize_t n = 0; (n = ::recv(client.get(), buffer, sizeof(buffer), 0)) > 0;) {
    reply.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_TRUE(absl::EndsWith(reply, "GET /after 0 127.0.0.1")) << reply;
}

TEST(HttpServerTest, ABusyPortIsUnavailable) {
  auto first = StartOrDie(Echo);
  ASSERT_NE(first, nullptr);
  auto second = HttpServer::Start({.host = "127.0.0.1", .port = first->port()}, Echo);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(), "in use")) << second.status();
  EXPECT_EQ(HttpServer::Start({.host = "127.0.0.1"}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ringserve::http
