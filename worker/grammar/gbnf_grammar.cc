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
//
// A JSON rule (FromGbnf's json_rules) is never inlined: its node is the JSON grammar's root,
// its other nodes follow the rules', and the matcher runs JSON frames above the caller's.
#include <algorithm>
#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/check.h"
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
// Nor may inlining make a tree deeper than this: its compilers recurse over it.
constexpr size_t kMaxInlinedDepth = 256;
// Over all of a grammar's rules: their automata's states, and the work of building them
// (RegexDfa::kMaxWork, shared), so that one request's grammar compiles in well under a
// second and a few tens of MB.
constexpr int64_t kMaxGrammarStates = 65536;

size_t TreeSize(const RegexNode& node) {
  size_t size = 1;
  for (const RegexNode& child : node.children) size += TreeSize(child);
  return size;
}

size_t TreeDepth(const RegexNode& node) {
  size_t depth = 0;
  for (const RegexNode& child : node.children) depth = std::max(depth, TreeDepth(child));
  return depth + 1;
}

// A node's own fields, for a copy whose children are rewritten one by one.
RegexNode WithoutChildren(const RegexNode& node) {
  return RegexNode{
      .kind = node.kind, .set = node.set, .min = node.min, .max = node.max, .rule = node.rule};
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
  GrammarCompiler(GbnfRules rules, std::span<const Grammar::JsonRule> json_rules)
      : rules_(std::move(rules)), json_rules_(json_rules) {}

  absl::StatusOr<std::shared_ptr<const Grammar>> Build();

 private:
  void FindRecursiveRules();
  void ExpandReachableRules();
  void ExpandRule(int32_t rule);
  const RegexNode& Expanded(int32_t rule) const;
  RegexNode Expand(const RegexNode& node, size_t& budget, size_t depth);
  void ChooseCalledRules();
  absl::Status CheckYields();
  RegexNode RewriteCalls(const RegexNode& node) const;
  absl::Status CompileAutomata();
  void GraftJsonRules();
  absl::Status CheckLeftRecursion();
  const std::bitset<256>& FirstBytes(int32_t node);

  // Rules 1..json_rules_.size() are the JSON rules.
  bool IsJson(size_t rule) const { return rule >= 1 && rule <= json_rules_.size(); }
  bool IsText(int32_t node) const {
    return nodes_[static_cast<size_t>(node)].kind == NodeKind::kText;
  }

  std::string Name(int32_t node) const {
    return rules_.names[static_cast<size_t>(rule_of_[static_cast<size_t>(node)])];
  }

  GbnfRules rules_;
  std::span<const Grammar::JsonRule> json_rules_;
  std::vector<std::vector<int32_t>> calls_;         // by rule: the rules it calls
  std::vector<uint8_t> recursive_;                  // by rule
  std::vector<std::optional<RegexNode>> expanded_;  // by rule: with what it inlines
  std::vector<size_t> expanded_size_;               // by rule: its expanded tree's nodes
  std::vector<size_t> expanded_depth_;              // and depth
  size_t expanded_nodes_ = 0;                       // copied by inlining, over all rules
  std::vector<int32_t> node_of_;                    // by rule: its node, -1 when inlined
  std::vector<int32_t> rule_of_;                    // by node
  std::vector<Yield> yields_;                       // by rule
  std::vector<Node> nodes_;
  std::vector<uint8_t> first_done_;  // by node: FirstBytes computed
};

// A rule is recursive when it can reach itself through calls; those are never inlined.
void GrammarCompiler::FindRecursiveRules() {
  const size_t n = rules_.bodies.size();
  calls_.assign(n, {});
  for (size_t r = 0; r < n; ++r) {
    CollectCalls(rules_.bodies[r], calls_[r]);
    std::sort(calls_[r].begin(), calls_[r].end());
    calls_[r].erase(std::unique(calls_[r].begin(), calls_[r].end()), calls_[r].end());
  }
  recursive_.assign(n, 0);
  std::vector<uint8_t> seen;
  std::vector<int32_t> stack;
  for (size_t r = 0; r < n; ++r) {
    seen.assign(n, 0);
    stack.assign(calls_[r].begin(), calls_[r].end());
    while (!stack.empty() && recursive_[r] == 0) {
      const auto q = static_cast<size_t>(stack.back());
      stack.pop_back();
      if (q == r) recursive_[r] = 1;
      if (seen[q] != 0) continue;
      seen[q] = 1;
      stack.insert(stack.end(), calls_[q].begin(), calls_[q].end());
    }
  }
}

// Expands the rules the root reaches, each rule that does not recurse after every such rule
// it calls (they form a DAG), and the recursive ones last. No step recurses from one rule
// into another, so a long chain of rules cannot exhaust the stack.
void GrammarCompiler::ExpandReachableRules() {
  const size_t n = rules_.bodies.size();
  expanded_.assign(n, std::nullopt);
  expanded_size_.assign(n, 0);
  expanded_depth_.assign(n, 0);
  std::vector<uint8_t> reachable(n, 0);
  std::vector<int32_t> stack = {0};
  reachable[0] = 1;
  while (!stack.empty()) {
    const auto r = static_cast<size_t>(stack.back());
    stack.pop_back();
    for (const int32_t q : calls_[r]) {
      if (reachable[static_cast<size_t>(q)] != 0) continue;
      reachable[static_cast<size_t>(q)] = 1;
      stack.push_back(q);
    }
  }
  std::vector<int32_t> waiting(n, 0);  // callees not yet expanded
  std::vector<std::vector<int32_t>> callers(n);
  for (size_t r = 0; r < n; ++r) {
    if (reachable[r] == 0 || recursive_[r] != 0) continue;
    for (const int32_t q : calls_[r]) {
      if (recursive_[static_cast<size_t>(q)] != 0) continue;
      ++waiting[r];
      callers[static_cast<size_t>(q)].push_back(static_cast<int32_t>(r));
    }
    if (waiting[r] == 0) stack.push_back(static_cast<int32_t>(r));
  }
  while (!stack.empty()) {
    const int32_t r = stack.back();
    stack.pop_back();
    ExpandRule(r);
    for (const int32_t c : callers[static_cast<size_t>(r)]) {
      if (--waiting[static_cast<size_t>(c)] == 0) stack.push_back(c);
    }
  }
  for (size_t r = 0; r < n; ++r) {
    if (reachable[r] != 0 && recursive_[r] != 0) ExpandRule(static_cast<int32_t>(r));
  }
}

void GrammarCompiler::ExpandRule(int32_t rule) {
  size_t budget = kMaxInlinedNodes;
  const auto r = static_cast<size_t>(rule);
  expanded_[r] = Expand(rules_.bodies[r], budget, 0);
  expanded_size_[r] = TreeSize(*expanded_[r]);
  expanded_depth_[r] = TreeDepth(*expanded_[r]);
}

const RegexNode& GrammarCompiler::Expanded(int32_t rule) const {
  const std::optional<RegexNode>& tree = expanded_[static_cast<size_t>(rule)];
  RS_CHECK(tree.has_value());  // every rule the root reaches is expanded
  return *tree;
}

// `node` at `depth` in its rule's tree, with the rules it calls that do not recurse copied
// in while they fit the rule's budget, the grammar's, and kMaxInlinedDepth.
RegexNode GrammarCompiler::Expand(const RegexNode& node, size_t& budget, size_t depth) {
  if (node.kind == Kind::kCall) {
    const auto q = static_cast<size_t>(node.rule);
    if (recursive_[q] != 0 || IsJson(q)) return node;
    const size_t size = expanded_size_[q];
    if (size > budget || expanded_nodes_ + size > kMaxGrammarNodes ||
        depth + expanded_depth_[q] > kMaxInlinedDepth) {
      return node;
    }
    budget -= size;
    expanded_nodes_ += size;
    return Expanded(node.rule);
  }
  RegexNode copy = WithoutChildren(node);
  for (const RegexNode& child : node.children) {
    copy.children.push_back(Expand(child, budget, depth + 1));
  }
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

// The least solution of the called rules' yields: each starts at "nothing" and grows, and
// a rule is looked at again only when a rule it calls has grown (a worklist: a pass over
// every rule until nothing changes would take as many passes as the longest call chain).
absl::Status GrammarCompiler::CheckYields() {
  yields_.assign(rules_.bodies.size(), Yield{});
  std::vector<std::vector<int32_t>> callers(rules_.bodies.size());
  for (const int32_t rule : rule_of_) {
    std::vector<int32_t> calls;
    CollectCalls(Expanded(rule), calls);
    std::sort(calls.begin(), calls.end());
    calls.erase(std::unique(calls.begin(), calls.end()), calls.end());
    for (const int32_t q : calls) callers[static_cast<size_t>(q)].push_back(rule);
  }
  std::vector<int32_t> pending(rule_of_.begin(), rule_of_.end());
  while (!pending.empty()) {
    const int32_t rule = pending.back();
    pending.pop_back();
    // A JSON value is never empty.
    const Yield y = IsJson(static_cast<size_t>(rule)) ? Yield{.any = true, .nonempty = true}
                                                      : YieldOf(Expanded(rule), yields_);
    Yield& old = yields_[static_cast<size_t>(rule)];
    if (y.empty == old.empty && y.any == old.any && y.nonempty == old.nonempty) continue;
    old = y;
    const std::vector<int32_t>& again = callers[static_cast<size_t>(rule)];
    pending.insert(pending.end(), again.begin(), again.end());
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
  RegexNode copy = WithoutChildren(node);
  for (const RegexNode& child : node.children) copy.children.push_back(RewriteCalls(child));
  return copy;
}

absl::Status GrammarCompiler::CompileAutomata() {
  int64_t states = 0;
  int64_t work_left = RegexDfa::kMaxWork;
  nodes_.resize(rule_of_.size());
  for (size_t node = 0; node < rule_of_.size(); ++node) {
    if (IsJson(static_cast<size_t>(rule_of_[node]))) continue;  // GraftJsonRules
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
      if (!IsText(call.rule)) continue;  // JSON calls no rule
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
    if (marks[node] == kNew && IsText(static_cast<int32_t>(node))) {
      RS_RETURN_IF_ERROR(visit(visit, static_cast<int32_t>(node)));
    }
  }
  return absl::OkStatus();
}

// The bytes a rule's non-empty text may start with (its start state's calls form no cycle).
const std::bitset<256>& GrammarCompiler::FirstBytes(int32_t node) {
  Node& rule = nodes_[static_cast<size_t>(node)];
  // A JSON node's bytes came with its grammar.
  if (first_done_[static_cast<size_t>(node)] != 0 || !IsText(node)) return rule.first_bytes;
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
  ExpandReachableRules();
  ChooseCalledRules();
  RS_RETURN_IF_ERROR(CheckYields());
  RS_RETURN_IF_ERROR(CompileAutomata());
  GraftJsonRules();
  RS_RETURN_IF_ERROR(CheckLeftRecursion());
  first_done_.assign(nodes_.size(), 0);
  for (size_t node = 0; node < nodes_.size(); ++node) FirstBytes(static_cast<int32_t>(node));
  RS_RETURN_IF_ERROR(ComputeFinishDepths(nodes_));
  auto grammar = std::make_shared<Grammar>();
  grammar->nodes_ = std::move(nodes_);
  return grammar;
}

// Each called JSON rule's grammar, its root at the rule's node and the rest appended, every
// node index inside shifted to match.
void GrammarCompiler::GraftJsonRules() {
  for (size_t node = 0; node < rule_of_.size(); ++node) {
    const auto rule = static_cast<size_t>(rule_of_[node]);
    if (!IsJson(rule)) continue;
    const std::vector<Node>& json = json_rules_[rule - 1].json->nodes();
    const auto base = static_cast<int32_t>(nodes_.size()) - 1;  // JSON node i > 0 goes to base + i
    const auto place = [&](int32_t& index) {
      if (index >= 0) index = index == 0 ? static_cast<int32_t>(node) : base + index;
    };
    const auto graft = [&](Node copy) {
      for (Node::Property& property : copy.properties) place(property.value);
      place(copy.additional);
      place(copy.items);
      for (int32_t& index : copy.prefix_items) place(index);
      for (int32_t& index : copy.members) place(index);
      for (int32_t& index : copy.alternatives) place(index);
      return copy;
    };
    nodes_[node] = graft(json[0]);
    for (size_t i = 1; i < json.size(); ++i) nodes_.push_back(graft(json[i]));
  }
}

absl::StatusOr<std::shared_ptr<const Grammar>> Grammar::FromGbnf(std::string_view text) {
  return FromGbnf(text, {});
}

absl::StatusOr<std::shared_ptr<const Grammar>> Grammar::FromGbnf(
    std::string_view text, std::span<const JsonRule> json_rules) {
  std::vector<std::string> names;
  for (const JsonRule& rule : json_rules) {
    RS_CHECK(rule.json != nullptr && rule.json->nodes()[0].kind != NodeKind::kText);
    names.push_back(rule.name);
  }
  RS_ASSIGN_OR_RETURN(GbnfRules rules, ParseGbnf(text, names));
  return GrammarCompiler(std::move(rules), json_rules).Build();
}

}  // namespace ringserve::grammar
