# Installs the build tree into a scratch prefix, then builds and runs its
# consumers: a C++ and a C-only CMake project (find_package(srcu)), and a
# plain C++ and C compile with the flags from pkg-config (srcu-cxx.pc,
# srcu.pc).
# Inputs: SRCU_BUILD_DIR, SRCU_SOURCE_DIR, WORK_DIR, GENERATOR.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_COMMAND} --install ${SRCU_BUILD_DIR} --prefix ${prefix})
foreach(f include/srcu/srcu.h include/srcu/srcu_c.h include/srcu/version.h lib/libsrcu.a
          lib/cmake/srcu/srcuConfig.cmake lib/cmake/srcu/srcuConfigVersion.cmake
          lib/pkgconfig/srcu.pc lib/pkgconfig/srcu-cxx.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# 1. CMake package.
run(${CMAKE_COMMAND} -S ${SRCU_SOURCE_DIR}/tests/install -B ${WORK_DIR}/cmake-consumer
    -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-consumer)
run(${WORK_DIR}/cmake-consumer/consumer)

# 1b. CMake package from a project that enables only C.
run(${CMAKE_COMMAND} -S ${SRCU_SOURCE_DIR}/tests/install/c -B ${WORK_DIR}/cmake-c-consumer
    -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-c-consumer)
run(${WORK_DIR}/cmake-c-consumer/c_consumer)

# 2. pkg-config (srcu.pc carries the install prefix it was configured with,
#    so point it at the scratch prefix).
find_program(PKG_CONFIG pkg-config)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config not found (Debian package pkg-config)")
endif()
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
function(pkg_flags module out)
  execute_process(COMMAND ${PKG_CONFIG} --define-variable=prefix=${prefix} --cflags --libs ${module}
                  OUTPUT_VARIABLE flags RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config --cflags --libs ${module} failed")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  set(${out} ${flags} PARENT_SCOPE)
endfunction()
pkg_flags(srcu-cxx cxx_flags)
run(c++ ${SRCU_SOURCE_DIR}/tests/install/consumer.cc -o ${WORK_DIR}/pc-consumer ${cxx_flags})
run(${WORK_DIR}/pc-consumer)
# The C program of the README: cc -std=c11 ... prog.c $(pkg-config --cflags --libs srcu)
pkg_flags(srcu c_flags)
if(c_flags MATCHES "std=c\\+\\+")
  message(FATAL_ERROR "srcu.pc carries a C++-only flag: ${c_flags}")
endif()
run(cc -std=c11 -Wall -Wextra -Werror -pedantic ${SRCU_SOURCE_DIR}/tests/install/c/consumer.c
    -o ${WORK_DIR}/pc-c-consumer ${c_flags})
run(${WORK_DIR}/pc-c-consumer)
