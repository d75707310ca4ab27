// The devices model tests run on: the CPU always, plus the first GPU when this build has
// the CUDA backend (tests skip that case at run time when no device is visible).
#ifndef RINGSERVE_TESTS_UNIT_MODEL_TEST_BACKENDS_H_
#define RINGSERVE_TESTS_UNIT_MODEL_TEST_BACKENDS_H_

#include <string>
#include <vector>

inline std::vector<std::string> TestBackendNames() {
#ifdef RINGSERVE_HAVE_CUDA
  return {"cpu", "cuda:0"};
#else
  return {"cpu"};
#endif
}

#endif  // RINGSERVE_TESTS_UNIT_MODEL_TEST_BACKENDS_H_
