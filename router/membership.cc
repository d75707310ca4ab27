#include "router/membership.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "router/router_metrics.h"

namespace ringserve::router {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

std::shared_ptr<const WorkerConn> Connect(const std::string& address,
                                          const MembershipOptions& options) {
  grpc::ChannelArguments args;
  // A restarted worker should rejoin within a health period or two, not after gRPC's
  // default reconnect backoff (up to 120 s).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // gRPC also takes the minimum backoff as the connect timeout (subchannel's
  // min_connect_timeout): at 100 ms a TLS handshake on a loaded machine timed out. Attempts
  // still start 100 ms after a failure; only a hanging one is given longer.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  if (!options.worker_server_name.empty()) {
    args.SetSslTargetNameOverride(options.worker_server_name);
  }
  // The proxy does its own single retry on the next ring owner; gRPC's transparent
  // retries would resend to the same dead worker.
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto conn = std::make_shared<WorkerConn>();
  conn->endpoint = std::make_shared<Endpoint>(address);
  conn->channel = grpc::CreateCustomChannel(address,
                                            options.worker_credentials != nullptr
                                                ? options.worker_credentials
                                                : grpc::InsecureChannelCredentials(),
                                            args);
  conn->inference = ringserve::v1::Inference::NewStub(conn->channel);
  conn->admin = ringserve::v1::Admin::NewStub(conn->channel);
  conn->health = grpc::health::v1::Health::NewStub(conn->channel);
  return conn;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Membership>> Membership::Create(MembershipOptions options,
                                                               RouterMetrics* metrics) {
  // Validate the ring options once, up front, so a rebuild can never fail on them.
  if (auto probe = Ring::Create({}, options.ring); !probe.ok()) return probe.status();
  // A zero period spins the loop (health checks back to back); a zero deadline fails every
  // check, so no worker would ever be in the ring.
  for (const auto& [name, period] : {std::pair{"health_interval", options.health_interval},
                                     std::pair{"health_timeout", options.health_timeout},
                                     std::pair{"dns_interval", options.dns_interval}}) {
    if (period <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be positive, got ", absl::FormatDuration(period)));
    }
  }
  std::unique_ptr<Membership> membership(new Membership(std::move(options), metrics));
  membership->Resolve();
  membership->Tick();
  Membership* m = membership.get();
  m->thread_ = std::thread([m] { m->Every(m->options_.health_interval, [m] { m->Tick(); }); });
  if (m->options_.source.is_dns()) {
    m->resolver_ = std::thread([m] { m->Every(m->options_.dns_interval, [m] { m->Resolve(); }); });
  }
  return membership;
}

Membership::Membership(MembershipOptions options, RouterMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {
  snapshot_ = std::make_shared<const MembershipSnapshot>(
      MembershipSnapshot{*Ring::Create({}, options_.ring), {}});
}

Membership::~Membership() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (resolver_.joinable()) resolver_.join();
}

std::shared_ptr<const MembershipSnapshot> Membership::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

std::vector<std::shared_ptr<const WorkerConn>> Membership::known() const {
  std::vector<std::shared_ptr<const WorkerConn>> workers;
  std::lock_guard lock(mu_);
  for (const auto& [address, known] : known_) workers.push_back(known.conn);
  std::sort(workers.begin(), workers.end(), [](const auto& a, const auto& b) {
    return a->endpoint->address() < b->endpoint->address();
  });
  return workers;
}

void Membership::Every(absl::Duration period, const std::function<void()>& round) {
  std::unique_lock lock(mu_);
  while (true) {
    const auto wake = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(period);
    if (stop_cv_.wait_until(lock, wake, [this] { return stop_; })) return;
    lock.unlock();
    round();
    lock.lock();
  }
}

void Membership::Resolve() {
  absl::StatusOr<std::vector<std::string>> addresses =
      options_.resolve && options_.source.is_dns() ? options_.resolve() : options_.source.Resolve();
  if (addresses.ok()) {
    UpdateAddresses(*addresses);
  } else {
    Log(LogLevel::kWarning, "router", "worker resolution failed; keeping the last list",
        {{"error", addresses.status().ToString()}});
  }
}

void Membership::Tick() {
  const std::vector<std::shared_ptr<const WorkerConn>> workers = known();
  std::vector<bool> healthy(workers.size(), true);
  if (options_.check_health) healthy = CheckHealth(workers);

  std::vector<std::shared_ptr<const WorkerConn>> live;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < workers.size(); ++i) {
      auto it = known_.find(workers[i]->endpoint->address());
      if (it == known_.end()) continue;  // dropped by a resolve since known() was read
      if (it->second.healthy != healthy[i]) {
        Log(healthy[i] ? LogLevel::kInfo : LogLevel::kWarning, "router",
            healthy[i] ? "worker healthy; joins the ring" : "worker unhealthy; leaves the ring",
            {{"worker", workers[i]->endpoint->address()}});
      }
      it->second.healthy = healthy[i];
      if (healthy[i]) live.push_back(workers[i]);
    }
  }
  Publish(live);
  if (metrics_ != nullptr) metrics_->ObserveMembership(workers, live.size());
}

void Membership::UpdateAddresses(const std::vector<std::string>& addresses) {
  std::lock_guard lock(mu_);
  absl::flat_hash_map<std::string, Known> next;
  for (const std::string& address : addresses) {
    auto it = known_.find(address);
    if (it != known_.end()) {
      next.emplace(address, std::move(it->second));
    } else {
      Log(LogLevel::kInfo, "router", "worker discovered", {{"worker", address}});
      // Without health checks a worker is trusted from the start; with them it joins the
      // ring when its first check passes (the next health round).
      next.emplace(address, Known{Connect(address, options_), !options_.check_health});
    }
  }
  for (const auto& [address, known] : known_) {
    if (!next.contains(address)) {
      Log(LogLevel::kInfo, "router", "worker no longer listed", {{"worker", address}});
    }
  }
  known_ = std::move(next);
}

std::vector<bool> Membership::CheckHealth(
    const std::vector<std::shared_ptr<const WorkerConn>>& workers) {
  // One in-flight Check per worker; the round waits for all of them (each is bounded by
  // its deadline), so a dead worker costs at most health_timeout, never a thread.
  struct Call {
    grpc::ClientContext context;
    HealthCheckRequest request;  // service "": the whole server
    HealthCheckResponse response;
  };
  std::vector<Call> calls(workers.size());
  std::vector<bool> healthy(workers.size(), false);
  std::mutex mu;
  std::condition_variable done;
  size_t pending = workers.size();  // guarded by mu
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoMilliseconds(options_.health_timeout);
  for (size_t i = 0; i < workers.size(); ++i) {
    calls[i].context.set_deadline(deadline);
    workers[i]->health->async()->Check(
        &calls[i].context, &calls[i].request, &calls[i].response,
        [&, i](const grpc::Status& status) {
          std::lock_guard lock(mu);
          healthy[i] = status.ok() && calls[i].response.status() == HealthCheckResponse::SERVING;
          // Notified under mu: once it is released the round may return and destroy `done`.
          if (--pending == 0) done.notify_all();
        });
  }
  std::unique_lock lock(mu);
  done.wait(lock, [&] { return pending == 0; });
  return healthy;
}

void Membership::Publish(const std::vector<std::shared_ptr<const WorkerConn>>& healthy) {
  std::vector<std::string> addresses;
  addresses.reserve(healthy.size());
  for (const auto& conn : healthy) addresses.push_back(conn->endpoint->address());
  // The constructor published the empty ring, so an unchanged set needs nothing.
  if (addresses == published_addresses_) return;
  auto snapshot = std::make_shared<MembershipSnapshot>();
  std::vector<std::shared_ptr<Endpoint>> endpoints;
  for (const auto& conn : healthy) {
    endpoints.push_back(conn->endpoint);
    snapshot->workers.emplace(conn->endpoint.get(), conn);
  }
  // Options were validated in Create and addresses are unique, so this cannot fail.
  snapshot->ring = *Ring::Create(std::move(endpoints), options_.ring);
  Log(LogLevel::kInfo, "router", "ring rebuilt",
      {{"healthy", absl::StrCat(addresses.size())}, {"workers", absl::StrJoin(addresses, ",")}});
  published_addresses_ = std::move(addresses);
  std::shared_ptr<const MembershipSnapshot> swapped = std::move(snapshot);
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_.swap(swapped);
  }
  // `swapped` now holds the previous snapshot: released here, outside the lock.
  if (options_.on_publish) options_.on_publish(static_cast<int>(published_addresses_.size()));
}

}  // namespace ringserve::router
