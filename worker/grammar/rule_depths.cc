// The depths are the least solution of, for rule r's state s:
//   depth(r, s) = 0 where s accepts, else the least over s's edges of
//     a byte to t:                 depth(r, t)
//     a call of q returning to t:  nonempty(q) where t is final (the call replaces r's frame),
//                                  else max(depth(r, t), 1 + nonempty(q))
//   nonempty(r) = the same least over the edges of r's start state, without the 0,
// where a JSON value (a node that is not kText) calls no rule: its nonempty depth is 0.
// found by lowering estimates from "unreachable" along reversed edges until nothing changes
// (a worklist, so each edge is looked at again only when a value it reads has dropped).
#include "worker/grammar/rule_depths.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/grammar/regex.h"

namespace ringserve::grammar {
namespace {

// Any depth past the limit is as good as unreachable; clamping keeps sums from overflowing.
constexpr int32_t kTooDeep = kMaxRuleDepth + 1;

class DepthSolver {
 public:
  explicit DepthSolver(const std::vector<Grammar::Node>& rules) : rules_(rules) {}

  void Solve();
  std::vector<std::vector<int32_t>>& depths() { return depth_; }
  const std::vector<int32_t>& nonempty() const { return nonempty_; }

 private:
  struct StateRef {
    int32_t rule = 0;
    int32_t state = 0;
  };

  const RegexDfa& Dfa(int32_t rule) const { return *rules_[static_cast<size_t>(rule)].pattern; }
  bool IsText(size_t rule) const { return rules_[rule].kind == NodeKind::kText; }
  void AddEdges(size_t r);
  int32_t EdgeDepth(int32_t rule, int32_t state, bool count_accepting) const;
  void Lower(int32_t rule, int32_t state);
  void LowerNonempty(int32_t rule);

  const std::vector<Grammar::Node>& rules_;
  std::vector<std::vector<std::vector<int32_t>>> successors_;  // [rule][state]: by bytes
  std::vector<std::vector<std::vector<int32_t>>> into_;        // [rule][state]: edges' sources
  std::vector<std::vector<StateRef>> callers_;                 // [rule]: states calling it
  std::vector<std::vector<int32_t>> depth_;
  std::vector<int32_t> nonempty_;
  std::deque<StateRef> changed_;  // state -1: the rule's nonempty depth changed
};

int32_t DepthSolver::EdgeDepth(int32_t rule, int32_t state, bool count_accepting) const {
  const RegexDfa& dfa = Dfa(rule);
  const std::vector<int32_t>& depth = depth_[static_cast<size_t>(rule)];
  if (count_accepting && dfa.Accepting(state)) return 0;
  int32_t best = kTooDeep;
  for (const int32_t t : successors_[static_cast<size_t>(rule)][static_cast<size_t>(state)]) {
    best = std::min(best, depth[static_cast<size_t>(t)]);
  }
  for (const RegexDfa::Call& call : dfa.Calls(state)) {
    const int32_t callee = nonempty_[static_cast<size_t>(call.rule)];
    const int32_t via = dfa.IsFinal(call.next)
                            ? callee
                            : std::max(depth[static_cast<size_t>(call.next)], callee + 1);
    best = std::min(best, std::min(via, kTooDeep));
  }
  return best;
}

void DepthSolver::Lower(int32_t rule, int32_t state) {
  const int32_t value = EdgeDepth(rule, state, /*count_accepting=*/true);
  int32_t& depth = depth_[static_cast<size_t>(rule)][static_cast<size_t>(state)];
  if (value >= depth) return;
  depth = value;
  changed_.push_back({rule, state});
}

void DepthSolver::LowerNonempty(int32_t rule) {
  const int32_t value = EdgeDepth(rule, RegexDfa::kStart, /*count_accepting=*/false);
  if (value >= nonempty_[static_cast<size_t>(rule)]) return;
  nonempty_[static_cast<size_t>(rule)] = value;
  changed_.push_back({rule, -1});
}

// The edges of rule r's automaton, reversed, and its calls, indexed by the rule called.
void DepthSolver::AddEdges(size_t r) {
  const RegexDfa& dfa = *rules_[r].pattern;
  const auto states = static_cast<size_t>(dfa.num_states());
  const auto rule = static_cast<int32_t>(r);
  successors_[r].resize(states);
  into_[r].resize(states);
  depth_[r].assign(states, kTooDeep);
  for (size_t s = 0; s < states; ++s) {
    const auto state = static_cast<int32_t>(s);
    std::vector<int32_t>& next = successors_[r][s];
    for (int b = 0; b < 256; ++b) {
      const int32_t t = dfa.Next(state, static_cast<uint8_t>(b));
      if (t != RegexDfa::kDead) next.push_back(t);
    }
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    for (const int32_t t : next) into_[r][static_cast<size_t>(t)].push_back(state);
    for (const RegexDfa::Call& call : dfa.Calls(state)) {
      into_[r][static_cast<size_t>(call.next)].push_back(state);
      callers_[static_cast<size_t>(call.rule)].push_back({rule, state});
    }
  }
}

void DepthSolver::Solve() {
  const size_t n = rules_.size();
  successors_.resize(n);
  into_.resize(n);
  callers_.resize(n);
  depth_.resize(n);
  nonempty_.assign(n, kTooDeep);
  for (size_t r = 0; r < n; ++r) {
    if (IsText(r)) {
      AddEdges(r);
    } else {
      nonempty_[r] = 0;
    }
  }
  for (size_t r = 0; r < n; ++r) {
    if (!IsText(r)) continue;
    const RegexDfa& dfa = *rules_[r].pattern;
    for (int32_t s = 0; s < dfa.num_states(); ++s) {
      if (dfa.Accepting(s)) Lower(static_cast<int32_t>(r), s);
    }
  }
  while (!changed_.empty()) {
    const StateRef at = changed_.front();
    changed_.pop_front();
    if (at.state < 0) {  // callers read the rule's nonempty depth
      for (const StateRef& caller : callers_[static_cast<size_t>(at.rule)]) {
        Lower(caller.rule, caller.state);
        if (caller.state == RegexDfa::kStart) LowerNonempty(caller.rule);
      }
      continue;
    }
    for (const int32_t from : into_[static_cast<size_t>(at.rule)][static_cast<size_t>(at.state)]) {
      Lower(at.rule, from);
      if (from == RegexDfa::kStart) LowerNonempty(at.rule);
    }
  }
}

}  // namespace

absl::Status ComputeFinishDepths(std::vector<Grammar::Node>& rules) {
  DepthSolver solver(rules);
  solver.Solve();
  if (1 + solver.depths()[0][RegexDfa::kStart] > kMaxRuleDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: every text of rule 'root' nests rules deeper than ", kMaxRuleDepth));
  }
  const bool calls = std::any_of(rules.begin(), rules.end(), [](const Grammar::Node& rule) {
    return rule.kind == NodeKind::kText && rule.pattern->has_calls();
  });
  if (!calls) return absl::OkStatus();  // every depth is 0
  for (size_t r = 0; r < rules.size(); ++r) {
    if (rules[r].kind != NodeKind::kText) continue;
    rules[r].finish_depth = std::move(solver.depths()[r]);
    rules[r].nonempty_finish_depth = solver.nonempty()[r];
  }
  return absl::OkStatus();
}

}  // namespace ringserve::grammar
