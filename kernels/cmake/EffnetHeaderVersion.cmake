# effnet_header_version(OUT HEADER MAJOR_MACRO MINOR_MACRO PATCH_MACRO): read
# "#define <MACRO> <number>" three times from HEADER and set OUT to
# "major.minor.patch" in the caller's scope (used by FindCUDNN and FindNCCL).
function(effnet_header_version out header major minor patch)
  set(_parts)
  foreach(_macro ${major} ${minor} ${patch})
    file(STRINGS ${header} _line REGEX "#define ${_macro} [0-9]+")
    string(REGEX MATCH "[0-9]+$" _num "${_line}")
    list(APPEND _parts "${_num}")
  endforeach()
  string(JOIN "." _v ${_parts})
  set(${out} "${_v}" PARENT_SCOPE)
endfunction()
