// Where the tests find ../shared's reference data: $RINGSERVE_SHARED_DIR when set, else the
// directory configured at build time. The variable lets a build made on one machine run its
// tests on another (deploy/gpu/prepare.sh's prebuilt binaries on a GPU machine).
#ifndef RINGSERVE_TESTS_UNIT_SHARED_DIR_H_
#define RINGSERVE_TESTS_UNIT_SHARED_DIR_H_

#include <cstdlib>
#include <string>

namespace ringserve {

inline std::string SharedDataDir() {
  const char* from_environment = std::getenv("RINGSERVE_SHARED_DIR");
  return from_environment != nullptr && *from_environment != '\0' ? from_environment
                                                                  : RINGSERVE_SHARED_DIR;
}

}  // namespace ringserve

#endif  // RINGSERVE_TESTS_UNIT_SHARED_DIR_H_
