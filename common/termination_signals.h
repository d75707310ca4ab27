// Graceful shutdown for ringserve's servers: SIGTERM and SIGINT wake the main thread, which
// drains; a repeated signal (a second Ctrl-C, an orchestrator's resend) changes nothing.
#ifndef RINGSERVE_COMMON_TERMINATION_SIGNALS_H_
#define RINGSERVE_COMMON_TERMINATION_SIGNALS_H_

#include <string>

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

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_TERMINATION_SIGNALS_H_
