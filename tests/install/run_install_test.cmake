# Installs the build tree into a scratch prefix, then builds and runs two
# consumers against it: a CMake project (find_package(srcu)) and a plain
# compile with the flags from pkg-config (srcu.pc).
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
foreach(f include/srcu/srcu.h include/srcu/version.h lib/libsrcu.a
          lib/cmake/srcu/srcuConfig.cmake lib/cmake/srcu/srcuConfigVersion.cmake
          lib/pkgconfig/srcu.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# 1. CMake package.
run(${CMAKE_COMMAND} -S ${SRCU_SOURCE_DIR}/tests/install -B ${WORK_DIR}/cmake-consumer
    -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-consumer)
run(${WORK_DIR}/cmake-consumer/consumer)

# 2. pkg-config (srcu.pc carries the install prefix it was configured with,
#    so point it at the scratch prefix).
find_program(PKG_CONFIG pkg-config)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config not found (Debian package pkg-config)")
endif()
set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
execute_process(COMMAND ${PKG_CONFIG} --define-variable=prefix=${prefix} --cflags --libs srcu
                OUTPUT_VARIABLE flags RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs srcu failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run(c++ ${SRCU_SOURCE_DIR}/tests/install/consumer.cc -o ${WORK_DIR}/pc-consumer ${flags})
run(${WORK_DIR}/pc-consumer)
