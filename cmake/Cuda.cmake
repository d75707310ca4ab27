# RINGSERVE_CUDA: AUTO enables the CUDA backend when nvcc is found (it is on CI, so the CUDA
# code always compiles); ON requires it; OFF skips it.
set(RINGSERVE_HAVE_CUDA OFF)
if(NOT RINGSERVE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    # Debian 12's CMake 3.25 FindCUDAToolkit sets a property on CUDA::nvToolsExt without
    # checking that the target exists, and CUDA 13 ships no libnvToolsExt (NVTX 2; nvtx3 is
    # header-only): configure fails on a stock system. An empty target satisfies it.
    if(CMAKE_VERSION VERSION_LESS 3.28 AND NOT TARGET CUDA::nvToolsExt)
      add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
    endif()
    find_package(CUDAToolkit REQUIRED)
    set(RINGSERVE_HAVE_CUDA ON)
  elseif(RINGSERVE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "RINGSERVE_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "ringserve CUDA backend: ${RINGSERVE_HAVE_CUDA}")
