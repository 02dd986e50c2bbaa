# MPI for data-parallel training (src/train/dist*.c): one process per device,
# started by mpirun or srun. Found with CMake's FindMPI (Debian:
# libopenmpi-dev); without it soju builds and trains in one process as
# before. -DSOJU_MPI=OFF skips it, ON requires it. Sanitizer and fuzz builds
# skip it by default (OpenMPI's own allocations would read as leaks).
set(SOJU_MPI "AUTO" CACHE STRING "Build with MPI for data-parallel training: AUTO, ON or OFF")

set(_want_mpi OFF)
if(SOJU_MPI STREQUAL "ON" OR (SOJU_MPI STREQUAL "AUTO" AND NOT SOJU_FUZZ AND NOT SOJU_SANITIZE))
  set(_want_mpi ON)
endif()
if(_want_mpi)
  if(SOJU_MPI STREQUAL "ON")
    find_package(MPI REQUIRED COMPONENTS C)
  else()
    find_package(MPI QUIET COMPONENTS C)
  endif()
endif()
if(_want_mpi AND MPI_C_FOUND)
  target_link_libraries(soju_core PUBLIC MPI::MPI_C)
  target_compile_definitions(soju_core PUBLIC SOJU_HAVE_MPI)
  message(STATUS "soju: MPI ON (${MPI_C_LIBRARIES})")
else()
  message(STATUS "soju: MPI OFF (single-process training only)")
endif()
