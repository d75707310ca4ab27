#include "common/metrics/scrape_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/tcp_bind.h"

namespace ringserve::metrics {
namespace {

// A request head larger than this is refused (431); a scraper sends a few hundred bytes.
constexpr size_t kMaxRequestHeadBytes = 8192;
// After its response a connection is shut for writing and its unread input drained, so the
// client sees the whole response rather than a reset; this bounds the wait for its close.
constexpr absl::Duration kDrainTimeout = absl::Seconds(1);
// How long accepting pauses when the process is out of file descriptors, instead of
// spinning on a listener that stays readable.
constexpr int kAcceptBackoffMs = 100;

absl::Status Unavailable(const ScrapeServerOptions& options, absl::string_view why) {
  return absl::UnavailableError(
      absl::StrCat("cannot serve metrics on ", options.host, ":", options.port, ": ", why));
}

absl::StatusOr<UniqueFd> Listen(const ScrapeServerOptions& options) {
  absl::StatusOr<UniqueFd> fd = BindTcp(options.host, options.port);
  if (!fd.ok()) return absl::UnavailableError(absl::StrCat("metrics: ", fd.status().message()));
  if (::listen(fd->get(), 64) != 0) return Unavailable(options, std::strerror(errno));
  return fd;
}

// One client: its request is read, its response written, then its input drained.
struct Connection {
  enum class Phase { kReading, kWriting, kDraining, kDone };

  UniqueFd fd;
  absl::Time deadline;
  Phase phase = Phase::kReading;
  std::string input;
  std::string output;
  size_t sent = 0;
};

// Reads what has arrived; false when the peer closed or failed.
bool ReadAvailable(Connection& c, bool keep) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(c.fd.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      if (keep) c.input.append(buffer, static_cast<size_t>(n));
      if (keep && c.input.size() > kMaxRequestHeadBytes) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

void WriteAvailable(Connection& c) {
  while (c.sent < c.output.size()) {
    const ssize_t n =
        ::send(c.fd.get(), c.output.data() + c.sent, c.output.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      c.phase = Connection::Phase::kDone;
      return;
    }
    c.sent += static_cast<size_t>(n);
  }
  ::shutdown(c.fd.get(), SHUT_WR);
  c.phase = Connection::Phase::kDraining;
  c.deadline = std::min(c.deadline, absl::Now() + kDrainTimeout);
}

void Advance(Connection& c, const ScrapeServerOptions& options,
             const std::function<std::string()>& render) {
  switch (c.phase) {
    case Connection::Phase::kReading: {
      const bool open = ReadAvailable(c, /*keep=*/true);
      size_t end = c.input.find("\r\n\r\n");
      if (end == std::string::npos) end = c.input.find("\n\n");
      if (end != std::string::npos && end <= kMaxRequestHeadBytes) {
        c.output = ScrapeResponse(absl::string_view(c.input).substr(0, end), options, render);
      } else if (c.input.size() > kMaxRequestHeadBytes) {
        c.output = RequestTooLargeResponse();
      } else {
        if (!open) c.phase = Connection::Phase::kDone;
        return;
      }
      c.input.clear();
      c.phase = Connection::Phase::kWriting;
      WriteAvailable(c);
      return;
    }
    case Connection::Phase::kWriting:
      WriteAvailable(c);
      return;
    case Connection::Phase::kDraining:
      if (!ReadAvailable(c, /*keep=*/false)) c.phase = Connection::Phase::kDone;
      return;
    case Connection::Phase::kDone:
      return;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ScrapeServer>> ScrapeServer::Start(
    const ScrapeServerOptions& options, std::function<std::string()> render) {
  absl::StatusOr<UniqueFd> listener = Listen(options);
  if (!listener.ok()) return listener.status();
  UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake.valid()) return Unavailable(options, std::strerror(errno));
  const int port = BoundTcpPort(listener->get());
  std::unique_ptr<ScrapeServer> server(
      new ScrapeServer(options, std::move(render), *std::move(listener), std::move(wake), port));
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

ScrapeServer::ScrapeServer(ScrapeServerOptions options, std::function<std::string()> render,
                           UniqueFd listener, UniqueFd wake, int port)
    : options_(std::move(options)),
      render_(std::move(render)),
      listener_(std::move(listener)),
      wake_(std::move(wake)),
      port_(port) {}

ScrapeServer::~ScrapeServer() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void ScrapeServer::Serve() {
  std::vector<Connection> connections;
  std::vector<pollfd> polled;
  absl::Time accept_paused_until = absl::InfinitePast();
  for (;;) {
    const absl::Time now = absl::Now();
    const bool accepting = static_cast<int>(connections.size()) < options_.max_connections &&
                           now >= accept_paused_until;
    polled.clear();
    polled.push_back({wake_.get(), POLLIN, 0});
    polled.push_back({accepting ? listener_.get() : -1, POLLIN, 0});  // poll skips fd -1
    absl::Time wake_at = accepting ? absl::InfiniteFuture() : accept_paused_until;
    for (const Connection& c : connections) {
      const bool writing = c.phase == Connection::Phase::kWriting;
      polled.push_back({c.fd.get(), static_cast<short>(writing ? POLLOUT : POLLIN), 0});
      wake_at = std::min(wake_at, c.deadline);
    }
    const int timeout_ms =
        wake_at == absl::InfiniteFuture()
            ? -1
            : static_cast<int>(std::clamp<int64_t>(
                  absl::ToInt64Milliseconds(absl::Ceil(wake_at - now, absl::Milliseconds(1))), 0,
                  60'000));
    if (::poll(polled.data(), polled.size(), timeout_ms) < 0 && errno != EINTR) {
      Log(LogLevel::kError, "metrics", "poll failed; /metrics is no longer served",
          {{"error", std::strerror(errno)}});
      return;
    }
    if (polled[0].revents != 0) return;
    for (size_t i = 0; i < connections.size(); ++i) {
      if (polled[i + 2].revents != 0) Advance(connections[i], options_, render_);
    }
    const absl::Time after = absl::Now();
    std::erase_if(connections, [after](const Connection& c) {
      return c.phase == Connection::Phase::kDone || after >= c.deadline;
    });
    if ((polled[1].revents & POLLIN) == 0) continue;
    while (static_cast<int>(connections.size()) < options_.max_connections) {
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (fd.valid()) {
        Connection& c = connections.emplace_back();
        c.fd = std::move(fd);
        c.deadline = after + options_.connection_timeout;
        continue;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        accept_paused_until = after + absl::Milliseconds(kAcceptBackoffMs);
      }
      break;  // EAGAIN: nothing more; a client that reset before accept is just gone
    }
  }
}

}  // namespace ringserve::metrics
