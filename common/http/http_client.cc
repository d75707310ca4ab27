#include "common/http/http_client.h"

#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ringserve::http {
namespace {

constexpr uint64_t kWakeKey = 0;
constexpr size_t kReadBytes = 64 << 10;

absl::Status ErrnoStatus(absl::string_view what, int error) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(error)));
}

std::string RequestBytes(const HttpClientRequest& request, const std::string& host) {
  std::string bytes =
      absl::StrCat(request.method, " ", request.target, " HTTP/1.1\r\nHost: ", host, "\r\n");
  for (const auto& [name, value] : request.headers) {
    absl::StrAppend(&bytes, name, ": ", value, "\r\n");
  }
  // A POST without a body still says so: some servers wait for one otherwise.
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    absl::StrAppend(&bytes, "Content-Length: ", request.body.size(), "\r\n");
  }
  absl::StrAppend(&bytes, "\r\n", request.body);
  return bytes;
}

}  // namespace

struct HttpClient::Exchange {
  std::string bytes;  // the request as it goes on the wire
  bool no_body = false;
  HttpResponseHandler* handler = nullptr;
  absl::Time deadline = absl::InfiniteFuture();
  bool retried = false;
};

struct HttpClient::Connection {
  uint64_t id = 0;
  UniqueFd fd;
  bool connected = false;
  bool reused = false;                 // carried an exchange before the present one
  std::unique_ptr<Exchange> exchange;  // null while idle
  size_t sent = 0;
  bool head_reported = false;
  HttpResponseParser parser;
};

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  sockaddr_storage address{};
  const auto size = static_cast<socklen_t>(found->ai_addrlen);
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);

  UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return ErrnoStatus("epoll_create1", errno);
  UniqueFd wake(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) return ErrnoStatus("eventfd", errno);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kWakeKey;
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &event) != 0) {
    return ErrnoStatus("epoll_ctl", errno);
  }
  const bool v6 = address.ss_family == AF_INET6;
  std::string host_header = absl::StrCat(
      v6 && host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host, ":", port);
  auto client = std::unique_ptr<HttpClient>(
      new HttpClient(address, size, std::move(host_header), std::move(epoll), std::move(wake)));
  client->thread_ = std::thread([raw = client.get()] { raw->Loop(); });
  return client;
}

HttpClient::HttpClient(sockaddr_storage address, socklen_t address_size, std::string host_header,
                       UniqueFd epoll, UniqueFd wake)
    : address_(address),
      address_size_(address_size),
      host_header_(std::move(host_header)),
      epoll_(std::move(epoll)),
      wake_(std::move(wake)) {}

HttpClient::~HttpClient() {
  {
    const std::lock_guard lock(mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

void HttpClient::Send(const HttpClientRequest& request, HttpResponseHandler* handler) {
  auto exchange = std::make_unique<Exchange>();
  exchange->bytes = RequestBytes(request, host_header_);
  exchange->no_body = request.method == "HEAD";
  exchange->handler = handler;
  if (request.timeout != absl::InfiniteDuration()) {
    exchange->deadline = absl::Now() + request.timeout;
  }
  {
    const std::lock_guard lock(mu_);
    pending_.push_back(std::move(exchange));
  }
  Wake();
}

int HttpClient::open_connections() const {
  const std::lock_guard lock(mu_);
  return open_connections_;
}

void HttpClient::Wake() {
  const uint64_t one = 1;
  // A full counter (never, in practice) still leaves the eventfd readable: nothing is lost.
  [[maybe_unused]] const ssize_t n = write(wake_.get(), &one, sizeof(one));
}

void HttpClient::Loop() {
  std::vector<epoll_event> events(256);
  while (true) {
    const int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                             PollTimeoutMs(absl::Now()));
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeKey) {
        uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = read(wake_.get(), &count, sizeof(count));
        continue;
      }
      OnEvent(events[i].data.u64, events[i].events);
    }
    {
      const std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    StartPending();
    const absl::Time now = absl::Now();
    if (now >= next_deadline_) CheckDeadlines(now);
  }
  // Stopping: every exchange not yet ended ends now.
  std::deque<std::unique_ptr<Exchange>> pending;
  {
    const std::lock_guard lock(mu_);
    pending.swap(pending_);
  }
  const absl::Status cancelled = absl::CancelledError("the HTTP client is shutting down");
  for (const auto& exchange : pending) exchange->handler->OnDone(cancelled);
  std::vector<uint64_t> ids;
  for (const auto& [id, c] : connections_) ids.push_back(id);
  for (const uint64_t id : ids) {
    Connection& c = *connections_.at(id);
    std::unique_ptr<Exchange> exchange = std::move(c.exchange);
    Close(id);
    if (exchange != nullptr) exchange->handler->OnDone(cancelled);
  }
}

void HttpClient::StartPending() {
  std::deque<std::unique_ptr<Exchange>> pending;
  {
    const std::lock_guard lock(mu_);
    pending.swap(pending_);
  }
  for (auto& exchange : pending) Begin(std::move(exchange));
}

void HttpClient::Begin(std::unique_ptr<Exchange> exchange, bool new_connection) {
  next_deadline_ = std::min(next_deadline_, exchange->deadline);
  Connection* c = nullptr;
  if (!idle_.empty() && !new_connection) {
    c = connections_.at(idle_.back()).get();
    idle_.pop_back();
    c->exchange = std::move(exchange);
  } else {
    c = Connect(exchange);
    if (c == nullptr) return;
  }
  c->sent = 0;
  c->head_reported = false;
  c->parser.Reset();
  if (c->exchange->no_body) c->parser.ExpectNoBody();
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT;
  event.data.u64 = c->id;
  epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c->fd.get(), &event);
  if (c->connected) Flush(*c);
}

HttpClient::Connection* HttpClient::Connect(std::unique_ptr<Exchange>& exchange) {
  UniqueFd fd(socket(address_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    exchange->handler->OnDone(ErrnoStatus("socket", errno));
    return nullptr;
  }
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const int rc = connect(fd.get(), reinterpret_cast<const sockaddr*>(&address_), address_size_);
  if (rc != 0 && errno != EINPROGRESS) {
    exchange->handler->OnDone(ErrnoStatus(absl::StrCat("connect to ", host_header_), errno));
    return nullptr;
  }
  auto c = std::make_unique<Connection>();
  c->id = next_id_++;
  c->fd = std::move(fd);
  c->connected = rc == 0;
  c->exchange = std::move(exchange);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT;
  event.data.u64 = c->id;
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c->fd.get(), &event);
  {
    const std::lock_guard lock(mu_);
    ++open_connections_;
  }
  Connection* raw = c.get();
  connections_.emplace(raw->id, std::move(c));
  return raw;
}

void HttpClient::OnEvent(uint64_t id, uint32_t events) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;  // closed earlier in this batch
  Connection& c = *it->second;
  if (!c.connected) {
    int error = 0;
    socklen_t size = sizeof(error);
    getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) {
      Fail(c, ErrnoStatus(absl::StrCat("connect to ", host_header_), error));
      return;
    }
    if ((events & (EPOLLOUT | EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
    c.connected = true;
  }
  if ((events & EPOLLOUT) != 0 && c.exchange != nullptr && c.sent < c.exchange->bytes.size()) {
    Flush(c);
    if (!connections_.contains(id)) return;
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) Read(c);
}

void HttpClient::Flush(Connection& c) {
  const std::string& bytes = c.exchange->bytes;
  while (c.sent < bytes.size()) {
    const ssize_t n = send(c.fd.get(), bytes.data() + c.sent, bytes.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // EPOLLOUT says when to go on
      Fail(c, ErrnoStatus("send", errno));
      return;
    }
    c.sent += static_cast<size_t>(n);
  }
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = c.id;
  epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &event);
}

void HttpClient::Read(Connection& c) {
  char buffer[kReadBytes];
  std::string body;
  while (true) {
    const ssize_t n = recv(c.fd.get(), buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Fail(c, ErrnoStatus("recv", errno));
      return;
    }
    if (c.exchange == nullptr) {  // idle: the server closed it, or spoke out of turn
      Close(c.id);
      return;
    }
    if (n == 0) {
      c.parser.FeedEof();
    } else {
      body.clear();
      const absl::string_view input(buffer, static_cast<size_t>(n));
      const size_t used = c.parser.Feed(input, &body);
      if (c.parser.head_complete() && !c.head_reported) {
        c.head_reported = true;
        c.exchange->handler->OnHead(c.parser.head());
      }
      if (!body.empty()) c.exchange->handler->OnBody(body);
      if (used < input.size() && c.parser.state() == HttpResponseParser::State::kComplete) {
        // Bytes past the response nobody asked for: the connection cannot be trusted again.
        const uint64_t id = c.id;
        Finish(c);
        Close(id);
        return;
      }
    }
    switch (c.parser.state()) {
      case HttpResponseParser::State::kComplete:
        Finish(c);
        return;
      case HttpResponseParser::State::kError:
        Fail(c, n == 0 ? absl::UnavailableError(c.parser.error_message())
                       : absl::InternalError(
                             absl::StrCat("malformed HTTP response: ", c.parser.error_message())));
        return;
      case HttpResponseParser::State::kIncomplete:
        break;
    }
  }
}

void HttpClient::Finish(Connection& c) {
  HttpResponseHandler* handler = c.exchange->handler;
  c.exchange.reset();
  if (c.parser.keep_alive()) {
    c.reused = true;
    idle_.push_back(c.id);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = c.id;
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &event);
  } else {
    Close(c.id);
  }
  handler->OnDone(absl::OkStatus());
}

void HttpClient::Fail(Connection& c, const absl::Status& status) {
  std::unique_ptr<Exchange> exchange = std::move(c.exchange);
  // A reused connection the server closed before answering: it had not read the request
  // (an idle keep-alive connection it let go as the request went out), so sending it again
  // cannot do it twice.
  const bool stale = c.reused && !c.parser.started() && absl::IsUnavailable(status);
  Close(c.id);
  if (exchange == nullptr) return;
  if (stale && !exchange->retried) {
    exchange->retried = true;
    // Other idle connections may have gone stale the same way: a new one.
    Begin(std::move(exchange), /*new_connection=*/true);
    return;
  }
  exchange->handler->OnDone(status);
}

void HttpClient::Close(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
  connections_.erase(it);
  idle_.erase(std::remove(idle_.begin(), idle_.end(), id), idle_.end());
  const std::lock_guard lock(mu_);
  --open_connections_;
}

void HttpClient::CheckDeadlines(absl::Time now) {
  next_deadline_ = absl::InfiniteFuture();
  std::vector<uint64_t> late;
  for (const auto& [id, c] : connections_) {
    if (c->exchange == nullptr) continue;
    if (c->exchange->deadline <= now) {
      late.push_back(id);
    } else {
      next_deadline_ = std::min(next_deadline_, c->exchange->deadline);
    }
  }
  for (const uint64_t id : late) {
    Fail(*connections_.at(id), absl::DeadlineExceededError("the HTTP request timed out"));
  }
}

int HttpClient::PollTimeoutMs(absl::Time now) const {
  if (next_deadline_ == absl::InfiniteFuture()) return -1;
  if (next_deadline_ <= now) return 0;
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(next_deadline_ - now) + 1, 60'000));
}

namespace {

// Collects one response for Fetch.
class FetchHandler final : public HttpResponseHandler {
 public:
  void OnHead(const HttpResponseHead& head) override { result_.head = head; }
  void OnBody(absl::string_view bytes) override { result_.body.append(bytes.data(), bytes.size()); }
  void OnDone(const absl::Status& status) override {
    const std::lock_guard lock(mu_);
    status_ = status;
    done_ = true;
    cv_.notify_all();
  }

  absl::StatusOr<HttpFetchResult> Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    if (!status_.ok()) return status_;
    return std::move(result_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  absl::Status status_;
  HttpFetchResult result_;
};

}  // namespace

absl::StatusOr<HttpFetchResult> Fetch(HttpClient& client, const HttpClientRequest& request) {
  FetchHandler handler;
  client.Send(request, &handler);
  return handler.Wait();
}

}  // namespace ringserve::http
