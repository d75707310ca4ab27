// AdapterTable over the fake model: which slot an adapter in host memory takes, the keys
// that keep each registration's cached K/V apart, and which slot drains for a waiting one.
#include "worker/engine/adapter_table.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/fake_model_runner.h"

namespace ringserve::engine {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const model::PreparedLora> Adapter(const std::string& name) {
  auto adapter = std::make_shared<model::PreparedLora>();
  adapter->name = name;
  return adapter;
}

FakeModelRunner Runner(std::vector<std::string> slots) {
  FakeModelRunnerOptions options;
  options.lora_adapters = std::move(slots);
  return FakeModelRunner(std::move(options));
}

// Acquires `name` (swapping when needed) and returns its binding; fails the test if it must
// wait.
AdapterTable::Binding Bind(AdapterTable& table, const std::string& name) {
  absl::StatusOr<std::optional<AdapterTable::Binding>> b = table.Acquire(name, true);
  EXPECT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b.ok() && b->has_value()) << name << " had to wait";
  return b.ok() && b->has_value() ? **b : AdapterTable::Binding{};
}

bool Waits(AdapterTable& table, const std::string& name, bool may_swap = true) {
  absl::StatusOr<std::optional<AdapterTable::Binding>> b = table.Acquire(name, may_swap);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() && !b->has_value();
}

TEST(AdapterTableTest, RegistersTheSlotsAdaptersAndWritesNewOnesIntoEmptySlots) {
  FakeModelRunner runner = Runner({"a", "", ""});
  AdapterTable table(&runner, 0);
  EXPECT_EQ(table.num_slots(), 3);
  EXPECT_EQ(table.Names(), (std::vector<std::string>{"a"}));
  ASSERT_TRUE(table.Add("b", Adapter("b")).ok());
  EXPECT_EQ(table.SlotNames(), (std::vector<std::string>{"a", "b", ""}));
  EXPECT_TRUE(table.Resident("b"));
  EXPECT_EQ(table.Add("b", Adapter("b")).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(table.Add("c", Adapter("c")).ok());
  // Capacity 0 is the slots: a fourth is refused.
  EXPECT_EQ(table.Add("d", Adapter("d")).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(table.num_swaps(), 0);
}

TEST(AdapterTableTest, AModelWithoutSlotsTakesNoAdapter) {
  FakeModelRunner runner = Runner({});
  AdapterTable table(&runner, 4);
  EXPECT_EQ(table.Add("a", Adapter("a")).code(), absl::StatusCode::kFailedPrecondition);
  const auto missing = table.Acquire("a", true);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("it serves none"));
}

TEST(AdapterTableTest, AnAdapterInHostMemoryTakesTheIdleSlotBoundLeastRecently) {
  FakeModelRunner runner = Runner({"a", "b"});
  AdapterTable table(&runner, 4);
  ASSERT_TRUE(table.Add("c", Adapter("c")).ok());
  ASSERT_TRUE(table.Add("d", Adapter("d")).ok());
  EXPECT_FALSE(table.Resident("c"));

  const AdapterTable::Binding a = Bind(table, "a");
  const AdapterTable::Binding b = Bind(table, "b");
  EXPECT_TRUE(Waits(table, "c")) << "both slots are bound";
  table.Release(a.slot);
  table.Release(b.slot);
  EXPECT_TRUE(Waits(table, "c", /*may_swap=*/false));
  const AdapterTable::Binding c = Bind(table, "c");  // a's slot: bound before b's
  EXPECT_EQ(c.slot, a.slot);
  EXPECT_EQ(table.SlotNames(), (std::vector<std::string>{"c", "b"}));
  EXPECT_EQ(table.num_swaps(), 1);
  const AdapterTable::Binding d = Bind(table, "d");  // the only idle slot
  EXPECT_EQ(d.slot, b.slot);
  EXPECT_TRUE(Waits(table, "a"));
  table.Release(c.slot);
  table.Release(d.slot);

  // Keys belong to registrations: "c" keeps its key through a swap out and back in; an
  // adapter registered again under a name gets a new one.
  const AdapterTable::Binding a_again = Bind(table, "a");
  table.Release(a_again.slot);
  EXPECT_EQ(a_again.key, a.key);
  const AdapterTable::Binding b_again = Bind(table, "b");
  table.Release(b_again.slot);
  EXPECT_FALSE(table.Resident("c"));
  const AdapterTable::Binding c_again = Bind(table, "c");
  table.Release(c_again.slot);
  EXPECT_EQ(c_again.key, c.key);
  ASSERT_TRUE(table.Remove("c").ok());
  EXPECT_EQ(table.Acquire("c", true).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(table.Add("c", Adapter("c")).ok());
  const AdapterTable::Binding c_new = Bind(table, "c");
  EXPECT_NE(c_new.key, c.key);
  EXPECT_NE(c_new.key, a.key);
  EXPECT_NE(c_new.key, b.key);
  EXPECT_NE(c_new.key, d.key);
}

TEST(AdapterTableTest, RemoveWaitsForTheJobsAndEmptiesTheSlot) {
  FakeModelRunner runner = Runner({"a", "b"});
  AdapterTable table(&runner, 0);
  const AdapterTable::Binding a = Bind(table, "a");
  EXPECT_EQ(table.Remove("a").code(), absl::StatusCode::kFailedPrecondition);
  table.Release(a.slot);
  ASSERT_TRUE(table.Remove("a").ok());
  EXPECT_EQ(table.SlotNames(), (std::vector<std::string>{"", "b"}));
  EXPECT_EQ(table.Remove("a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(runner.LoadIn(0), 0);
}

TEST(AdapterTableTest, DrainingPicksTheSlotWithFewestJobsAndKeepsItAcrossRounds) {
  FakeModelRunner runner = Runner({"a", "b"});
  AdapterTable table(&runner, 4);
  ASSERT_TRUE(table.Add("c", Adapter("c")).ok());
  ASSERT_TRUE(table.Add("d", Adapter("d")).ok());
  const AdapterTable::Binding a1 = Bind(table, "a");
  Bind(table, "a");
  const AdapterTable::Binding b1 = Bind(table, "b");

  table.BeginRound();
  EXPECT_TRUE(Waits(table, "c"));
  table.DrainFor("c");
  table.DrainFor("c");  // one slot per adapter
  EXPECT_TRUE(Waits(table, "b")) << "b's slot (one job) drains for c";
  const AdapterTable::Binding a3 = Bind(table, "a");  // a's (two jobs) does not
  EXPECT_EQ(a3.slot, a1.slot);

  // The next round keeps draining b's slot for c though a's now has as few jobs.
  table.Release(a3.slot);
  table.Release(a1.slot);
  table.BeginRound();
  EXPECT_TRUE(Waits(table, "c"));
  table.DrainFor("c");
  EXPECT_TRUE(Waits(table, "b"));
  // A second waiting adapter drains the other slot.
  EXPECT_TRUE(Waits(table, "d"));
  table.DrainFor("d");
  EXPECT_TRUE(Waits(table, "a"));

  // Once b's job ends, c takes its slot.
  table.Release(b1.slot);
  const AdapterTable::Binding c = Bind(table, "c");
  EXPECT_EQ(c.slot, b1.slot);
  // Without waiting jobs a round drains nothing.
  table.BeginRound();
  Bind(table, "a");
}

}  // namespace
}  // namespace ringserve::engine
