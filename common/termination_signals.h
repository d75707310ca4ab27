// Graceful shutdown for ringserve's servers: SIGTERM and SIGINT are taken synchronously
// by the main thread (sigwait), never by a signal handler on some gRPC thread.
#ifndef RINGSERVE_COMMON_TERMINATION_SIGNALS_H_
#define RINGSERVE_COMMON_TERMINATION_SIGNALS_H_

#include <string>

namespace ringserve {

// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it starts
// afterwards. Call first in main, before anything starts a thread.
void BlockTerminationSignals();

// Waits for SIGTERM or SIGINT (blocked by BlockTerminationSignals) and returns its name.
std::string WaitForTerminationSignal();

}  // namespace ringserve

#endif  // RINGSERVE_COMMON_TERMINATION_SIGNALS_H_
