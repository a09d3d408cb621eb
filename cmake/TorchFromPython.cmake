# Locate the torch that the running Python imports and expose it as the interface target
# ppt::torch. We ask Python instead of using find_package(Torch) because TorchConfig.cmake of a
# CUDA build of torch insists on a CUDA toolkit even when PPT_CUDA=OFF.

find_package(Python 3.10 REQUIRED COMPONENTS Interpreter Development.Module)

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
"import os, torch
from torch.utils import cpp_extension as ce
print(torch.__version__)
print(torch.version.cuda or '')
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(','.join(ce.include_paths()))
print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"
  OUTPUT_VARIABLE _ppt_torch_out
  ERROR_VARIABLE _ppt_torch_err
  RESULT_VARIABLE _ppt_torch_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _ppt_torch_rc EQUAL 0)
  message(FATAL_ERROR
    "ppt needs PyTorch installed in the Python that builds it (${Python_EXECUTABLE}), "
    "but 'import torch' failed:\n${_ppt_torch_err}\n"
    "Install torch first (CPU-only machines: pip install torch==2.13.0), then build with "
    "pip install --no-build-isolation -e .")
endif()

string(REPLACE "\n" ";" _ppt_torch_lines "${_ppt_torch_out}")
list(GET _ppt_torch_lines 0 PPT_TORCH_VERSION)
list(GET _ppt_torch_lines 1 PPT_TORCH_CUDA_VERSION)
list(GET _ppt_torch_lines 2 PPT_TORCH_CXX11_ABI)
list(GET _ppt_torch_lines 3 _ppt_torch_includes)
list(GET _ppt_torch_lines 4 PPT_TORCH_LIB_DIR)
string(REPLACE "," ";" _ppt_torch_includes "${_ppt_torch_includes}")

find_library(PPT_C10_LIB c10 PATHS "${PPT_TORCH_LIB_DIR}" NO_DEFAULT_PATH REQUIRED)
find_library(PPT_TORCH_CPU_LIB torch_cpu PATHS "${PPT_TORCH_LIB_DIR}" NO_DEFAULT_PATH REQUIRED)

add_library(ppt_torch INTERFACE)
add_library(ppt::torch ALIAS ppt_torch)
target_include_directories(ppt_torch SYSTEM INTERFACE ${_ppt_torch_includes})
target_compile_definitions(ppt_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${PPT_TORCH_CXX11_ABI})
target_link_libraries(ppt_torch INTERFACE "${PPT_C10_LIB}" "${PPT_TORCH_CPU_LIB}")

message(STATUS "ppt: torch ${PPT_TORCH_VERSION} (cuda: '${PPT_TORCH_CUDA_VERSION}') from ${PPT_TORCH_LIB_DIR}")
