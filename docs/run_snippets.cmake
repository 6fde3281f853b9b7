# The CTest test tutorial_snippets: runs every snippet of docs/tutorial.md that
# has a main() and fails, naming the page line and section, on a snippet that
# was not built, exits non-zero, or runs past its time limit.
#   cmake -DMANIFEST=<build>/docs/snippets/manifest-<config>.cmake -P run_snippets.cmake
# The manifest (written by docs/CMakeLists.txt) sets `snippets` and, for
# each, <name>_EXE, <name>_WHERE and <name>_RUN.
include("${MANIFEST}")

set(limit 30)  # seconds per snippet; each needs well under one
set(failed "")
foreach(name IN LISTS snippets)
  if(NOT ${name}_RUN)
    message(STATUS "compiled   ${name}  ${${name}_WHERE}  (no main(): compile only)")
    continue()
  endif()
  if(NOT EXISTS "${${name}_EXE}")
    message(STATUS "NOT BUILT  ${name}  ${${name}_WHERE}  (build the target tutorial_snippets)")
    list(APPEND failed ${name})
    continue()
  endif()
  execute_process(COMMAND "${${name}_EXE}" TIMEOUT ${limit}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc STREQUAL "0")
    message(STATUS "passed     ${name}  ${${name}_WHERE}")
  else()
    message(STATUS "FAILED     ${name}  ${${name}_WHERE}: exit ${rc} (limit ${limit} s)\n"
                   "--- stdout\n${out}--- stderr\n${err}---")
    list(APPEND failed ${name})
  endif()
endforeach()

if(failed)
  message(FATAL_ERROR "tutorial snippets failed: ${failed}")
endif()
