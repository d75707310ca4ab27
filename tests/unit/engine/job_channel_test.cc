#include "worker/engine/job_channel.h"

#include <atomic>
#include <memory>
#include <thread>

#include "gtest/gtest.h"

namespace ringserve::engine {
namespace {

JobEvent Tokens(std::initializer_list<int32_t> ids, std::string text) {
  JobEvent e;
  for (int32_t id : ids) e.tokens.emplace_back().id = id;
  e.text = std::move(text);
  return e;
}

TEST(JobChannelTest, UnreadEventsMergeInOrder) {
  JobChannel channel(1, 100, {});
  JobEvent first = Tokens({1}, "a");
  first.prompt_tokens = 5;
  ASSERT_TRUE(channel.Push(std::move(first)));
  ASSERT_TRUE(channel.Push(Tokens({2, 3}, "bc")));
  std::optional<JobEvent> e = channel.TryNext();
  ASSERT_TRUE(e.has_value());
  ASSERT_EQ(e->tokens.size(), 3U);
  EXPECT_EQ(e->tokens[2].id, 3);
  EXPECT_EQ(e->text, "abc");
  EXPECT_EQ(e->prompt_tokens, 5);  // the first event's count survives the later events
  EXPECT_FALSE(e->finished);
  EXPECT_FALSE(channel.TryNext().has_value());
}

TEST(JobChannelTest, AReaderTooFarBehindMakesPushFail) {
  JobChannel channel(1, 3, {});
  ASSERT_TRUE(channel.Push(Tokens({1, 2}, "")));
  EXPECT_FALSE(channel.Push(Tokens({3, 4}, "")));  // 4 unread > 3
  JobEvent slow;
  slow.status = absl::ResourceExhaustedError("slow");
  channel.Finish(slow);
  std::optional<JobEvent> e = channel.TryNext();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->tokens.size(), 2U);  // the refused push left nothing behind
  EXPECT_TRUE(e->finished);
  EXPECT_TRUE(absl::IsResourceExhausted(e->status));
}

TEST(JobChannelTest, FinalEventEndsTheStreamAndLaterPushesAreIgnored) {
  JobChannel channel(1, 10, {});
  channel.Finish(Tokens({7}, "x"));
  EXPECT_TRUE(channel.Push(Tokens({8}, "y")));
  std::optional<JobEvent> e = channel.Next();
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->finished);
  EXPECT_EQ(e->tokens.size(), 1U);
  EXPECT_TRUE(channel.done());
  EXPECT_FALSE(channel.Next().has_value());  // does not block after the end
}

TEST(JobChannelTest, CancelCallsBackOnceAndHandleDropCancels) {
  std::atomic<int> calls{0};
  auto channel = std::make_shared<JobChannel>(1, 10, [&] { ++calls; });
  channel->Cancel();
  channel->Cancel();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(channel->cancel_requested());

  std::atomic<int> dropped{0};
  auto other = std::make_shared<JobChannel>(2, 10, [&] { ++dropped; });
  { JobHandle handle(other); }
  EXPECT_EQ(dropped.load(), 1);
}

TEST(JobChannelTest, NotifierFiresWhenAnEventBecomesPending) {
  JobChannel channel(1, 10, {});
  std::atomic<int> notified{0};
  ASSERT_TRUE(channel.Push(Tokens({1}, "")));
  channel.SetNotifier([&] { ++notified; });  // already pending: fires now
  EXPECT_EQ(notified.load(), 1);
  ASSERT_TRUE(channel.Push(Tokens({2}, "")));  // merged into the pending one: no new call
  EXPECT_EQ(notified.load(), 1);
  ASSERT_TRUE(channel.TryNext().has_value());
  ASSERT_TRUE(channel.Push(Tokens({3}, "")));
  EXPECT_EQ(notified.load(), 2);
}

TEST(JobChannelTest, BlockingReaderWakesOnAnotherThreadsPush) {
  auto channel = std::make_shared<JobChannel>(1, 1000, nullptr);
  std::thread writer([channel] {
    for (int i = 0; i < 200; ++i) {
      while (!channel->Push(Tokens({i}, ""))) std::this_thread::yield();
    }
    channel->Finish(JobEvent{});
  });
  JobHandle handle(channel);
  JobEvent all = handle.Collect();
  writer.join();
  ASSERT_EQ(all.tokens.size(), 200U);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(all.tokens[static_cast<size_t>(i)].id, i);
  EXPECT_TRUE(all.finished);
}

}  // namespace
}  // namespace ringserve::engine
