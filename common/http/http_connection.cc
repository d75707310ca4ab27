#include "common/http/http_connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <utility>

#include "common/http/http_response_head.h"

namespace ringserve::http::internal {
namespace {

// Bytes of a pipelined next request buffered while a response is in progress. Beyond this
// the socket is left unread (its close is still seen, through POLLRDHUP).
constexpr size_t kMaxPipelinedBytes = 64 << 10;
constexpr size_t kReadChunkBytes = 16 << 10;
// Reads per readiness event, so one fast sender cannot starve the other connections.
constexpr int kMaxReadsPerEvent = 16;
// A sending buffer above this is released once empty rather than kept for the next response.
constexpr size_t kKeptBufferBytes = 1 << 20;
// After its last response a closing connection is shut for writing and its input drained,
// so the client reads the response rather than a reset that discards it (RFC 9112 section
// 9.6); these bound that, from the response's start and from the shutdown.
constexpr absl::Duration kClosingTimeout = absl::Seconds(10);
constexpr absl::Duration kLingerTimeout = absl::Seconds(1);

}  // namespace

Connection::Connection(ServerContext server, UniqueFd fd, uint64_t id, std::string peer,
                       absl::Time now)
    : server_(std::move(server)),
      fd_(std::move(fd)),
      channel_(std::make_shared<Channel>(id, server_.link)),
      peer_(std::move(peer)),
      parser_({.max_head_bytes = server_.options->max_head_bytes,
               .max_body_bytes = server_.options->max_body_bytes}),
      // A client connects to send a request, so the first one is timed from the start.
      deadline_(now + server_.options->request_timeout) {}

short Connection::events() const {
  short events = 0;
  switch (phase_) {
    case Phase::kReading:
      events = POLLIN;
      break;
    case Phase::kHandling:
      // Reading on while the handler works is how a client's leaving is noticed.
      if (!peer_closed_) events = input_.size() < kMaxPipelinedBytes ? POLLIN : POLLRDHUP;
      break;
    case Phase::kClosing:
      if (!peer_closed_) events = POLLIN;
      break;
    case Phase::kClosed:
      return 0;
  }
  if (sent_ < sending_.size()) events |= POLLOUT;
  return events;
}

void Connection::OnReady(short revents, absl::Time now) {
  if (closed()) return;
  if ((revents & POLLNVAL) != 0) return Close();
  if ((revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) != 0) Read(revents, now);
  Advance(now);
}

void Connection::OnPosted(absl::Time now) {
  if (phase_ == Phase::kHandling) Advance(now);
}

void Connection::OnDeadline(absl::Time now) {
  if (phase_ == Phase::kReading && parser_.started()) {
    Reject(408, "the request did not arrive in time", now);
    Advance(now);
    return;
  }
  // Idle between requests, a client not reading its response, or a close taking too long.
  Close();
}

void Connection::Close() {
  if (closed()) return;
  std::vector<std::function<void()>> callbacks;
  if (exchange_ != nullptr) {
    callbacks = exchange_->Abandon();
  } else {
    channel_->MarkGone();
  }
  exchange_.reset();
  fd_.Reset();
  phase_ = Phase::kClosed;
  input_.clear();
  sending_.clear();
  sent_ = 0;
  for (const std::function<void()>& callback : callbacks) {
    if (callback) callback();
  }
}

void Connection::Read(short revents, absl::Time now) {
  char buffer[kReadChunkBytes];
  for (int reads = 0; reads < kMaxReadsPerEvent && !closed(); ++reads) {
    const bool full = phase_ == Phase::kHandling && input_.size() >= kMaxPipelinedBytes;
    if (peer_closed_ || full) {
      // Not reading, but a reset or the client's FIN still says it left.
      if ((revents & (POLLERR | POLLHUP)) != 0) return Close();
      if (!peer_closed_ && (revents & POLLRDHUP) != 0) OnPeerClosed(now);
      return;
    }
    const ssize_t n = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
    if (n > 0) {
      // While closing, input is read only to be dropped.
      if (phase_ == Phase::kClosing) continue;
      input_.append(buffer, static_cast<size_t>(n));
      // Parse as it comes, so a large body is not held twice.
      if (phase_ == Phase::kReading) Advance(now);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n == 0) return OnPeerClosed(now);
    return Close();  // reset, or another error: the client is gone
  }
}

void Connection::OnPeerClosed(absl::Time now) {
  peer_closed_ = true;
  switch (phase_) {
    case Phase::kReading:
      return Close();  // nothing is owed for a request that never arrived whole
    case Phase::kHandling:
      // A finished response is still sent: the client may only have shut its sending side.
      AdvanceHandling(now);
      if (phase_ == Phase::kHandling && !response_finished_) Close();
      return;
    case Phase::kClosing:
      if (lingering_) Close();
      return;
    case Phase::kClosed:
      return;
  }
}

void Connection::Advance(absl::Time now) {
  for (;;) {
    bool changed = false;
    switch (phase_) {
      case Phase::kReading:
        changed = AdvanceReading(now);
        break;
      case Phase::kHandling:
        changed = AdvanceHandling(now);
        break;
      case Phase::kClosing:
        AdvanceClosing(now);
        return;
      case Phase::kClosed:
        return;
    }
    if (!changed) return;
  }
}

bool Connection::AdvanceReading(absl::Time now) {
  if (!Flush()) return true;
  if (input_.empty()) return false;
  const bool was_started = parser_.started();
  input_.erase(0, parser_.Feed(input_));
  if (!was_started && parser_.started()) deadline_ = now + server_.options->request_timeout;
  const bool draining = server_.link->draining.load();
  switch (parser_.state()) {
    case HttpRequestParser::State::kError:
      Reject(parser_.error_status(), parser_.error_message(), now);
      return true;
    case HttpRequestParser::State::kComplete:
      if (draining) {
        Reject(503, "the server is shutting down", now);
      } else {
        Dispatch(now);
      }
      return true;
    case HttpRequestParser::State::kIncomplete:
      break;
  }
  if (parser_.head_complete() && draining) {
    Reject(503, "the server is shutting down", now);
    return true;
  }
  if (parser_.expects_continue() && !continue_sent_) {
    continue_sent_ = true;
    sending_.append(kContinueResponse.data(), kContinueResponse.size());
    if (!Flush()) return true;
  }
  return false;
}

void Connection::Dispatch(absl::Time now) {
  const bool keep_alive = parser_.keep_alive();
  HttpRequest request = parser_.TakeRequest();
  request.peer = peer_;
  continue_sent_ = false;
  exchange_ = std::make_shared<Exchange>(channel_,
                                         Exchange::Params{.minor_version = request.minor_version,
                                                          .head_request = request.method == "HEAD",
                                                          .keep_alive = keep_alive});
  response_finished_ = false;
  close_after_ = false;
  phase_ = Phase::kHandling;
  // No timeout while the handler works: a generation may take minutes.
  deadline_ = absl::InfiniteFuture();
  server_.link->active_requests.fetch_add(1);
  (*server_.handler)(std::move(request), std::make_shared<Writer>(exchange_));
}

bool Connection::AdvanceHandling(absl::Time now) {
  for (;;) {
    if (!Flush()) return true;
    if (sent_ < sending_.size()) break;  // the socket is full; POLLOUT resumes
    const Exchange::Output output = exchange_->TakeOutput(sending_);
    response_finished_ = output.finished;
    close_after_ = output.close;
    if (!sending_.empty()) continue;
    RunWritable();
    if (!response_finished_) return false;
    // The response is finished and all sent. While draining, a connection whose response
    // did not say "Connection: close" stays open: the client may send another request, which
    // gets an explicit 503, rather than a close it might take for a network failure.
    exchange_.reset();
    if (close_after_ || peer_closed_) {
      StartClosing(now);
    } else {
      phase_ = Phase::kReading;
      deadline_ =
          now + (input_.empty() ? server_.options->idle_timeout : server_.options->request_timeout);
    }
    return true;
  }
  RunWritable();
  // A finished response waits only so long for a client that does not read it.
  if (response_finished_) deadline_ = now + server_.options->idle_timeout;
  return false;
}

void Connection::RunWritable() {
  for (const std::function<void()>& callback : exchange_->TakeWritable()) callback();
}

void Connection::Reject(int status, absl::string_view message, absl::Time now) {
  sending_.append(ServerResponse(status, message, server_.link->server_name()));
  input_.clear();
  StartClosing(now);
}

void Connection::StartClosing(absl::Time now) {
  phase_ = Phase::kClosing;
  deadline_ = now + kClosingTimeout;
}

void Connection::AdvanceClosing(absl::Time now) {
  if (!Flush() || sent_ < sending_.size() || lingering_) return;
  if (peer_closed_) return Close();
  ::shutdown(fd_.get(), SHUT_WR);
  lingering_ = true;
  deadline_ = std::min(deadline_, now + kLingerTimeout);
}

bool Connection::Flush() {
  while (sent_ < sending_.size()) {
    const ssize_t n =
        ::send(fd_.get(), sending_.data() + sent_, sending_.size() - sent_, MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    Close();  // EPIPE, ECONNRESET: the client is gone
    return false;
  }
  if (sent_ == sending_.size()) {
    if (sending_.capacity() > kKeptBufferBytes) {
      std::string().swap(sending_);
    } else {
      sending_.clear();
    }
    sent_ = 0;
  }
  channel_->unsent.store(sending_.size() - sent_, std::memory_order_relaxed);
  return true;
}

}  // namespace ringserve::http::internal
