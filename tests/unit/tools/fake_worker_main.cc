// ringserve-fake-worker: the tests' FakeWorker as a process, for tests written in other
// languages (the Python client's). Prints its "127.0.0.1:PORT" on the first line of
// stdout, then serves until SIGTERM or SIGINT.
#include <csignal>
#include <iostream>

#include "absl/strings/numbers.h"
#include "common/termination_signals.h"
#include "tests/unit/router/fake_worker.h"

int main(int argc, char** argv) {
  // Usage: ringserve-fake-worker [ID [TOKENS_PER_REQUEST]]
  const std::string id = argc > 1 ? argv[1] : "fake-worker";
  int tokens = 4;
  if (argc > 2 && !absl::SimpleAtoi(argv[2], &tokens)) {
    std::cerr << "usage: ringserve-fake-worker [ID [TOKENS_PER_REQUEST]]\n";
    return 2;
  }
  // Before any gRPC thread starts, so only the wait below takes SIGTERM/SIGINT.
  ringserve::BlockTerminationSignals();

  ringserve::router::testing::FakeWorker worker(id);
  worker.set_tokens(tokens, absl::ZeroDuration());
  std::cout << worker.address() << std::endl;
  ringserve::WaitForTerminationSignal();
  return 0;
}
