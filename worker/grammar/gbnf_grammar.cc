// Context-free grammars (GBNF, gbnf_syntax.h) compiled for the matcher. Every rule that is
// not recursive is inlined into its callers, so that most of a grammar becomes one automaton
// and the matcher forks only where the grammar recurses; each rule left is a kText node
// whose automaton calls the others by node index (matcher.cc follows the calls).
//
// The compiler also settles, once, what the matcher relies on byte by byte:
// - a call stands for a non-empty text: a rule that may be empty is called as "nothing, or
//   its non-empty text", so a byte's calls and returns always end;
// - no rule calls itself before reading a byte (left recursion is refused);
// - every rule matches some finite text (a rule that cannot is refused by name);
// - how deep finishing each state nests (finish_depth), so that the matcher never takes a
//   byte after which the text could only be completed beyond kMaxRuleDepth frames.
#include <algorithm>
#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/grammar/gbnf_syntax.h"
#include "worker/grammar/grammar_nodes.h"
#include "worker/grammar/matcher.h"
#include "worker/grammar/regex.h"
#include "worker/grammar/regex_syntax.h"
#include "worker/grammar/rule_depths.h"

namespace ringserve::grammar {
namespace {

using Node = Grammar::Node;
using Kind = RegexNode::Kind;

// A rule's tree grows by at most this many nodes from the rules inlined into it, and all
// trees by at most kMaxGrammarNodes; past either a rule is called rather than copied (a
// large rule used in many places).
constexpr size_t kMaxInlinedNodes = 4096;
constexpr size_t kMaxGrammarNodes = 262144;
// Over all of a grammar's rules: their automata's states, and the work of building them
// (RegexDfa::kMaxWork, shared), so that one request's grammar compiles in well under a
// second and a few tens of MB.
constexpr int64_t kMaxGrammarStates = 65536;

size_t TreeSize(const RegexNode& node) {
  size_t size = 1;
  for (const RegexNode& child : node.children) size += TreeSize(child);
  return size;
}

void CollectCalls(const RegexNode& node, std::vector<int32_t>& calls) {
  if (node.kind == Kind::kCall) calls.push_back(node.rule);
  for (const RegexNode& child : node.children) CollectCalls(child, calls);
}

// Whether the tree may match the empty text / some text / some non-empty text, given the
// same of each rule it calls.
struct Yield {
  bool empty = false;
  bool any = false;
  bool nonempty = false;
};

Yield YieldOf(const RegexNode& node, const std::vector<Yield>& rules) {
  switch (node.kind) {
    case Kind::kEmpty:
      return {.empty = true, .any = true};
    case Kind::kSet:
      return {.any = !node.set.empty(), .nonempty = !node.set.empty()};
    case Kind::kCall:
      return rules[static_cast<size_t>(node.rule)];
    case Kind::kConcat: {
      Yield all{.empty = true, .any = true};
      bool some_nonempty = false;
      for (const RegexNode& child : node.children) {
        const Yield y = YieldOf(child, rules);
        all.empty = all.empty && y.empty;
        all.any = all.any && y.any;
        some_nonempty = some_nonempty || y.nonempty;
      }
      all.nonempty = all.any && some_nonempty;
      return all;
    }
    case Kind::kAlternate: {
      Yield some;
      for (const RegexNode& child : node.children) {
        const Yield y = YieldOf(child, rules);
        some.empty = some.empty || y.empty;
        some.any = some.any || y.any;
        some.nonempty = some.nonempty || y.nonempty;
      }
      return some;
    }
    case Kind::kRepeat: {
      const Yield y = YieldOf(node.children[0], rules);
      return {.empty = node.min == 0 || y.empty,
              .any = node.min == 0 || y.any,
              .nonempty = node.max != 0 && y.nonempty && (node.min == 0 || y.any)};
    }
  }
  return {};
}

}  // namespace

class GrammarCompiler {
 public:
  explicit GrammarCompiler(GbnfRules rules) : rules_(std::move(rules)) {}

  absl::StatusOr<std::shared_ptr<const Grammar>> Build();

 private:
  void FindRecursiveRules();
  const RegexNode& Expanded(int32_t rule);
  RegexNode Expand(const RegexNode& node, size_t& budget);
  void ChooseCalledRules();
  absl::Status CheckYields();
  RegexNode RewriteCalls(const RegexNode& node) const;
  absl::Status CompileAutomata();
  absl::Status CheckLeftRecursion();
  const std::bitset<256>& FirstBytes(int32_t node);

  std::string Name(int32_t node) const {
    return rules_.names[static_cast<size_t>(rule_of_[static_cast<size_t>(node)])];
  }

  GbnfRules rules_;
  std::vector<uint8_t> recursive_;                  // by rule
  std::vector<std::optional<RegexNode>> expanded_;  // by rule: with what it inlines
  size_t expanded_nodes_ = 0;                       // copied by inlining, over all rules
  std::vector<int32_t> node_of_;                    // by rule: its node, -1 when inlined
  std::vector<int32_t> rule_of_;                    // by node
  std::vector<RegexNode> trees_;                    // by node
  std::vector<Yield> yields_;                       // by rule
  std::vector<Node> nodes_;
  std::vector<uint8_t> first_done_;  // by node: FirstBytes computed
};

// A rule is recursive when it can reach itself through calls; those are never inlined.
void GrammarCompiler::FindRecursiveRules() {
  const size_t n = rules_.bodies.size();
  std::vector<std::vector<int32_t>> calls(n);
  for (size_t r = 0; r < n; ++r) CollectCalls(rules_.bodies[r], calls[r]);
  recursive_.assign(n, 0);
  std::vector<uint8_t> seen;
  std::vector<int32_t> stack;
  for (size_t r = 0; r < n; ++r) {
    seen.assign(n, 0);
    stack.assign(calls[r].begin(), calls[r].end());
    while (!stack.empty() && recursive_[r] == 0) {
      const auto q = static_cast<size_t>(stack.back());
      stack.pop_back();
      if (q == r) recursive_[r] = 1;
      if (seen[q] != 0) continue;
      seen[q] = 1;
      stack.insert(stack.end(), calls[q].begin(), calls[q].end());
    }
  }
}

const RegexNode& GrammarCompiler::Expanded(int32_t rule) {
  std::optional<RegexNode>& slot = expanded_[static_cast<size_t>(rule)];
  if (!slot.has_value()) {
    size_t budget = kMaxInlinedNodes;
    RegexNode tree = Expand(rules_.bodies[static_cast<size_t>(rule)], budget);
    expanded_[static_cast<size_t>(rule)] = std::move(tree);
  }
  return *expanded_[static_cast<size_t>(rule)];
}

RegexNode GrammarCompiler::Expand(const RegexNode& node, size_t& budget) {
  if (node.kind == Kind::kCall) {
    if (recursive_[static_cast<size_t>(node.rule)] != 0) return node;
    const RegexNode& body = Expanded(node.rule);
    const size_t size = TreeSize(body);
    if (size > budget || expanded_nodes_ + size > kMaxGrammarNodes) return node;
    budget -= size;
    expanded_nodes_ += size;
    return body;
  }
  RegexNode copy = node;
  for (RegexNode& child : copy.children) child = Expand(child, budget);
  return copy;
}

// The rules that stay calls: the root, and every rule a kept call names.
void GrammarCompiler::ChooseCalledRules() {
  node_of_.assign(rules_.bodies.size(), -1);
  std::vector<int32_t> pending = {0};
  node_of_[0] = 0;
  rule_of_ = {0};
  while (!pending.empty()) {
    const int32_t rule = pending.back();
    pending.pop_back();
    std::vector<int32_t> calls;
    CollectCalls(Expanded(rule), calls);
    for (const int32_t q : calls) {
      if (node_of_[static_cast<size_t>(q)] >= 0) continue;
      node_of_[static_cast<size_t>(q)] = static_cast<int32_t>(rule_of_.size());
      rule_of_.push_back(q);
      pending.push_back(q);
    }
  }
}

absl::Status GrammarCompiler::CheckYields() {
  yields_.assign(rules_.bodies.size(), Yield{});
  for (bool changed = true; changed;) {
    changed = false;
    for (const int32_t rule : rule_of_) {
      const Yield y = YieldOf(Expanded(rule), yields_);
      Yield& old = yields_[static_cast<size_t>(rule)];
      if (y.empty != old.empty || y.any != old.any || y.nonempty != old.nonempty) {
        old = y;
        changed = true;
      }
    }
  }
  for (const int32_t rule : rule_of_) {
    if (!yields_[static_cast<size_t>(rule)].any) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grammar: rule '", rules_.names[static_cast<size_t>(rule)], "' matches no finite text"));
    }
  }
  return absl::OkStatus();
}

// Calls name nodes; a call of a rule that may be empty becomes "nothing, or its non-empty
// text" (the matcher's calls read at least one byte).
RegexNode GrammarCompiler::RewriteCalls(const RegexNode& node) const {
  if (node.kind == Kind::kCall) {
    const Yield& y = yields_[static_cast<size_t>(node.rule)];
    RegexNode call{.kind = Kind::kCall, .rule = node_of_[static_cast<size_t>(node.rule)]};
    if (!y.empty) return call;
    if (!y.nonempty) return RegexNode{};
    RegexNode either{.kind = Kind::kAlternate};
    either.children.push_back(RegexNode{});
    either.children.push_back(std::move(call));
    return either;
  }
  RegexNode copy = node;
  for (RegexNode& child : copy.children) child = RewriteCalls(child);
  return copy;
}

absl::Status GrammarCompiler::CompileAutomata() {
  int64_t states = 0;
  int64_t work_left = RegexDfa::kMaxWork;
  nodes_.resize(rule_of_.size());
  for (size_t node = 0; node < rule_of_.size(); ++node) {
    const RegexNode tree = RewriteCalls(Expanded(rule_of_[node]));
    auto dfa = RegexDfa::CompileTree(tree, std::bitset<256>().set(), &work_left);
    if (!dfa.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("grammar: rule '",
                                                     Name(static_cast<int32_t>(node)),
                                                     "': ", std::string(dfa.status().message())));
    }
    states += (*dfa)->num_states();
    if (states > kMaxGrammarStates) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grammar: too complex (its rules' automata exceed ", kMaxGrammarStates, " states)"));
    }
    nodes_[node].kind = NodeKind::kText;
    nodes_[node].pattern = *std::move(dfa);
  }
  return absl::OkStatus();
}

// A rule that calls itself, directly or through others, before reading a byte would make
// the matcher call forever.
absl::Status GrammarCompiler::CheckLeftRecursion() {
  enum Mark : uint8_t { kNew, kOnPath, kDone };
  std::vector<uint8_t> marks(nodes_.size(), kNew);
  std::vector<int32_t> path;
  const auto visit = [&](const auto& self, int32_t node) -> absl::Status {
    marks[static_cast<size_t>(node)] = kOnPath;
    path.push_back(node);
    for (const RegexDfa::Call& call :
         nodes_[static_cast<size_t>(node)].pattern->Calls(RegexDfa::kStart)) {
      const uint8_t mark = marks[static_cast<size_t>(call.rule)];
      if (mark == kOnPath) {
        std::vector<std::string> names;
        const auto from = std::find(path.begin(), path.end(), call.rule);
        for (auto it = from; it != path.end(); ++it) names.push_back(Name(*it));
        names.push_back(Name(call.rule));
        return absl::InvalidArgumentError(absl::StrCat(
            "grammar: left recursion (", absl::StrJoin(names, " -> "),
            ") is not supported; rewrite it with repetition, as in a ::= b (\"+\" b)*"));
      }
      if (mark == kNew) RS_RETURN_IF_ERROR(self(self, call.rule));
    }
    path.pop_back();
    marks[static_cast<size_t>(node)] = kDone;
    return absl::OkStatus();
  };
  for (size_t node = 0; node < nodes_.size(); ++node) {
    if (marks[node] == kNew) RS_RETURN_IF_ERROR(visit(visit, static_cast<int32_t>(node)));
  }
  return absl::OkStatus();
}

// The bytes a rule's non-empty text may start with (its start state's calls form no cycle).
const std::bitset<256>& GrammarCompiler::FirstBytes(int32_t node) {
  Node& rule = nodes_[static_cast<size_t>(node)];
  if (first_done_[static_cast<size_t>(node)] != 0) return rule.first_bytes;
  std::bitset<256> bytes = rule.pattern->FirstBytes();
  for (const RegexDfa::Call& call : rule.pattern->Calls(RegexDfa::kStart)) {
    bytes |= FirstBytes(call.rule);
  }
  first_done_[static_cast<size_t>(node)] = 1;
  nodes_[static_cast<size_t>(node)].first_bytes = bytes;
  return nodes_[static_cast<size_t>(node)].first_bytes;
}

absl::StatusOr<std::shared_ptr<const Grammar>> GrammarCompiler::Build() {
  FindRecursiveRules();
  expanded_.resize(rules_.bodies.size());
  ChooseCalledRules();
  RS_RETURN_IF_ERROR(CheckYields());
  RS_RETURN_IF_ERROR(CompileAutomata());
  RS_RETURN_IF_ERROR(CheckLeftRecursion());
  first_done_.assign(nodes_.size(), 0);
  for (size_t node = 0; node < nodes_.size(); ++node) FirstBytes(static_cast<int32_t>(node));
  RS_RETURN_IF_ERROR(ComputeFinishDepths(nodes_));
  auto grammar = std::make_shared<Grammar>();
  grammar->nodes_ = std::move(nodes_);
  return grammar;
}

absl::StatusOr<std::shared_ptr<const Grammar>> Grammar::FromGbnf(std::string_view text) {
  RS_ASSIGN_OR_RETURN(GbnfRules rules, ParseGbnf(text));
  return GrammarCompiler(std::move(rules)).Build();
}

}  // namespace ringserve::grammar
