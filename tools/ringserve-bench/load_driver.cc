#include "tools/ringserve-bench/load_driver.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ringserve::tools::bench {

using ringserve::v1::GenerateRequest;

namespace {

// One session's (or one-off request's) conversation as the client knows it.
struct Conversation {
  // Released requests not yet started, in plan order.
  std::deque<int> released;
  bool busy = false;
  // Every token of the conversation so far (prompts sent and tokens received), for
  // resending the whole context when the server's copy is in doubt.
  std::vector<int32_t> context;
  size_t context_before_turn = 0;
  // The last final's history_tokens: the next append's expected_history_tokens.
  int history_tokens = 0;
  // Whether the server's session holds `context`, so the next turn may append.
  bool in_sync = false;
  // Conversations this session has started. Each gets its own session id: a new
  // conversation is a new session, as for a real client (an old conversation's copy may
  // linger on another worker until its TTL, and an append must not find it).
  int round = 0;
};

}  // namespace

class LoadDriver::State {
 public:
  State(const Workload& workload, DriverOptions options)
      : workload_(workload),
        options_(std::move(options)),
        conversations_(workload.num_conversations()),
        calls_(workload.requests().size()),
        results_(workload.requests().size()) {}

  DriverRun Run() {
    const int num_requests = static_cast<int>(workload_.requests().size());
    std::mt19937_64 rng(workload_.options().seed);
    std::exponential_distribution<double> gap_s(options_.rate > 0 ? options_.rate : 1.0);
    const Clock::time_point start = Clock::now();
    Clock::time_point next_arrival = start;
    Clock::time_point last_progress = start;
    int next_release = 0;
    while (finished_ < num_requests) {
      Clock::time_point now = Clock::now();
      while (next_release < num_requests && (options_.rate <= 0 || next_arrival <= now)) {
        Release(next_release++);
        if (options_.rate > 0) {
          next_arrival += std::chrono::duration_cast<Clock::duration>(
              std::chrono::duration<double>(gap_s(rng)));
        }
      }
      StartReady();
      Clock::time_point wake = now + std::chrono::milliseconds(100);
      if (next_release < num_requests) wake = std::min(wake, next_arrival);
      for (int index : WaitForFinished(wake)) Harvest(index);
      now = Clock::now();
      if (options_.progress && now - last_progress >= std::chrono::milliseconds(100)) {
        options_.progress(finished_, failed_);
        last_progress = now;
      }
    }
    if (options_.progress) options_.progress(finished_, failed_);
    DriverRun run;
    run.duration_s = std::chrono::duration<double>(Clock::now() - start).count();
    run.results = std::move(results_);
    return run;
  }

 private:
  void Release(int index) {
    Conversation& c = conversations_[workload_.requests()[index].session];
    c.released.push_back(index);
    if (!c.busy && c.released.size() == 1) ready_.push_back(workload_.requests()[index].session);
  }

  // Starts the next request of every idle conversation that has one, in the order they
  // became ready, while the concurrency limit allows.
  void StartReady() {
    while (!ready_.empty() && (options_.concurrency <= 0 || in_flight_ < options_.concurrency)) {
      Conversation& c = conversations_[ready_.front()];
      ready_.pop_front();
      const int index = c.released.front();
      c.released.pop_front();
      c.busy = true;
      auto on_done = [this](int done) { HandOver(done); };
      if (options_.embed_inputs > 0) {
        calls_[index] = options_.transport->Embed(
            index, BuildEmbedRequest(workload_.requests()[index]), on_done);
      } else {
        calls_[index] = options_.transport->Generate(
            index, BuildRequest(workload_.requests()[index], c), on_done);
      }
      ++in_flight_;
      // Started without mu_ held: a reaction may run inline on this thread.
      calls_[index]->Start();
    }
  }

  GenerateRequest BuildRequest(const PlannedRequest& planned, Conversation& c) {
    GenerateRequest request;
    if (planned.turn == 1) ++c.round;
    const std::string session =
        options_.stateless ? std::string() : workload_.SessionId(planned.session);
    request.set_session_id(session.empty() || c.round <= 1 ? session
                                                           : absl::StrCat(session, ".", c.round));
    request.set_request_id(absl::StrCat("bench-", planned.index));
    request.mutable_stop()->set_max_tokens(options_.output_tokens);
    request.mutable_stop()->set_ignore_eos(true);
    if (!options_.regex.empty()) request.mutable_response_format()->set_regex(options_.regex);
    request.set_adapter(AdapterOf(planned));
    const std::vector<int32_t> prompt = workload_.PromptTokens(planned);
    if (planned.turn == 1) {
      c.context.clear();
      c.in_sync = false;
    }
    auto* ids = request.mutable_tokens()->mutable_ids();
    if (planned.turn > 1 && c.in_sync && !request.session_id().empty()) {
      request.set_append(true);
      if (c.history_tokens > 0) request.set_expected_history_tokens(c.history_tokens);
    } else {
      // The server's copy is missing or in doubt (a failed turn): send the whole context.
      ids->Add(c.context.begin(), c.context.end());
    }
    ids->Add(prompt.begin(), prompt.end());
    c.context_before_turn = c.context.size();
    c.context.insert(c.context.end(), prompt.begin(), prompt.end());
    return request;
  }

  // The conversation's adapter: every turn of one conversation keeps it.
  std::string AdapterOf(const PlannedRequest& planned) const {
    if (options_.adapters.empty()) return {};
    return options_.adapters[static_cast<size_t>(planned.session) % options_.adapters.size()];
  }

  // The request's prompt and embed_inputs - 1 variants of it (each id shifted by the input's
  // index, within the ids the workload draws from), so no input repeats another.
  ringserve::v1::EmbedRequest BuildEmbedRequest(const PlannedRequest& planned) const {
    ringserve::v1::EmbedRequest request;
    request.set_request_id(absl::StrCat("bench-", planned.index));
    request.set_adapter(AdapterOf(planned));
    const std::vector<int32_t> prompt = workload_.PromptTokens(planned);
    const int32_t first = Workload::kFirstTokenId;
    const int32_t span = std::max(1, workload_.options().vocab_size - first);
    for (int i = 0; i < options_.embed_inputs; ++i) {
      auto* ids = request.add_inputs()->mutable_tokens()->mutable_ids();
      for (const int32_t id : prompt) ids->Add(first + (id - first + i) % span);
    }
    return request;
  }

  // Thread: the transport's. Hands the finished call to the driving thread.
  void HandOver(int index) {
    std::lock_guard lock(mu_);
    done_.push_back(index);
    cv_.notify_one();
  }

  std::vector<int> WaitForFinished(Clock::time_point wake) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, wake, [this] { return !done_.empty(); });
    return std::exchange(done_, {});
  }

  void Harvest(int index) {
    RequestResult& result = results_[index];
    result = std::move(calls_[index]->result());
    calls_[index].reset();
    --in_flight_;
    ++finished_;
    const int session = workload_.requests()[index].session;
    Conversation& c = conversations_[session];
    if (result.ok()) {
      c.context.insert(c.context.end(), result.output_ids.begin(), result.output_ids.end());
      c.history_tokens = result.history_tokens;
      c.in_sync = true;
    } else {
      ++failed_;
      c.context.resize(c.context_before_turn);
      c.in_sync = false;
    }
    c.busy = false;
    if (!c.released.empty()) ready_.push_back(session);
  }

  const Workload& workload_;
  const DriverOptions options_;
  std::vector<Conversation> conversations_;
  // Conversations that are idle and have a released request, in the order they became so.
  std::deque<int> ready_;
  // By request index; a call lives from its start until it is harvested.
  std::vector<std::unique_ptr<BenchCall>> calls_;
  std::vector<RequestResult> results_;
  int in_flight_ = 0;
  int finished_ = 0;
  int failed_ = 0;

  // std::mutex, not Abseil's: ThreadSanitizer sees pthread locks, and Debian's Abseil is
  // not built with it (see tests/tsan.supp).
  std::mutex mu_;
  std::condition_variable cv_;  // notified when done_ gains an index
  std::vector<int> done_;       // guarded by mu_
};

LoadDriver::LoadDriver(const Workload& workload, DriverOptions options)
    : state_(std::make_unique<State>(workload, std::move(options))) {}

LoadDriver::~LoadDriver() = default;

DriverRun LoadDriver::Run() { return state_->Run(); }

}  // namespace ringserve::tools::bench
