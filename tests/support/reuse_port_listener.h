// A TCP listener on 127.0.0.1 with SO_REUSEPORT set, the way gRPC binds by default: a
// server that does not insist on its port alone binds the same port beside it and starts,
// so tests use it to check that ringserve's servers refuse a port already in use.
#ifndef RINGSERVE_TESTS_SUPPORT_REUSE_PORT_LISTENER_H_
#define RINGSERVE_TESTS_SUPPORT_REUSE_PORT_LISTENER_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace ringserve::testing {

class ReusePortListener {
 public:
  ReusePortListener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    const int one = 1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    const bool ok = fd_ >= 0 && setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
                    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                    listen(fd_, 1) == 0 &&
                    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0;
    EXPECT_TRUE(ok) << "cannot listen on 127.0.0.1 with SO_REUSEPORT";
    if (ok) port_ = ntohs(address.sin_port);
  }
  ~ReusePortListener() {
    if (fd_ >= 0) close(fd_);
  }
  ReusePortListener(const ReusePortListener&) = delete;
  ReusePortListener& operator=(const ReusePortListener&) = delete;

  int port() const { return port_; }

 private:
  const int fd_;
  int port_ = 0;
};

}  // namespace ringserve::testing

#endif  // RINGSERVE_TESTS_SUPPORT_REUSE_PORT_LISTENER_H_
