// ringserve-fake-worker: the tests' FakeWorker as a process, for tests written in other
// languages (the Python client's). Prints its "127.0.0.1:PORT" on the first line of
// stdout, then serves until SIGTERM or SIGINT.
#include <csignal>
#include <iostream>

#include "absl/strings/numbers.h"
#include "tests/unit/router/fake_worker.h"

int main(int argc, char** argv) {
  // Usage: ringserve-fake-worker [ID [TOKENS_PER_REQUEST]]
  const std::string id = argc > 1 ? argv[1] : "fake-worker";
  int tokens = 4;
  if (argc > 2 && !absl::SimpleAtoi(argv[2], &tokens)) {
    std::cerr << "usage: ringserve-fake-worker [ID [TOKENS_PER_REQUEST]]\n";
    return 2;
  }
  // Blocked before any gRPC thread starts, so only sigwait below takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ringserve::router::testing::FakeWorker worker(id);
  worker.set_tokens(tokens, absl::ZeroDuration());
  std::cout << worker.address() << std::endl;
  int signal = 0;
  sigwait(&signals, &signal);
  return 0;
}
