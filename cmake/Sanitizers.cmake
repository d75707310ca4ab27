# RINGSERVE_SANITIZE=address -> ASan + UBSan; =thread -> TSan. Applied to everything we build.
if(RINGSERVE_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  # GCC's flow analysis gives false maybe-uninitialized reports on instrumented code
  # (std::variant moves, for one); the plain build keeps the warning.
  add_compile_options($<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
elseif(RINGSERVE_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT RINGSERVE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "RINGSERVE_SANITIZE must be empty, 'address' or 'thread'")
endif()
