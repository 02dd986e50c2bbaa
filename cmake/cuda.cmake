# The CUDA backend (src/ops/cuda/*.cu), built when nvcc is found or when
# -DSOJU_CUDA=ON asks for it; -DSOJU_CUDA=OFF skips it. The CPU build never
# depends on it. SOJU_CUDA_ARCHS picks the GPU targets (default: Hopper
# sm_90a plus PTX for sm_80, so Ampere and newer run it; the kernels need
# sm_80's bf16 tensor-core MMA and cp.async, and the backend refuses older
# GPUs). With 90a in the list the Hopper-only wgmma attention kernels are
# built too (SOJU_WGMMA) and used on compute capability 9.0.
set(SOJU_CUDA "AUTO" CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set(SOJU_CUDA_ARCHS "90a;80-virtual" CACHE STRING "CUDA architectures for the CUDA backend")

set(_want_cuda OFF)
if(SOJU_CUDA STREQUAL "ON")
  set(_want_cuda ON)
elseif(SOJU_CUDA STREQUAL "AUTO" AND NOT SOJU_FUZZ AND NOT SOJU_SANITIZE)
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(_want_cuda ON)
  endif()
endif()

if(_want_cuda)
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(CMAKE_CUDA_COMPILER nvcc PATHS /usr/local/cuda/bin)
  endif()
  set(CMAKE_CUDA_ARCHITECTURES ${SOJU_CUDA_ARCHS})
  set(CMAKE_CUDA_STANDARD 17)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  file(GLOB SOJU_CUDA_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/ops/cuda/*.cu)
  add_library(soju_cuda STATIC ${SOJU_CUDA_SRC})
  target_include_directories(soju_cuda PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(soju_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 --use_fast_math -Werror=all-warnings -lineinfo>)
  set_target_properties(soju_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_RESOLVE_DEVICE_SYMBOLS ON)
  target_link_libraries(soju_cuda PUBLIC CUDA::cudart_static CUDA::cublas CUDA::cublasLt)
  find_library(NCCL_LIB nccl PATHS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(NCCL_LIB)
    target_link_libraries(soju_cuda PUBLIC ${NCCL_LIB})
    target_compile_definitions(soju_core PUBLIC SOJU_HAVE_NCCL)
  endif()
  # cuDNN's fused attention (SOJU_CUDA_CUDNN=1): only its header is needed at
  # build time; libcudnn.so.9 is opened at run time. The header comes with a
  # cuDNN install or with the pip wheel nvidia-cudnn-cu12/13 (PyTorch's).
  execute_process(COMMAND python3 -c "import nvidia.cudnn as m; print(list(m.__path__)[0])"
    OUTPUT_VARIABLE _cudnn_pip OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  find_path(CUDNN_INCLUDE cudnn_backend.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${_cudnn_pip}/include
    PATH_SUFFIXES x86_64-linux-gnu)
  if(CUDNN_INCLUDE)
    get_filename_component(_cudnn_root ${CUDNN_INCLUDE} DIRECTORY)
    find_path(CUDNN_LIB_DIR libcudnn.so.9 HINTS ${_cudnn_root}/lib ${_cudnn_root}/lib64 ${CUDAToolkit_LIBRARY_DIR}
      /usr/lib/x86_64-linux-gnu)
    target_sources(soju_cuda PRIVATE ${PROJECT_SOURCE_DIR}/src/ops/cuda/cudnn_graph.c)
    # public: the CPU evaluation of the graphs (tests/ops) reads cuDNN's enums too
    target_include_directories(soju_cuda PUBLIC ${CUDNN_INCLUDE})
    target_link_libraries(soju_cuda PUBLIC ${CMAKE_DL_LIBS})
    target_compile_definitions(soju_cuda PUBLIC SOJU_HAVE_CUDNN)
    message(STATUS "soju: cuDNN attention ON (header ${CUDNN_INCLUDE}, library ${CUDNN_LIB_DIR})")
  endif()
  if("90a" IN_LIST SOJU_CUDA_ARCHS)
    target_compile_definitions(soju_cuda PRIVATE SOJU_WGMMA)
  endif()
  target_compile_definitions(soju_core PUBLIC SOJU_HAVE_CUDA)
  set_target_properties(soju_core PROPERTIES CUDA_ARCHITECTURES "${SOJU_CUDA_ARCHS}")
  target_link_libraries(soju_core PUBLIC soju_cuda)
  message(STATUS "soju: CUDA backend ON (archs ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "soju: CUDA backend OFF")
endif()
