#include "common/termination_signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstring>

namespace ringserve {
namespace {

sigset_t TerminationSet() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

}  // namespace

void BlockTerminationSignals() {
  const sigset_t signals = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

std::string WaitForTerminationSignal() {
  const sigset_t signals = TerminationSet();
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  return strsignal(signal_number);
}

}  // namespace ringserve
