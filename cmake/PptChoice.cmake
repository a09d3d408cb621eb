# ppt_choice(NAME DEFAULT DOC CHOICE...): a cache variable NAME that an environment variable of the
# same name overrides (so `PPT_X=ON pip install ...` works), upper-cased and checked against the
# choices; the result is set in the caller's scope.
function(ppt_choice name default doc)
  set(${name} "${default}" CACHE STRING "${doc}")
  set_property(CACHE ${name} PROPERTY STRINGS ${ARGN})
  set(value "${${name}}")
  if(DEFINED ENV{${name}} AND NOT "$ENV{${name}}" STREQUAL "")
    set(value "$ENV{${name}}")
  endif()
  string(TOUPPER "${value}" value)
  if(NOT value IN_LIST ARGN)
    string(REPLACE ";" ", " choices "${ARGN}")
    message(FATAL_ERROR "${name} must be one of ${choices}, got '${value}'")
  endif()
  set(${name} "${value}" PARENT_SCOPE)
endfunction()
