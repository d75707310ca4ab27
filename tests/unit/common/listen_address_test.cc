// The servers' listen address check: ports outside [0, 65535] are refused by name (gRPC took
// 70000 as 4464), everything else is left to gRPC.
#include "common/grpc/listen_address.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringserve {
namespace {

using ::testing::HasSubstr;

TEST(ListenAddressTest, PortsInRangePass) {
  for (const char* address : {"0.0.0.0:0", "127.0.0.1:50051", "[::1]:65535", "unix:/tmp/s"}) {
    EXPECT_TRUE(CheckListenAddress(address).ok()) << address;
  }
}

TEST(ListenAddressTest, PortsOutOfRangeAreRefusedByNumber) {
  for (const char* address : {"0.0.0.0:70000", "127.0.0.1:-1", "[::1]:65536"}) {
    const absl::Status status = CheckListenAddress(address);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_THAT(status.message(), HasSubstr("is outside [0, 65535]"));
  }
}

}  // namespace
}  // namespace ringserve
