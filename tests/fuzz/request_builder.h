// Builds a ringserve.v1.GenerateRequest from fuzzer bytes (request_fuzzer's structured
// mode). Each field is set or left unset by a choice, and numbers are drawn as often from
// the values at and around the documented limits as from their whole range, so most
// inputs get past the early checks and reach the later ones; libFuzzer's byte mutations
// then act on field values instead of breaking the wire format.
#ifndef RINGSERVE_TESTS_FUZZ_REQUEST_BUILDER_H_
#define RINGSERVE_TESTS_FUZZ_REQUEST_BUILDER_H_

#include <string_view>

#include "ringserve/v1/inference.pb.h"

namespace ringserve::fuzz {

ringserve::v1::GenerateRequest BuildRequest(std::string_view bytes);

}  // namespace ringserve::fuzz

#endif  // RINGSERVE_TESTS_FUZZ_REQUEST_BUILDER_H_
