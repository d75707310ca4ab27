#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http/http_connection.h"
#include "common/http/http_exchange.h"
#include "common/log.h"
#include "common/tcp_bind.h"

namespace ringserve::http {
namespace {

using internal::Connection;

// How long accepting pauses when the process is out of file descriptors, instead of
// spinning on a listener that stays readable.
constexpr absl::Duration kAcceptBackoff = absl::Milliseconds(100);

// The client's address as text; an IPv4 client of a dual-stack socket ("::ffff:10.0.0.1")
// reads as the IPv4 address it is.
std::string PeerAddress(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
  } else if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      ::inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], text, sizeof(text));
    } else {
      ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    }
  }
  return text;
}

int PollTimeoutMs(absl::Time now, absl::Time wake_at) {
  if (wake_at == absl::InfiniteFuture()) return -1;
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(wake_at - now, absl::Milliseconds(1)));
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 60'000));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              Handler handler) {
  if (!handler) return absl::InvalidArgumentError("http: no handler");
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("http: max_connections must be at least 1");
  }
  absl::StatusOr<UniqueFd> listener = BindTcp(options.host, options.port);
  if (!listener.ok()) {
    return absl::UnavailableError(absl::StrCat("http: ", listener.status().message()));
  }
  if (::listen(listener->get(), SOMAXCONN) != 0) {
    return absl::UnavailableError(absl::StrCat("http: cannot listen on ", options.host, ":",
                                               options.port, ": ", std::strerror(errno)));
  }
  absl::StatusOr<std::shared_ptr<internal::ServerLink>> link =
      internal::ServerLink::Create(options.server_name);
  if (!link.ok()) return link.status();
  const int port = BoundTcpPort(listener->get());
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler),
                                                    *std::move(listener), *std::move(link), port));
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

HttpServer::HttpServer(HttpServerOptions options, Handler handler, UniqueFd listener,
                       std::shared_ptr<internal::ServerLink> link, int port)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      listener_(std::move(listener)),
      link_(std::move(link)),
      port_(port) {}

HttpServer::~HttpServer() {
  const std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (thread_.joinable()) StopLoop();
}

void HttpServer::Shutdown(absl::Duration grace) {
  const std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!thread_.joinable()) return;
  link_->draining.store(true);
  link_->Wake();
  {
    std::unique_lock<std::mutex> lock(drain_mu_);
    // Clamped: steady_clock::now() plus an infinite duration would overflow.
    const auto wait =
        absl::ToChronoNanoseconds(std::clamp(grace, absl::ZeroDuration(), absl::Hours(24 * 365)));
    drained_cv_.wait_for(lock, wait, [this] { return drained_; });
  }
  StopLoop();
}

int HttpServer::active_requests() const { return link_->active_requests.load(); }

void HttpServer::StopLoop() {
  stopping_.store(true);
  link_->Wake();
  thread_.join();
}

void HttpServer::ReportDrained() {
  {
    const std::lock_guard<std::mutex> lock(drain_mu_);
    if (drained_) return;
    drained_ = true;
  }
  drained_cv_.notify_all();
}

void HttpServer::Serve() {
  const internal::ServerContext context{.options = &options_, .handler = &handler_, .link = link_};
  std::vector<std::unique_ptr<Connection>> connections;
  std::unordered_map<uint64_t, Connection*> by_id;
  std::vector<pollfd> polled;
  uint64_t next_id = 0;
  absl::Time accept_paused_until = absl::InfinitePast();
  while (!stopping_.load()) {
    const bool draining = link_->draining.load();
    if (draining) listener_.Reset();  // new connections are refused, not left in the backlog
    absl::Time now = absl::Now();
    const bool room = static_cast<int>(connections.size()) < options_.max_connections;
    const bool accepting = listener_.valid() && room && now >= accept_paused_until;
    polled.clear();
    polled.push_back({link_->event_fd(), POLLIN, 0});
    polled.push_back({accepting ? listener_.get() : -1, POLLIN, 0});  // poll skips fd -1
    absl::Time wake_at =
        listener_.valid() && room && !accepting ? accept_paused_until : absl::InfiniteFuture();
    for (const std::unique_ptr<Connection>& c : connections) {
      polled.push_back({c->fd(), c->events(), 0});
      wake_at = std::min(wake_at, c->deadline());
    }
    if (::poll(polled.data(), polled.size(), PollTimeoutMs(now, wake_at)) < 0 && errno != EINTR) {
      Log(LogLevel::kError, "http", "poll failed; the HTTP server stops",
          {{"error", std::strerror(errno)}});
      break;
    }
    now = absl::Now();
    if (polled[0].revents != 0) {
      for (const uint64_t id : link_->TakePosted()) {
        const auto it = by_id.find(id);
        if (it != by_id.end()) it->second->OnPosted(now);
      }
    }
    for (size_t i = 0; i < connections.size(); ++i) {
      if (polled[i + 2].revents != 0) connections[i]->OnReady(polled[i + 2].revents, now);
    }
    for (const std::unique_ptr<Connection>& c : connections) {
      if (!c->closed() && now >= c->deadline()) c->OnDeadline(now);
    }
    std::erase_if(connections, [&by_id](const std::unique_ptr<Connection>& c) {
      if (!c->closed()) return false;
      by_id.erase(c->id());
      return true;
    });
    while ((polled[1].revents & POLLIN) != 0 &&
           static_cast<int>(connections.size()) < options_.max_connections) {
      sockaddr_storage address{};
      socklen_t length = sizeof(address);
      UniqueFd fd(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length,
                            SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd.valid()) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          accept_paused_until = now + kAcceptBackoff;
        }
        break;  // EAGAIN: nothing more waits
      }
      // Streamed events are small and latency matters more than packet count.
      const int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto& c = connections.emplace_back(std::make_unique<Connection>(
          context, std::move(fd), next_id++, PeerAddress(address), now));
      by_id.emplace(c->id(), c.get());
    }
    // Read again: Shutdown's wake-up may be what ended this round's poll.
    if (link_->draining.load() && std::none_of(connections.begin(), connections.end(),
                                               [](const auto& c) { return c->busy(); })) {
      ReportDrained();
    }
  }
  for (const std::unique_ptr<Connection>& c : connections) c->Close();
  ReportDrained();  // a Shutdown waiting on a loop that failed need not wait out its grace
}

}  // namespace ringserve::http
