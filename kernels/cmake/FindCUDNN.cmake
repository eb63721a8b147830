# FindCUDNN: cuDNN (cudnn.h, libcudnn) next to the CUDA toolkit or under
# CUDNN_ROOT / $CUDNN_HOME (Spack: cudnn; NVIDIA's Debian repo: libcudnn9-dev-cuda-*).
# Defines CUDNN_FOUND, CUDNN_VERSION, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY and the
# imported target CUDNN::cudnn.
include(${CMAKE_CURRENT_LIST_DIR}/EffnetHeaderVersion.cmake)
find_path(CUDNN_INCLUDE_DIR NAMES cudnn.h
  HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} $ENV{CUDNN_HOME} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
  PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn
  HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} $ENV{CUDNN_HOME} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
  PATH_SUFFIXES lib64 lib)
if(CUDNN_INCLUDE_DIR)
  set(_v ${CUDNN_INCLUDE_DIR}/cudnn_version.h)
  if(NOT EXISTS ${_v})
    set(_v ${CUDNN_INCLUDE_DIR}/cudnn.h)
  endif()
  effnet_header_version(CUDNN_VERSION ${_v} CUDNN_MAJOR CUDNN_MINOR CUDNN_PATCHLEVEL)
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR VERSION_VAR CUDNN_VERSION)
if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES IMPORTED_LOCATION ${CUDNN_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${CUDNN_INCLUDE_DIR})
endif()
