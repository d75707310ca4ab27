// Graceful shutdown for ringserve's servers: SIGTERM and SIGINT wake the main thread, which
// drains; a repeated signal (a second Ctrl-C, an orchestrator's resend) changes nothing.
#ifndef RINGSERVE_COMMON_TERMINATION_SIGNALS_H_
#define RINGSERVE_COMMON_TERMINATION_SIGNALS_H_

#include <string>
#include <thread>

namespace ringserve {

// Installs the handler for SIGTERM and SIGINT and blocks both in the calling thread, and so
// in every thread it starts afterwards (gRPC's, the engine's), which keeps the signals off
// their system calls. Call in main before starting a server. Threads that already run
// (OpenBLAS starts its pool before main) may still take a signal; the handler makes that
// harmless.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT, including one that arrived since BlockTerminationSignals, and
// returns its name. Later signals are ignored, so a drain runs to its end.
std::string WaitForTerminationSignal();

// While one exists (after BlockTerminationSignals), SIGTERM or SIGINT ends the process at
// once with status 128 + the signal, naming it on stderr. For start-up work such as loading
// a model, where there is nothing to drain: without it a Ctrl-C, or an orchestrator's
// SIGTERM to a pod still loading, would wait for the load and then drain an idle server.
// A signal that arrives as it is destroyed is left to WaitForTerminationSignal.
class ExitOnTerminationSignal {
 public:
  ExitOnTerminationSignal();
  ~ExitOnTerminationSignal();
  ExitOnTerminationSignal(const ExitOnTerminationSignal&) = delete;
  ExitOnTerminationSignal& operator=(const ExitOnTerminationSignal&) = delete;

 private:
  int stop_read_fd_ = -1;
  int stop_write_fd_ = -1;
  std::thread watcher_;
};

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_TERMINATION_SIGNALS_H_
