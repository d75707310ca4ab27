#include "common/http/http_exchange.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/http/http_response_head.h"
#include "common/log.h"

namespace ringserve::http::internal {
namespace {

int CheckedStatus(int status) {
  // A 1xx as the final response would leave the client waiting for another.
  if (status >= 200 && status <= 599) return status;
  Log(LogLevel::kWarning, "http", "handler gave an invalid status; sent 500 instead",
      {{"status", std::to_string(status)}});
  return 500;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ServerLink>> ServerLink::Create(std::string server_name) {
  UniqueFd event_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!event_fd.valid()) {
    return absl::UnavailableError(absl::StrCat("http: eventfd: ", std::strerror(errno)));
  }
  return std::make_shared<ServerLink>(std::move(event_fd), std::move(server_name));
}

ServerLink::ServerLink(UniqueFd event_fd, std::string server_name)
    : event_fd_(std::move(event_fd)), server_name_(std::move(server_name)) {}

void ServerLink::Post(uint64_t connection_id) {
  bool was_empty = false;
  {
    const std::lock_guard<std::mutex> lock(mu_);
    was_empty = posted_.empty();
    posted_.push_back(connection_id);
  }
  // One wake-up per batch: the loop takes every id posted before it drains the eventfd.
  if (was_empty) Wake();
}

void ServerLink::Wake() {
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero, which is all a wake-up needs.
  [[maybe_unused]] const ssize_t n = ::write(event_fd_.get(), &one, sizeof(one));
}

std::vector<uint64_t> ServerLink::TakePosted() {
  uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(event_fd_.get(), &count, sizeof(count));
  std::vector<uint64_t> taken;
  const std::lock_guard<std::mutex> lock(mu_);
  taken.swap(posted_);
  return taken;
}

void Channel::MarkGone() {
  const std::lock_guard<std::mutex> lock(mu);
  gone = true;
  outbound.clear();
}

Exchange::Exchange(std::shared_ptr<Channel> channel, Params params)
    : channel_(std::move(channel)), params_(params) {}

bool Exchange::Allowed(Phase expected, absl::string_view call) {
  if (channel_->gone) return false;  // the client left: every call is a quiet no-op
  if (phase_ == expected) return true;
  if (!misuse_logged_) {
    misuse_logged_ = true;
    Log(LogLevel::kWarning, "http", "response writer call out of order ignored",
        {{"call", std::string(call)}});
  }
  return false;
}

absl::string_view Exchange::ConnectionValue() const {
  if (close_) return "close";
  return params_.minor_version == 0 ? "keep-alive" : "";
}

bool Exchange::MarkPosted() {
  if (channel_->posted) return false;
  channel_->posted = true;
  return true;
}

void Exchange::RespondLocked(int status, absl::string_view content_type, absl::string_view body,
                             const Headers& extra) {
  status = CheckedStatus(status);
  close_ = !params_.keep_alive || channel_->link->draining.load() || AsksToClose(extra);
  const bool with_body = StatusHasBody(status);
  channel_->outbound.append(FormatResponseHead({
      .status = status,
      .content_type = content_type,
      .extra_headers = &extra,
      .framing = with_body ? Framing::kContentLength : Framing::kNone,
      .content_length = body.size(),
      .connection = ConnectionValue(),
      .server_name = channel_->link->server_name(),
  }));
  if (with_body && !params_.head_request) channel_->outbound.append(body.data(), body.size());
}

bool Exchange::FinishLocked(std::function<void()>& unused_callback) {
  phase_ = Phase::kFinished;
  // It can no longer run. The caller destroys it after unlocking: it may hold the last copy
  // of a writer, whose destructor takes the lock.
  unused_callback = std::exchange(on_client_gone_, nullptr);
  channel_->link->active_requests.fetch_sub(1);
  return MarkPosted();
}

void Exchange::Respond(int status, absl::string_view content_type, absl::string_view body,
                       const Headers& extra) {
  bool post = false;
  std::function<void()> unused_callback;
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (!Allowed(Phase::kAwaiting, "Respond")) return;
    RespondLocked(status, content_type, body, extra);
    post = FinishLocked(unused_callback);
  }
  if (post) channel_->link->Post(channel_->id);
}

void Exchange::StartStream(int status, absl::string_view content_type, const Headers& extra) {
  bool post = false;
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (!Allowed(Phase::kAwaiting, "StartStream")) return;
    status = CheckedStatus(status);
    chunked_ = params_.minor_version >= 1;
    const bool has_body = StatusHasBody(status);
    body_allowed_ = has_body && !params_.head_request;
    const Framing framing =
        !has_body ? Framing::kNone : (chunked_ ? Framing::kChunked : Framing::kUntilClose);
    close_ = !params_.keep_alive || channel_->link->draining.load() || AsksToClose(extra) ||
             framing == Framing::kUntilClose;
    channel_->outbound.append(FormatResponseHead({
        .status = status,
        .content_type = content_type,
        .extra_headers = &extra,
        .framing = framing,
        .connection = ConnectionValue(),
        .server_name = channel_->link->server_name(),
    }));
    phase_ = Phase::kStreaming;
    post = MarkPosted();
  }
  if (post) channel_->link->Post(channel_->id);
}

void Exchange::Write(std::string data) {
  if (data.empty()) return;
  bool post = false;
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (!Allowed(Phase::kStreaming, "Write") || !body_allowed_) return;
    if (chunked_) {
      AppendChunk(data, channel_->outbound);
    } else if (channel_->outbound.empty()) {
      channel_->outbound = std::move(data);
    } else {
      channel_->outbound.append(data);
    }
    post = MarkPosted();
  }
  if (post) channel_->link->Post(channel_->id);
}

void Exchange::Finish() {
  bool post = false;
  std::function<void()> unused_callback;
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (!Allowed(Phase::kStreaming, "Finish")) return;
    if (chunked_ && body_allowed_) channel_->outbound.append(kLastChunk.data(), kLastChunk.size());
    post = FinishLocked(unused_callback);
  }
  if (post) channel_->link->Post(channel_->id);
}

void Exchange::OnClientGone(std::function<void()> callback) {
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (callback_set_) {
      if (!misuse_logged_) {
        misuse_logged_ = true;
        Log(LogLevel::kWarning, "http", "OnClientGone set twice; the second ignored");
      }
      return;
    }
    callback_set_ = true;
    if (!abandoned_) {
      // Kept only while it can still run: the response is unfinished and the client here.
      if (phase_ != Phase::kFinished && !channel_->gone) on_client_gone_ = std::move(callback);
      return;
    }
  }
  if (callback) callback();
}

size_t Exchange::pending_bytes() const {
  const std::lock_guard<std::mutex> lock(channel_->mu);
  return PendingLocked();
}

size_t Exchange::PendingLocked() const {
  if (channel_->gone) return 0;
  return channel_->outbound.size() + channel_->unsent.load(std::memory_order_relaxed);
}

void Exchange::OnWritable(size_t low_water, std::function<void()> callback) {
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (PendingLocked() > low_water) {
      writable_waiters_.push_back({low_water, std::move(callback)});
      return;
    }
  }
  if (callback) callback();
}

std::vector<std::function<void()>> Exchange::TakeWritable() {
  std::vector<std::function<void()>> ready;
  const std::lock_guard<std::mutex> lock(channel_->mu);
  if (writable_waiters_.empty()) return ready;
  const size_t pending = PendingLocked();
  std::erase_if(writable_waiters_, [&](WritableWaiter& w) {
    if (pending > w.low_water) return false;
    ready.push_back(std::move(w.callback));
    return true;
  });
  return ready;
}

void Exchange::WriterDropped() {
  bool post = false;
  std::function<void()> unused_callback;
  {
    const std::lock_guard<std::mutex> lock(channel_->mu);
    if (channel_->gone || phase_ == Phase::kFinished) return;
    Log(LogLevel::kWarning, "http", "handler let go of an unfinished response",
        {{"response", phase_ == Phase::kAwaiting ? "none sent: 500" : "stream cut off"}});
    if (phase_ == Phase::kAwaiting) {
      RespondLocked(500, "text/plain; charset=utf-8", "the handler gave no response\n", {});
    } else {
      close_ = true;
    }
    post = FinishLocked(unused_callback);
  }
  if (post) channel_->link->Post(channel_->id);
}

Exchange::Output Exchange::TakeOutput(std::string& sending) {
  const std::lock_guard<std::mutex> lock(channel_->mu);
  sending.swap(channel_->outbound);
  channel_->unsent.store(sending.size(), std::memory_order_relaxed);
  channel_->posted = false;
  return {.finished = phase_ == Phase::kFinished, .close = close_};
}

std::vector<std::function<void()>> Exchange::Abandon() {
  std::vector<std::function<void()>> callbacks;
  const std::lock_guard<std::mutex> lock(channel_->mu);
  channel_->gone = true;
  channel_->outbound.clear();
  if (phase_ != Phase::kFinished) {
    abandoned_ = true;
    phase_ = Phase::kFinished;
    channel_->link->active_requests.fetch_sub(1);
    if (on_client_gone_) callbacks.push_back(std::exchange(on_client_gone_, nullptr));
  }
  for (WritableWaiter& w : writable_waiters_) callbacks.push_back(std::move(w.callback));
  writable_waiters_.clear();
  return callbacks;
}

}  // namespace ringserve::http::internal
