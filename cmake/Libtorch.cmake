# libtorch for CMake builds: asks cmake/find-libtorch.mjs (the single discovery logic, shared with
# binding.gyp) for the Torch CMake package, then imports it with find_package(Torch).
# Defines: TORCH_LIBRARIES, TORCH_INCLUDE_DIRS, TORCH_CXX_FLAGS, EMLAB_TORCH_CUDA, EMLAB_TORCH_SOURCE.
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
string(JSON Torch_DIR GET "${_emlab_torch_json}" torchDir)
string(JSON EMLAB_TORCH_SOURCE GET "${_emlab_torch_json}" source)
string(JSON EMLAB_TORCH_CUDA GET "${_emlab_torch_json}" cuda)
message(STATUS "emlab: libtorch from ${EMLAB_TORCH_SOURCE} (Torch_DIR=${Torch_DIR}, cuda=${EMLAB_TORCH_CUDA})")
set(Torch_DIR "${Torch_DIR}" CACHE PATH "Torch CMake package directory" FORCE)
find_package(Torch REQUIRED)
