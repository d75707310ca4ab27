#include "common/termination_signals.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/check.h"

namespace ringserve {
namespace {

// A process-directed signal goes to any thread that does not block it. With the default
// disposition, one landing on a thread started before the signals were blocked killed the
// process mid-drain. The handler only records the signal in a pipe (async-signal-safe), so
// whichever thread runs it, the waiting main thread is woken and nothing is killed.
int wake_read_fd = -1;
int wake_write_fd = -1;

sigset_t TerminationSet() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

extern "C" void RecordTerminationSignal(int signal_number) {
  const int saved_errno = errno;
  const auto byte = static_cast<unsigned char>(signal_number);
  // A full pipe already holds a signal for the waiter; dropping this one loses nothing.
  [[maybe_unused]] const ssize_t written = write(wake_write_fd, &byte, 1);
  errno = saved_errno;
}

void InstallHandler() {
  int fds[2];
  RS_CHECK(pipe2(fds, O_CLOEXEC) == 0);
  wake_read_fd = fds[0];
  wake_write_fd = fds[1];
  RS_CHECK(fcntl(wake_write_fd, F_SETFL, O_NONBLOCK) == 0);
  struct sigaction action {};
  action.sa_handler = RecordTerminationSignal;
  action.sa_mask = TerminationSet();
  action.sa_flags = SA_RESTART;
  RS_CHECK(sigaction(SIGTERM, &action, nullptr) == 0);
  RS_CHECK(sigaction(SIGINT, &action, nullptr) == 0);
}

}  // namespace

void BlockTerminationSignals() {
  static std::once_flag installed;
  std::call_once(installed, InstallHandler);
  const sigset_t signals = TerminationSet();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

ExitOnTerminationSignal::ExitOnTerminationSignal() {
  RS_CHECK_MSG(wake_read_fd >= 0, "ExitOnTerminationSignal before BlockTerminationSignals");
  int fds[2];
  RS_CHECK(pipe2(fds, O_CLOEXEC) == 0);
  stop_read_fd_ = fds[0];
  stop_write_fd_ = fds[1];
  watcher_ = std::thread([stop = stop_read_fd_] {
    // The one thread that takes the signals now (the others block them).
    const sigset_t signals = TerminationSet();
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
    pollfd fds[2] = {{.fd = stop, .events = POLLIN, .revents = 0},
                     {.fd = wake_read_fd, .events = POLLIN, .revents = 0}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    if ((fds[0].revents & POLLIN) != 0) return;  // start-up is over
    unsigned char byte = 0;
    if (read(wake_read_fd, &byte, 1) != 1) return;
    std::fprintf(stderr, "%s during start-up: exiting\n", strsignal(byte));
    std::fflush(stderr);
    std::_Exit(128 + byte);
  });
}

ExitOnTerminationSignal::~ExitOnTerminationSignal() {
  const unsigned char byte = 1;
  RS_CHECK(write(stop_write_fd_, &byte, 1) == 1);
  watcher_.join();
  close(stop_read_fd_);
  close(stop_write_fd_);
}

std::string WaitForTerminationSignal() {
  RS_CHECK_MSG(wake_read_fd >= 0, "WaitForTerminationSignal before BlockTerminationSignals");
  const sigset_t signals = TerminationSet();
  // While this thread waits, a signal pending for the process is delivered here if no
  // other thread takes it.
  pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
  // poll() before read(): ThreadSanitizer runs a handler for a signal that lands on this
  // thread only inside a call it treats as blocking, and poll is one where read is not, so
  // a bare read() would wait forever for the handler that is to wake it.
  pollfd wake{.fd = wake_read_fd, .events = POLLIN, .revents = 0};
  while (poll(&wake, 1, -1) < 0 && errno == EINTR) {
  }
  unsigned char byte = 0;
  ssize_t got = 0;
  do {
    got = read(wake_read_fd, &byte, 1);
  } while (got < 0 && errno == EINTR);
  RS_CHECK(got == 1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return strsignal(byte);
}

}  // namespace ringserve
