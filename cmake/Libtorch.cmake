# libtorch for CMake builds: asks cmake/find-libtorch.mjs (the single discovery logic, shared with
# binding.gyp) for the libtorch install. A CPU libtorch is imported with find_package(Torch). A CUDA
# libtorch is assembled from the same description instead: its TorchConfig demands a full CUDA toolkit
# with nvcc, while emlab compiles no kernels and needs only the CUDA runtime headers (from $CUDA_HOME
# or PyPI's NVIDIA packages beside a pip torch).
# Defines: TORCH_LIBRARIES, TORCH_LIBRARY, TORCH_INCLUDE_DIRS, TORCH_CXX_FLAGS, EMLAB_TORCH_CUDA,
# EMLAB_TORCH_SOURCE, EMLAB_TORCH_VERSION.
find_program(EMLAB_NODE NAMES node nodejs REQUIRED)
execute_process(
  COMMAND "${EMLAB_NODE}" "${CMAKE_CURRENT_LIST_DIR}/find-libtorch.mjs"
  OUTPUT_VARIABLE _emlab_torch_json
  ERROR_VARIABLE _emlab_torch_error
  RESULT_VARIABLE _emlab_torch_rc)
if(NOT _emlab_torch_rc EQUAL 0)
  message(FATAL_ERROR "${_emlab_torch_error}")
endif()
file(WRITE "${CMAKE_BINARY_DIR}/libtorch.json" "${_emlab_torch_json}")
string(JSON _emlab_torch_dir GET "${_emlab_torch_json}" torchDir)
string(JSON EMLAB_TORCH_SOURCE GET "${_emlab_torch_json}" source)
string(JSON EMLAB_TORCH_CUDA GET "${_emlab_torch_json}" cuda)
string(JSON EMLAB_TORCH_VERSION GET "${_emlab_torch_json}" version)
message(STATUS "emlab: libtorch ${EMLAB_TORCH_VERSION} from ${EMLAB_TORCH_SOURCE} (${_emlab_torch_dir}, cuda=${EMLAB_TORCH_CUDA})")

# Reads the JSON list FIELD into the CMake list OUT.
function(_emlab_json_list field out)
  string(JSON _count LENGTH "${_emlab_torch_json}" ${field})
  set(_items "")
  if(_count GREATER 0)
    math(EXPR _last "${_count} - 1")
    foreach(_index RANGE ${_last})
      string(JSON _item GET "${_emlab_torch_json}" ${field} ${_index})
      list(APPEND _items "${_item}")
    endforeach()
  endif()
  set(${out} "${_items}" PARENT_SCOPE)
endfunction()

if(EMLAB_TORCH_CUDA)
  _emlab_json_list(cudaIncludeDirs _emlab_cuda_includes)
  if(NOT _emlab_cuda_includes)
    message(FATAL_ERROR "emlab: ${EMLAB_TORCH_SOURCE} is a CUDA libtorch but no cuda_runtime_api.h was found: set CUDA_HOME to a "
                        "CUDA toolkit, or install PyPI's CUDA runtime headers beside torch (scripts/peer-env.sh does).")
  endif()
  _emlab_json_list(includeDirs TORCH_INCLUDE_DIRS)
  _emlab_json_list(libraries _emlab_torch_names)
  string(JSON _emlab_torch_libdir GET "${_emlab_torch_json}" libDir)
  string(JSON _emlab_torch_abi GET "${_emlab_torch_json}" cxx11Abi)
  set(TORCH_LIBRARIES "")
  foreach(_name ${_emlab_torch_names})
    list(APPEND TORCH_LIBRARIES "${_emlab_torch_libdir}/lib${_name}.so")
  endforeach()
  set(TORCH_LIBRARY "${_emlab_torch_libdir}/libtorch.so")
  set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${_emlab_torch_abi}")
else()
  set(Torch_DIR "${_emlab_torch_dir}" CACHE PATH "Torch CMake package directory" FORCE)
  find_package(Torch REQUIRED)
endif()
