// The router end to end, in process: a RouterServer in front of FakeWorkers on loopback
// ports, driven through the public Inference and Admin stubs.
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "router/membership.h"
#include "router/prefix_key.h"
#include "router/route.h"
#include "router/router_server.h"
#include "router/session_key.h"
#include "tests/support/reuse_port_listener.h"
#include "tests/unit/router/fake_worker.h"

namespace ringserve::router {
namespace {

using ::ringserve::router::testing::Eventually;
using ::ringserve::router::testing::FakeWorker;
using ::testing::HasSubstr;
using namespace ringserve::v1;  // NOLINT(build/namespaces): message types, test-only

// For waits that only a slow machine stretches (ThreadSanitizer runs everything 5-10x
// slower): a condition that never comes true still fails, just later.
constexpr absl::Duration kSlowWait = absl::Seconds(30);

std::string Metadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                     const std::string& key) {
  auto it = metadata.find(key);
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

// What one Generate through the router returned.
struct Result {
  grpc::Status status;
  int num_messages = 0;
  std::string initial_worker;   // x-ringserve-worker, initial metadata
  std::string trailing_worker;  // x-ringserve-worker, trailing metadata
  std::string final_worker;     // GenerateFinal.usage.worker_id
};

class RouterTest : public ::testing::Test {
 protected:
  // Starts `n` fake workers and a router in front of them.
  void Start(int n, bool check_health = true) {
    for (int i = 0; i < n; ++i)
      workers_.push_back(std::make_unique<FakeWorker>(absl::StrCat("w", i)));
    std::vector<std::string> addresses;
    for (const auto& w : workers_) addresses.push_back(w->address());
    StartRouter(absl::StrJoin(addresses, ","), check_health);
  }

  void StartRouter(const std::string& workers, bool check_health) {
    RouterOptions options;
    options.listen_address = "127.0.0.1:0";
    options.membership.source = *WorkerSource::Parse(workers);
    options.membership.check_health = check_health;
    options.membership.health_interval = absl::Milliseconds(100);
    options.membership.health_timeout = absl::Milliseconds(500);
    options.adapter_affinity = adapter_affinity_;
    auto router = RouterServer::Create(std::move(options), &registry_);
    ASSERT_TRUE(router.ok()) << router.status();
    router_ = std::move(*router);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", router_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = Inference::NewStub(channel_);
    AwaitLiveWorkers(check_health);
  }

  // Waits until the router's channel to every live worker is connected and, with health
  // checks, every one of them is in the ring: the state each test starts from. Create
  // runs the first health round itself, but on a slow machine (TSan) a first connection
  // can outlast the router's connect timeout and that round can find nobody.
  void AwaitLiveWorkers(bool check_health) {
    ASSERT_TRUE(Eventually(
        [&] {
          for (const auto& conn : router_->membership().known()) {
            if (WorkerAt(conn->endpoint->address()) == nullptr) continue;  // a dead address
            if (conn->channel->GetState(/*try_to_connect=*/true) != GRPC_CHANNEL_READY) {
              return false;
            }
          }
          return !check_health || NumHealthy() == static_cast<int>(workers_.size());
        },
        kSlowWait))
        << "the router did not connect to its workers";
  }

  void TearDown() override {
    router_.reset();  // before the workers, so no call outlives its worker unexpectedly
    workers_.clear();
  }

  FakeWorker* WorkerAt(const std::string& address) {
    for (const auto& w : workers_) {
      if (w->address() == address) return w.get();
    }
    return nullptr;
  }

  // The worker that owns a session in the router's current ring.
  std::string OwnerOf(const std::string& session) {
    return router_->membership().snapshot()->ring->Owner(SessionHash(session), 0)->address();
  }

  int NumHealthy() { return router_->membership().snapshot()->ring->num_endpoints(); }

  Result Generate(const std::string& session, grpc::ClientContext* context = nullptr,
                  int stop_after_messages = -1) {
    GenerateRequest request;
    request.set_session_id(session);
    request.set_text("hello");
    return Send(request, context, stop_after_messages);
  }

  Result Send(const GenerateRequest& request, grpc::ClientContext* context = nullptr,
              int stop_after_messages = -1) {
    grpc::ClientContext own;
    if (context == nullptr) {
      context = &own;
      context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    }
    auto reader = stub_->Generate(context, request);
    Result result;
    GenerateResponse response;
    while (reader->Read(&response)) {
      if (result.num_messages++ == 0) {
        result.initial_worker = Metadata(context->GetServerInitialMetadata(), "x-ringserve-worker");
      }
      if (response.has_final()) result.final_worker = response.final().usage().worker_id();
      if (result.num_messages == stop_after_messages) context->TryCancel();
    }
    result.status = reader->Finish();
    result.trailing_worker = Metadata(context->GetServerTrailingMetadata(), "x-ringserve-worker");
    return result;
  }

  bool adapter_affinity_ = false;  // RouterOptions::adapter_affinity for StartRouter
  prometheus::Registry registry_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  std::unique_ptr<RouterServer> router_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Inference::Stub> stub_;
};

// --health-interval-ms 0 made the health loop spin (half a core), --health-timeout-ms 0
// failed every check (no worker ever in the ring, every call UNAVAILABLE).
TEST(RouterOptionsTest, PeriodsAndDeadlinesMustBePositive) {
  prometheus::Registry registry;
  for (const char* field : {"health_interval", "health_timeout", "dns_interval"}) {
    for (const absl::Duration bad : {absl::ZeroDuration(), absl::Milliseconds(-1)}) {
      RouterOptions options;
      options.listen_address = "127.0.0.1:0";
      options.membership.source = *WorkerSource::Parse("127.0.0.1:1");
      MembershipOptions& m = options.membership;
      (std::string(field) == "health_interval"  ? m.health_interval
       : std::string(field) == "health_timeout" ? m.health_timeout
                                                : m.dns_interval) = bad;
      const auto router = RouterServer::Create(std::move(options), &registry);
      EXPECT_EQ(router.status().code(), absl::StatusCode::kInvalidArgument) << field;
      EXPECT_THAT(router.status().message(), HasSubstr(std::string(field) + " must be positive"));
    }
  }
}

// A dns: source re-resolves on a thread of its own: a resolver that hangs (glibc can block
// for tens of seconds) holds back new addresses, not the health checks that take a dead
// worker out of the ring.
TEST(MembershipTest, AHangingResolverHoldsBackNoHealthCheck) {
  FakeWorker worker("w0");
  std::mutex mu;
  std::condition_variable released_cv;
  bool released = false;
  std::atomic<int> calls{0};
  MembershipOptions options;
  options.source = *WorkerSource::Parse("dns:workers.invalid:1");
  options.health_interval = absl::Milliseconds(50);
  options.health_timeout = absl::Milliseconds(500);
  options.dns_interval = absl::Milliseconds(10);
  options.resolve = [&]() -> absl::StatusOr<std::vector<std::string>> {
    if (calls.fetch_add(1) > 0) {  // every re-resolution hangs until the test lets it go
      std::unique_lock lock(mu);
      released_cv.wait(lock, [&] { return released; });
    }
    return std::vector<std::string>{worker.address()};
  };
  auto membership = Membership::Create(options, nullptr);
  ASSERT_TRUE(membership.ok()) << membership.status();
  EXPECT_EQ((*membership)->snapshot()->ring->num_endpoints(), 1);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (calls.load() < 2 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_GE(calls.load(), 2) << "the resolver thread never re-resolved";

  worker.SetServing(false);  // while the resolver hangs
  while ((*membership)->snapshot()->ring->num_endpoints() > 0 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ((*membership)->snapshot()->ring->num_endpoints(), 0)
      << "the unhealthy worker stayed in the ring while the resolver hung";
  {
    std::lock_guard lock(mu);
    released = true;
  }
  released_cv.notify_all();
  membership->reset();  // joins both threads
}

// gRPC binds with SO_REUSEPORT unless told otherwise: a second router on a port in use
// started, and the kernel split new connections between the two.
TEST(RouterOptionsTest, APortInUseIsRefused) {
  ::ringserve::testing::ReusePortListener holder;
  prometheus::Registry registry;
  RouterOptions options;
  options.listen_address = absl::StrCat("127.0.0.1:", holder.port());
  options.membership.source = *WorkerSource::Parse("127.0.0.1:1");
  const auto router = RouterServer::Create(std::move(options), &registry);
  EXPECT_EQ(router.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(router.status().message(), HasSubstr("cannot listen on"));
}

TEST_F(RouterTest, EverySessionStaysOnItsRingOwnerAndResponsesNameTheWorker) {
  Start(3);
  ASSERT_EQ(NumHealthy(), 3);
  std::set<std::string> used;
  for (int s = 0; s < 30; ++s) {
    const std::string session = absl::StrCat("session-", s);
    const std::string owner = WorkerAt(OwnerOf(session))->id();
    for (int turn = 0; turn < 3; ++turn) {
      const Result r = Generate(session);
      ASSERT_TRUE(r.status.ok()) << r.status.error_message();
      EXPECT_EQ(r.num_messages, 4);
      EXPECT_EQ(r.initial_worker, owner) << session;
      EXPECT_EQ(r.trailing_worker, owner) << session;
      EXPECT_EQ(r.final_worker, owner) << session;
    }
    used.insert(owner);
  }
  EXPECT_EQ(used.size(), 3u) << "30 sessions spread over all three workers";
  for (const auto& w : workers_) {
    for (const std::string& session : w->sessions()) EXPECT_EQ(OwnerOf(session), w->address());
  }
}

// Without a session, a request goes to the ring owner of its input's first 256 bytes:
// requests that share them (a long system prompt, a conversation resent whole each turn)
// meet on one worker, whose prefix cache holds their common blocks; other prefixes spread.
TEST_F(RouterTest, RequestsWithoutASessionMeetByTheirInputsPrefix) {
  Start(3);
  ASSERT_EQ(NumHealthy(), 3);
  const std::string system(300, 's');
  std::set<std::string> shared_workers;
  for (int i = 0; i < 12; ++i) {
    GenerateRequest request;
    ChatMessage* message = request.mutable_chat()->add_messages();
    message->set_role("system");
    message->set_content(system);
    message = request.mutable_chat()->add_messages();
    message->set_role("user");
    message->set_content(absl::StrCat("question ", i));
    const std::string owner = router_->membership()
                                  .snapshot()
                                  ->ring->Owner(*router::PrefixHash(request, 256), 0)
                                  ->address();
    const Result r = Send(request);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.final_worker, WorkerAt(owner)->id()) << i;
    shared_workers.insert(r.final_worker);
  }
  EXPECT_EQ(shared_workers.size(), 1u) << "one shared prefix, one worker";

  std::set<std::string> spread;
  for (int i = 0; i < 30; ++i) {
    GenerateRequest request;
    request.set_text(absl::StrCat("prompt ", i, " of its own"));
    const Result r = Send(request);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    spread.insert(r.final_worker);
  }
  EXPECT_EQ(spread.size(), 3u) << "30 prefixes spread over all three workers";
  const std::string text = prometheus::TextSerializer().Serialize(registry_.Collect());
  EXPECT_THAT(text, HasSubstr("ringserve_router_generate_placements_total{key=\"prefix\","
                              "spilled=\"false\"} 42"))
      << "one at a time, no request exceeds a load bound";
}

// With adapter affinity, requests that name a LoRA adapter meet on its name's ring owner
// whatever their input, so a worker swaps among fewer adapters; other adapters spread, and
// requests without one are placed by their prefix as before.
TEST_F(RouterTest, AdapterAffinityPlacesRequestsByTheirAdapter) {
  adapter_affinity_ = true;
  Start(3);
  ASSERT_EQ(NumHealthy(), 3);
  const std::string owner =
      router_->membership().snapshot()->ring->Owner(router::AdapterHash("sql"), 0)->address();
  for (int i = 0; i < 12; ++i) {
    GenerateRequest request;
    request.set_text(absl::StrCat("question ", i, " of its own"));
    request.set_adapter("sql");
    const Result r = Send(request);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.final_worker, WorkerAt(owner)->id()) << i;
  }
  std::set<std::string> spread;
  for (int i = 0; i < 30; ++i) {
    GenerateRequest request;
    request.set_text("the same question");
    request.set_adapter(absl::StrCat("customer-", i));
    const Result r = Send(request);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    spread.insert(r.final_worker);
  }
  EXPECT_EQ(spread.size(), 3u) << "30 adapters spread over all three workers";
  GenerateRequest plain;
  plain.set_text("the same question");
  ASSERT_TRUE(Send(plain).status.ok());
  const std::string text = prometheus::TextSerializer().Serialize(registry_.Collect());
  EXPECT_THAT(text, HasSubstr("ringserve_router_generate_placements_total{key=\"adapter\","
                              "spilled=\"false\"} 42"));
  EXPECT_THAT(text, HasSubstr("ringserve_router_generate_placements_total{key=\"prefix\","
                              "spilled=\"false\"} 1"));
}

TEST(PrefixKeyTest, TheFirstBytesOfEachKindOfInput) {
  GenerateRequest text;
  text.set_text("abcdef");
  EXPECT_EQ(router::PrefixKey(text, 4), "tabcd");
  EXPECT_EQ(router::PrefixKey(text, 100), "tabcdef");
  EXPECT_EQ(router::PrefixHash(text, 0), std::nullopt);
  GenerateRequest longer = text;
  longer.set_text("abcdXYZ");
  EXPECT_EQ(router::PrefixHash(text, 4), router::PrefixHash(longer, 4));
  EXPECT_NE(router::PrefixHash(text, 5), router::PrefixHash(longer, 5));

  GenerateRequest ids;
  ids.mutable_tokens()->add_ids(0x64636261);  // "abcd" little-endian
  ids.mutable_tokens()->add_ids(-1);
  EXPECT_EQ(router::PrefixKey(ids, 6), std::string("iabcd\xff\xff", 7));
  EXPECT_NE(router::PrefixHash(ids, 4), router::PrefixHash(text, 4)) << "kinds are tagged";

  // Each LoRA adapter has its own positions: no worker shares K/V between adapters.
  GenerateRequest adapted = text;
  adapted.set_adapter("math");
  EXPECT_EQ(router::PrefixKey(adapted, 4), "tabcd");
  EXPECT_NE(router::PrefixHash(adapted, 4), router::PrefixHash(text, 4));
  GenerateRequest elsewhere = adapted;
  elsewhere.set_adapter("code");
  EXPECT_NE(router::PrefixHash(adapted, 4), router::PrefixHash(elsewhere, 4));
  elsewhere.set_text("abcdXYZ");
  elsewhere.set_adapter("math");
  EXPECT_EQ(router::PrefixHash(adapted, 4), router::PrefixHash(elsewhere, 4));

  GenerateRequest chat;
  Tool* tool = chat.mutable_chat()->add_tools();
  tool->set_name("f");
  tool->set_parameters("{}");
  ChatMessage* message = chat.mutable_chat()->add_messages();
  message->set_role("user");
  message->set_content("hi");
  EXPECT_EQ(router::PrefixKey(chat, 100), std::string("cf\0\0{}\0user\0hi\0", 15));
  EXPECT_EQ(router::PrefixKey(chat, 3), std::string("cf\0\0", 4));

  EXPECT_EQ(router::PrefixHash(GenerateRequest(), 1024), std::nullopt) << "no input";

  // A conversation resent whole keeps its key turn after turn: the key ends with the first
  // user message. Another first question is another conversation.
  auto conversation = [](const std::vector<std::pair<std::string, std::string>>& messages) {
    GenerateRequest request;
    for (const auto& [role, content] : messages) {
      ChatMessage* m = request.mutable_chat()->add_messages();
      m->set_role(role);
      m->set_content(content);
    }
    return request;
  };
  const GenerateRequest turn1 = conversation({{"system", "Be brief."}, {"user", "Why?"}});
  const GenerateRequest turn2 = conversation(
      {{"system", "Be brief."}, {"user", "Why?"}, {"assistant", "Because."}, {"user", "Sure?"}});
  const GenerateRequest other = conversation({{"system", "Be brief."}, {"user", "How?"}});
  EXPECT_EQ(router::PrefixKey(turn2, 256), std::string("csystem\0Be brief.\0user\0Why?\0", 28));
  EXPECT_EQ(router::PrefixHash(turn1, 256), router::PrefixHash(turn2, 256));
  EXPECT_NE(router::PrefixHash(turn1, 256), router::PrefixHash(other, 256));
}

// An Embed goes where a Generate of its first input would: the same document embedded
// again, or generated from, meets its cached blocks.
TEST(PrefixKeyTest, AnEmbedIsPlacedByItsFirstInput) {
  EmbedRequest embed;
  embed.add_inputs()->set_text("abcdef");
  embed.add_inputs()->set_text("other");
  GenerateRequest text;
  text.set_text("abcdef");
  const router::Route route = router::Route::ForEmbed(embed, 256);
  EXPECT_EQ(route.placement, router::Placement::kSessionBounded);
  EXPECT_EQ(route.key_hash, router::PrefixHash(text, 256));
  EXPECT_EQ(route.key_kind, "prefix");
  EmbedRequest ids;
  ids.add_inputs()->mutable_tokens()->add_ids(7);
  GenerateRequest tokens;
  tokens.mutable_tokens()->add_ids(7);
  EXPECT_EQ(router::Route::ForEmbed(ids, 256).key_hash, router::PrefixHash(tokens, 256));
  EXPECT_EQ(router::Route::ForEmbed(EmbedRequest(), 256).placement, router::Placement::kAnyWorker);
  EXPECT_EQ(router::Route::ForEmbed(embed, 0).placement, router::Placement::kAnyWorker);
}

// An Embed's inputs each go where a Generate of that input would, several workers computing
// one batch, and come back in the client's order.
TEST_F(RouterTest, AnEmbedsInputsGoWhereTheirOwnPrefixesWouldAndComeBackInOrder) {
  Start(3);
  EmbedRequest request;
  request.set_request_id("batch");
  for (int i = 0; i < 24; ++i) request.add_inputs()->set_text(absl::StrCat("document ", i));
  grpc::ClientContext context;
  EmbedResponse scattered;
  ASSERT_TRUE(stub_->Embed(&context, request, &scattered).ok());
  EXPECT_EQ(scattered.request_id(), "batch");
  // The same embeddings, in the same order, as one worker computes for the whole batch.
  auto direct = Inference::NewStub(
      grpc::CreateChannel(workers_[0]->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext direct_context;
  EmbedResponse whole;
  ASSERT_TRUE(direct->Embed(&direct_context, request, &whole).ok());
  ASSERT_EQ(scattered.embeddings_size(), 24);
  for (int i = 0; i < 24; ++i) {
    EXPECT_EQ(scattered.embeddings(i).SerializeAsString(), whole.embeddings(i).SerializeAsString())
        << i;
  }
  std::vector<int> per_worker;
  int busy = 0;
  for (const auto& w : workers_) {
    per_worker.push_back(w->embedded_inputs() - (w.get() == workers_[0].get() ? 24 : 0));
    busy += per_worker.back() > 0 ? 1 : 0;
    EXPECT_LE(w->embed_calls(), w.get() == workers_[0].get() ? 2 : 1);  // one call a worker
  }
  EXPECT_GE(busy, 2);
  // Each input alone goes to the worker that embedded it in the batch.
  std::vector<int> before;
  for (const auto& w : workers_) before.push_back(w->embedded_inputs());
  for (int i = 0; i < 24; ++i) {
    EmbedRequest one;
    *one.add_inputs() = request.inputs(i);
    grpc::ClientContext c;
    EmbedResponse r;
    ASSERT_TRUE(stub_->Embed(&c, one, &r).ok());
  }
  for (size_t w = 0; w < workers_.size(); ++w) {
    EXPECT_EQ(workers_[w]->embedded_inputs() - before[w], per_worker[w]) << w;
  }
}

TEST_F(RouterTest, AScatteredEmbedFailsWholeOrRetriesAnUnreachableWorker) {
  Start(3, /*check_health=*/false);
  EmbedRequest request;
  for (int i = 0; i < 24; ++i) request.add_inputs()->set_text(absl::StrCat("document ", i));
  // One worker refuses: the client gets its error, not a partial answer.
  EmbedRequest refused = request;
  refused.mutable_inputs(5)->set_text("bad");
  grpc::ClientContext context;
  EmbedResponse response;
  const grpc::Status status = stub_->Embed(&context, refused, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(response.embeddings_size(), 0);
  // The error names the input by its place in the client's request, not in a worker's share.
  EXPECT_EQ(status.error_message().rfind("inputs[5]: ", 0), 0u) << status.error_message();
  // One worker unreachable: its share is sent to the next worker, and the batch is whole.
  workers_[1]->set_unavailable(true);
  grpc::ClientContext retried_context;
  EmbedResponse retried;
  const grpc::Status ok = stub_->Embed(&retried_context, request, &retried);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(retried.embeddings_size(), 24);
}

TEST_F(RouterTest, UnreachableOwnerIsRetriedOnTheNextBeforeTheFirstToken) {
  // A worker that never existed: its port was free when the router started. Health
  // checks are off, so only the proxy's retry can save its sessions.
  workers_.push_back(std::make_unique<FakeWorker>("live"));
  auto dead = std::make_unique<FakeWorker>("dead");
  const std::string dead_address = dead->address();
  dead.reset();
  StartRouter(absl::StrCat(workers_[0]->address(), ",", dead_address), /*check_health=*/false);
  ASSERT_EQ(NumHealthy(), 2);
  int retried = 0;
  for (int s = 0; s < 20; ++s) {
    const std::string session = absl::StrCat("s", s);
    const Result r = Generate(session);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.final_worker, "live");
    retried += OwnerOf(session) == dead_address;
  }
  EXPECT_GT(retried, 0) << "some sessions were owned by the dead worker";
}

TEST_F(RouterTest, DrainingWorkerIsRetriedOnTheNext) {
  Start(2, /*check_health=*/false);
  const std::string session = "drained";
  FakeWorker* owner = WorkerAt(OwnerOf(session));
  owner->set_unavailable(true);
  const Result r = Generate(session);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_NE(r.final_worker, owner->id());
  EXPECT_EQ(owner->generate_calls(), 1);
}

TEST_F(RouterTest, WorkerDeathMidStreamEndsTheStreamWithUnavailable) {
  Start(2);
  const std::string session = "mid-stream";
  FakeWorker* owner = WorkerAt(OwnerOf(session));
  owner->set_tokens(1000, absl::Milliseconds(20));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  GenerateRequest request;
  request.set_session_id(session);
  auto reader = stub_->Generate(&context, request);
  GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  ASSERT_TRUE(reader->Read(&response));
  owner->Kill();
  while (reader->Read(&response)) {
  }
  const grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(owner->address()));
  // The router keeps serving: the session moves to the survivor once health notices.
  ASSERT_TRUE(Eventually([&] { return NumHealthy() == 1; }));
  EXPECT_TRUE(Generate(session).status.ok());
}

TEST_F(RouterTest, HealthChecksTakeAWorkerOutAndPutItBack) {
  Start(3);
  ASSERT_EQ(NumHealthy(), 3);
  workers_[1]->SetServing(false);
  ASSERT_TRUE(Eventually([&] { return NumHealthy() == 2; }, kSlowWait));
  for (int s = 0; s < 20; ++s) {
    EXPECT_NE(Generate(absl::StrCat("h", s)).final_worker, workers_[1]->id());
  }
  workers_[1]->SetServing(true);
  ASSERT_TRUE(Eventually([&] { return NumHealthy() == 3; }, kSlowWait));
}

TEST_F(RouterTest, ClientCancellationReachesTheWorker) {
  Start(1);
  workers_[0]->set_tokens(1000, absl::Milliseconds(20));
  grpc::ClientContext context;
  const Result r = Generate("cancel-me", &context, /*stop_after_messages=*/2);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED) << r.status.error_message();
  EXPECT_TRUE(Eventually([&] { return workers_[0]->cancellations() == 1; }, kSlowWait));
}

TEST_F(RouterTest, DeadlineReachesTheWorkerAndEndsTheCall) {
  Start(1);
  workers_[0]->set_tokens(1000, absl::Milliseconds(20));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
  const Result r = Generate("deadline", &context);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const absl::Duration left = workers_[0]->last_deadline_left();
  // The client's deadline, not a fresh or missing one (gRPC rounds the wire timeout up a
  // little, hence the slack).
  EXPECT_LE(left, absl::Milliseconds(1600));
  EXPECT_GT(left, absl::ZeroDuration());
  EXPECT_TRUE(Eventually([&] { return workers_[0]->cancellations() == 1; }));
}

TEST_F(RouterTest, UnaryCallsFollowTheirPlacement) {
  Start(3);
  const std::string session = "forked";
  ASSERT_TRUE(Generate(session).status.ok());
  grpc::ClientContext fork_context;
  ForkRequest fork;
  fork.set_session_id(session);
  fork.set_num_forks(1);
  ForkResponse forked;
  ASSERT_TRUE(stub_->Fork(&fork_context, fork, &forked).ok());
  EXPECT_EQ(forked.worker_id(), WorkerAt(OwnerOf(session))->id());
  EXPECT_EQ(Metadata(fork_context.GetServerTrailingMetadata(), "x-ringserve-worker"),
            forked.worker_id());
  EXPECT_EQ(Metadata(fork_context.GetServerInitialMetadata(), "x-ringserve-worker-address"),
            OwnerOf(session));

  grpc::ClientContext missing_context;
  fork.set_session_id("never-seen");
  EXPECT_EQ(stub_->Fork(&missing_context, fork, &forked).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext tokenize_context;
  TokenizeRequest tokenize;
  tokenize.set_text("abc");
  TokenizeResponse tokens;
  ASSERT_TRUE(stub_->Tokenize(&tokenize_context, tokenize, &tokens).ok());
  EXPECT_EQ(tokens.token_ids_size(), 3);

  // Embed: placed by its first input's prefix, so the same input meets the same worker.
  EmbedRequest embed;
  embed.set_request_id("e");
  embed.add_inputs()->set_text("a document");
  embed.add_inputs()->mutable_tokens()->add_ids(7);
  std::string first_worker;
  for (int attempt = 0; attempt < 3; ++attempt) {
    grpc::ClientContext embed_context;
    EmbedResponse embedded;
    ASSERT_TRUE(stub_->Embed(&embed_context, embed, &embedded).ok());
    EXPECT_EQ(embedded.request_id(), "e");
    ASSERT_EQ(embedded.embeddings_size(), 2);
    EXPECT_EQ(embedded.embeddings(0).prompt_tokens(), 10);
    const std::string worker =
        Metadata(embed_context.GetServerTrailingMetadata(), "x-ringserve-worker");
    if (attempt == 0) first_worker = worker;
    EXPECT_EQ(worker, first_worker) << "attempt " << attempt;
  }

  auto admin = Admin::NewStub(channel_);
  grpc::ClientContext stats_context;
  GetStatsResponse stats;
  ASSERT_TRUE(admin->GetStats(&stats_context, GetStatsRequest(), &stats).ok());
  ASSERT_EQ(stats.workers_size(), 3);
  EXPECT_TRUE(stats.unreachable_workers().empty());
  for (const WorkerStats& w : stats.workers())
    EXPECT_EQ(WorkerAt(w.address())->id(), w.worker_id());
}

TEST_F(RouterTest, DrainTurnsHealthNotServingAndRefusesNewCalls) {
  Start(1);
  EXPECT_EQ(router_->BeginDrain(), 0);
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse health_response;
  ASSERT_TRUE(health->Check(&health_context, {}, &health_response).ok());
  EXPECT_EQ(health_response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  const Result r = Generate("late");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("draining"));
}

// The router itself stays SERVING (what Kubernetes probes); ringserve.v1.Inference follows
// the ring, for monitoring and clients that check by service name.
TEST_F(RouterTest, InferenceHealthFollowsTheRing) {
  Start(1);
  auto health = grpc::health::v1::Health::NewStub(channel_);
  const auto status_of = [&](const std::string& service) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    EXPECT_TRUE(health->Check(&context, request, &response).ok()) << service;
    return response.status();
  };
  constexpr auto kServing = grpc::health::v1::HealthCheckResponse::SERVING;
  constexpr auto kNotServing = grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  EXPECT_EQ(status_of("ringserve.v1.Inference"), kServing);
  workers_[0]->SetServing(false);
  ASSERT_TRUE(
      Eventually([&] { return status_of("ringserve.v1.Inference") == kNotServing; }, kSlowWait));
  EXPECT_EQ(status_of(""), kServing);
  workers_[0]->SetServing(true);
  ASSERT_TRUE(
      Eventually([&] { return status_of("ringserve.v1.Inference") == kServing; }, kSlowWait));
  router_->BeginDrain();
  EXPECT_EQ(status_of("ringserve.v1.Inference"), kNotServing);
  EXPECT_EQ(status_of(""), kNotServing);
}

// A router whose workers are all unreachable from the start has no Inference to offer.
TEST_F(RouterTest, InferenceHealthIsNotServingWithoutWorkers) {
  StartRouter("127.0.0.1:1", /*check_health=*/true);
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("ringserve.v1.Inference");
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_F(RouterTest, MetricsCountRequestsByMethodAndCode) {
  Start(2);
  ASSERT_TRUE(Generate("m").status.ok());
  ASSERT_TRUE(Eventually([&] {
    const std::string text = prometheus::TextSerializer().Serialize(registry_.Collect());
    return text.find("ringserve_router_requests_total{code=\"OK\",method=\"Generate\"} 1") !=
               std::string::npos &&
           text.find("ringserve_router_ring_healthy_workers 2") != std::string::npos;
  }));
}

}  // namespace
}  // namespace ringserve::router
