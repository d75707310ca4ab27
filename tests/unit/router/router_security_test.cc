// The router's CallPolicy end to end, in process and over plaintext (the path an
// AuthMetadataProcessor could not cover): bearer tokens on every Inference and Admin call
// but not on grpc.health, the max_tokens cap, the per-client stream limit, and the
// request size limit. TLS itself is covered by tests/integration/security_test.py.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "router/router_server.h"
#include "tests/unit/router/fake_worker.h"

namespace ringserve::router {
namespace {

using ::ringserve::router::testing::Eventually;
using ::ringserve::router::testing::FakeWorker;
using ::testing::HasSubstr;
using namespace ringserve::v1;  // NOLINT(build/namespaces): message types, test-only

constexpr char kLoopbackClient[] = "ip:127.0.0.1";

class RouterSecurityTest : public ::testing::Test {
 protected:
  void Start(RouterOptions options) {
    worker_ = std::make_unique<FakeWorker>("w0");
    options.listen_address = "127.0.0.1:0";
    options.membership.source = *WorkerSource::Parse(worker_->address());
    options.membership.check_health = false;
    auto router = RouterServer::Create(std::move(options), nullptr);
    ASSERT_TRUE(router.ok()) << router.status();
    router_ = std::move(*router);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", router_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = Inference::NewStub(channel_);
    admin_ = Admin::NewStub(channel_);
  }

  void TearDown() override {
    router_.reset();
    worker_.reset();
  }

  // A context with a deadline and, unless empty, "authorization: Bearer <token>".
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  // Runs a Generate to its end; returns its status and counts its token messages.
  grpc::Status Generate(const GenerateRequest& request, const std::string& token = "",
                        int* num_tokens = nullptr) {
    auto context = Context(token);
    auto reader = stub_->Generate(context.get(), request);
    GenerateResponse response;
    int tokens = 0;
    while (reader->Read(&response)) tokens += response.token_ids_size();
    if (num_tokens != nullptr) *num_tokens = tokens;
    return reader->Finish();
  }

  static GenerateRequest Request(std::optional<int> max_tokens = std::nullopt) {
    GenerateRequest request;
    request.set_text("hello");
    if (max_tokens.has_value()) request.mutable_stop()->set_max_tokens(*max_tokens);
    return request;
  }

  std::unique_ptr<FakeWorker> worker_;
  std::unique_ptr<RouterServer> router_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Inference::Stub> stub_;
  std::unique_ptr<Admin::Stub> admin_;
};

TEST_F(RouterSecurityTest, EveryInferenceAndAdminCallNeedsATokenButHealthDoesNot) {
  RouterOptions options;
  options.policy.tokens = *TokenSet::Parse("alpha-token\nbeta-token\n", "test");
  Start(std::move(options));
  const auto unauthenticated = grpc::StatusCode::UNAUTHENTICATED;
  for (const std::string token : {"", "wrong", "alpha-toke", "alpha-tokenx"}) {
    SCOPED_TRACE(token);
    EXPECT_EQ(Generate(Request(), token).error_code(), unauthenticated);
    ModelInfo info;
    EXPECT_EQ(stub_->GetModelInfo(Context(token).get(), {}, &info).error_code(), unauthenticated);
    TokenizeResponse tokens;
    EXPECT_EQ(stub_->Tokenize(Context(token).get(), {}, &tokens).error_code(), unauthenticated);
    ForkRequest fork;
    fork.set_session_id("s");
    ForkResponse forked;
    EXPECT_EQ(stub_->Fork(Context(token).get(), fork, &forked).error_code(), unauthenticated);
    CloseSessionRequest close;
    close.set_session_id("s");
    CloseSessionResponse closed;
    EXPECT_EQ(stub_->CloseSession(Context(token).get(), close, &closed).error_code(),
              unauthenticated);
    GetStatsResponse stats;
    EXPECT_EQ(admin_->GetStats(Context(token).get(), {}, &stats).error_code(), unauthenticated);
    DrainResponse drained;
    EXPECT_EQ(admin_->Drain(Context(token).get(), {}, &drained).error_code(), unauthenticated);
  }
  EXPECT_EQ(worker_->generate_calls(), 0) << "refused calls never reach a worker";

  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckResponse serving;
  ASSERT_TRUE(health->Check(Context().get(), {}, &serving).ok());
  EXPECT_EQ(serving.status(), grpc::health::v1::HealthCheckResponse::SERVING)
      << "the unauthenticated Drains drained nothing";

  EXPECT_TRUE(Generate(Request(), "alpha-token").ok());
  EXPECT_TRUE(Generate(Request(), "beta-token").ok());
  ModelInfo info;
  EXPECT_TRUE(stub_->GetModelInfo(Context("beta-token").get(), {}, &info).ok());
}

TEST_F(RouterSecurityTest, MaxTokensAboveTheCapIsInvalidAndAnUnsetOneGetsTheCap) {
  RouterOptions options;
  options.policy.max_tokens = 5;
  Start(std::move(options));
  const grpc::Status over = Generate(Request(6));
  EXPECT_EQ(over.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(over.error_message(), HasSubstr("max_tokens"));
  EXPECT_EQ(worker_->generate_calls(), 0);
  int num_tokens = 0;
  ASSERT_TRUE(Generate(Request(5), "", &num_tokens).ok());
  EXPECT_EQ(num_tokens, 5);
  worker_->set_tokens(50, absl::ZeroDuration());
  ASSERT_TRUE(Generate(Request(), "", &num_tokens).ok());
  EXPECT_EQ(num_tokens, 5) << "the router imposed its cap on a request without one";
}

TEST_F(RouterSecurityTest, StreamsPerClientAreLimitedAndGiveTheirSlotBackHoweverTheyEnd) {
  RouterOptions options;
  options.policy.max_concurrent_per_client = 2;
  Start(std::move(options));
  worker_->set_tokens(400, absl::Milliseconds(10));
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<GenerateResponse>>> streams;
  GenerateResponse response;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(Context());
    streams.push_back(stub_->Generate(contexts.back().get(), Request()));
    ASSERT_TRUE(streams.back()->Read(&response));  // admitted and relaying
  }
  EXPECT_EQ(router_->policy().limiter().in_flight(kLoopbackClient), 2);
  const grpc::Status refused = Generate(Request(1));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("retry"));
  EXPECT_EQ(router_->policy().limiter().in_flight(kLoopbackClient), 2) << "a refusal takes none";

  contexts[0]->TryCancel();  // a cancelled stream's slot comes back
  EXPECT_FALSE(streams[0]->Finish().ok());
  ASSERT_TRUE(Eventually([&] { return Generate(Request(1)).ok(); }));

  worker_->set_tokens(3, absl::ZeroDuration());
  contexts[1]->TryCancel();
  streams[1]->Finish();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Generate(Request(3)).ok()) << i;  // finished ones too
  EXPECT_TRUE(Eventually([&] { return router_->policy().limiter().num_clients() == 0; }));
}

// The HTTP front's calls come through the router's local channel carrying their HTTP client's
// address, and each address is a client of its own; a client over TCP that sends the same
// metadata (with a guessed key) is still counted by its own address.
TEST_F(RouterSecurityTest, LocalCallsAreCountedByTheHttpClientTheyCarry) {
  RouterOptions options;
  options.policy.max_concurrent_per_client = 1;
  Start(std::move(options));
  worker_->set_tokens(400, absl::Milliseconds(10));
  const std::unique_ptr<Inference::Stub> local = Inference::NewStub(router_->LocalChannel());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<GenerateResponse>>> streams;
  GenerateResponse response;
  for (const char* address : {"10.0.0.1", "10.0.0.2"}) {
    contexts.push_back(Context());
    contexts.back()->AddMetadata(kClientAddressKey, address);
    streams.push_back(local->Generate(contexts.back().get(), Request()));
    ASSERT_TRUE(streams.back()->Read(&response)) << address;
  }
  EXPECT_EQ(router_->policy().limiter().in_flight("ip:10.0.0.1"), 1);
  EXPECT_EQ(router_->policy().limiter().in_flight("ip:10.0.0.2"), 1);
  auto again = Context();
  again->AddMetadata(kClientAddressKey, "10.0.0.1");
  auto refused = local->Generate(again.get(), Request(1));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  auto spoofed = Context();
  spoofed->AddMetadata(kClientAddressKey, "10.0.0.9");
  spoofed->AddMetadata(kLocalCallKey, "00000000000000000000000000000000");
  auto tcp = stub_->Generate(spoofed.get(), Request());
  ASSERT_TRUE(tcp->Read(&response));
  EXPECT_EQ(router_->policy().limiter().in_flight(kLoopbackClient), 1);
  EXPECT_EQ(router_->policy().limiter().in_flight("ip:10.0.0.9"), 0);
  spoofed->TryCancel();
  tcp->Finish();
  for (const auto& c : contexts) c->TryCancel();
  for (const auto& s : streams) s->Finish();
}

TEST_F(RouterSecurityTest, AnOversizedRequestIsRefusedAndTheRouterKeepsServing) {
  RouterOptions options;
  options.max_request_bytes = 1024;
  Start(std::move(options));
  GenerateRequest big = Request(1);
  big.set_text(std::string(2048, 'a'));
  EXPECT_EQ(Generate(big).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(worker_->generate_calls(), 0);
  EXPECT_TRUE(Generate(Request(1)).ok());
}

}  // namespace
}  // namespace ringserve::router
