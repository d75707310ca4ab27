// SIGTERM and SIGINT wake the waiting thread whichever thread the kernel hands them to, and
// a repeated signal during the drain does not kill the process. Each case runs in a child
// process (death-test machinery) because it sends real signals to itself.
#include "common/termination_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"

namespace ringserve {
namespace {

// A thread started before BlockTerminationSignals keeps both signals unblocked, as
// OpenBLAS's pool (started before main) does in the worker.
void StartThreadThatTakesSignals() {
  std::atomic<bool> running = false;
  std::thread([&running] {
    running = true;
    for (;;) pause();
  }).detach();
  while (!running) std::this_thread::yield();
}

TEST(TerminationSignalsDeathTest, ASignalTakenByAnEarlierThreadWakesTheWaiter) {
  EXPECT_EXIT(
      {
        StartThreadThatTakesSignals();
        BlockTerminationSignals();
        kill(getpid(), SIGTERM);  // every thread but the early one blocks it
        const bool named = WaitForTerminationSignal() == strsignal(SIGTERM);
        std::_Exit(named ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(TerminationSignalsDeathTest, SignalsDuringTheDrainAreIgnored) {
  EXPECT_EXIT(
      {
        StartThreadThatTakesSignals();
        BlockTerminationSignals();
        kill(getpid(), SIGINT);
        const bool named = WaitForTerminationSignal() == strsignal(SIGINT);
        // A second Ctrl-C and the supervisor's SIGTERM while admitted requests finish.
        kill(getpid(), SIGINT);
        kill(getpid(), SIGTERM);
        usleep(100 * 1000);
        std::_Exit(named ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

// During start-up (a model loading) a signal ends the process at once, with 128 + the
// signal; once the guard is gone, a signal waits for WaitForTerminationSignal again.
TEST(TerminationSignalsDeathTest, ASignalDuringStartUpExitsAtOnce) {
  EXPECT_EXIT(
      {
        StartThreadThatTakesSignals();
        BlockTerminationSignals();
        const ExitOnTerminationSignal starting;
        kill(getpid(), SIGTERM);
        sleep(30);  // the load; never finishes here
        std::_Exit(3);
      },
      ::testing::ExitedWithCode(128 + SIGTERM), "during start-up: exiting");
}

TEST(TerminationSignalsDeathTest, AfterStartUpASignalDrainsAgain) {
  EXPECT_EXIT(
      {
        BlockTerminationSignals();
        { const ExitOnTerminationSignal starting; }
        kill(getpid(), SIGINT);
        const bool named = WaitForTerminationSignal() == strsignal(SIGINT);
        std::_Exit(named ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace ringserve
