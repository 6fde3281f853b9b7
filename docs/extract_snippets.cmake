# srcu_extract_snippets(<markdown> <out_dir> <var>)
#
# Writes every fenced code block of <markdown> that opens with a line that is
# exactly ```cpp or ```c (and closes with a line ```) to its own source file,
# <out_dir>/snippet_NN.cc or .c, numbered from 01 in page order. Each file
# starts with a #line directive, so compiler messages name the markdown file
# and its line. Files are rewritten only when their text changes (no
# rebuild on an unrelated edit of the page). Blocks in any other language
# (```sh, ```text, ...) are skipped.
#
# Sets in the caller's scope:
#   <var>                  the snippet names, snippet_01;snippet_02;...
#   <var>_<name>_SOURCE    the path of the generated source
#   <var>_<name>_LANGUAGE  C or CXX
#   <var>_<name>_LINE      the markdown line of the snippet's first code line
#   <var>_<name>_SECTION   the heading the snippet sits under
#   <var>_<name>_MAIN      TRUE when the snippet defines main() (it is run)
#
# docs/CMakeLists.txt includes this at configure time, with the markdown in
# CMAKE_CONFIGURE_DEPENDS, so editing the page re-extracts on the next build.

function(_srcu_write_if_different path content)
  if(EXISTS "${path}")
    file(READ "${path}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${path}" "${content}")
endfunction()

function(srcu_extract_snippets markdown out_dir var)
  file(READ "${markdown}" text)
  string(REPLACE "\r\n" "\n" text "${text}")
  if(NOT text MATCHES "\n$")
    string(APPEND text "\n")
  endif()
  file(MAKE_DIRECTORY "${out_dir}")

  # Lines are cut off with string(FIND)/SUBSTRING rather than read as a list:
  # code is full of ';' and '[', which CMake lists would split or nest on.
  set(names "")
  set(count 0)
  set(line_no 0)
  set(state outside)   # outside | snippet | other (a block not compiled)
  set(section "")
  set(body "")
  while(NOT text STREQUAL "")
    string(FIND "${text}" "\n" eol)
    string(SUBSTRING "${text}" 0 ${eol} line)
    math(EXPR next "${eol} + 1")
    string(SUBSTRING "${text}" ${next} -1 text)
    math(EXPR line_no "${line_no} + 1")

    if(state STREQUAL "outside")
      string(REGEX MATCH "^```([A-Za-z0-9_+-]*)[ \t]*$" fence "${line}")
      if(fence)
        set(lang "${CMAKE_MATCH_1}")
        if(lang STREQUAL "cpp" OR lang STREQUAL "c")
          set(state snippet)
          math(EXPR first_line "${line_no} + 1")
          set(body "")
        else()
          set(state other)
        endif()
      elseif(line MATCHES "^#+[ \t]+(.*)$")
        string(STRIP "${CMAKE_MATCH_1}" section)
      endif()
    elseif(line MATCHES "^```[ \t]*$")
      if(state STREQUAL "snippet")
        math(EXPR count "${count} + 1")
        if(count LESS 10)
          set(name "snippet_0${count}")
        else()
          set(name "snippet_${count}")
        endif()
        if(lang STREQUAL "c")
          set(language C)
          set(source "${out_dir}/${name}.c")
        else()
          set(language CXX)
          set(source "${out_dir}/${name}.cc")
        endif()
        set(has_main FALSE)
        if(body MATCHES "(^|\n)[ \t]*int[ \t]+main[ \t]*\\(")
          set(has_main TRUE)
        endif()
        _srcu_write_if_different("${source}" "#line ${first_line} \"${markdown}\"\n${body}")
        list(APPEND names ${name})
        set(${var}_${name}_SOURCE "${source}" PARENT_SCOPE)
        set(${var}_${name}_LANGUAGE ${language} PARENT_SCOPE)
        set(${var}_${name}_LINE ${first_line} PARENT_SCOPE)
        set(${var}_${name}_SECTION "${section}" PARENT_SCOPE)
        set(${var}_${name}_MAIN ${has_main} PARENT_SCOPE)
      endif()
      set(state outside)
    elseif(state STREQUAL "snippet")
      string(APPEND body "${line}\n")
    endif()
  endwhile()

  if(NOT state STREQUAL "outside")
    message(FATAL_ERROR "${markdown}: a code block is not closed (missing ```)")
  endif()
  set(${var} "${names}" PARENT_SCOPE)
endfunction()
