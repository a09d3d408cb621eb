# The emulation build of ppt's CUDA kernels (PPT_EMULATION=ON, env var or CMake define): a second
# extension module, ppt._C_emulated, that compiles the unmodified csrc/**/*_cuda.cu kernels and
# their *_cuda.cpp glue with the host compiler against HIP-CPU (third_party/hip-cpu), so that the
# CUDA code paths run on CPU tensors under ppt.testing.emulated_cuda(). It needs neither nvcc nor
# a CUDA torch, and leaves the real CUDA build untouched.
#   PPT_EMULATION_SANITIZE=ON  also instruments the module with AddressSanitizer and UBSan (run it
#                              with libasan preloaded: .ci/emulated_suite.sh sanitizers).

include(PptChoice)
ppt_choice(PPT_EMULATION OFF "Build ppt._C_emulated, the CPU emulation of the CUDA kernels: ON or OFF" ON OFF)
option(PPT_EMULATION_SANITIZE "Instrument ppt._C_emulated with AddressSanitizer and UBSan" OFF)

if(PPT_EMULATION)
  # Each CUDA source is compiled through a generated C++ file that includes the emulation header
  # first and then the source itself: no source of ppt is copied, and compiler diagnostics and
  # sanitizer reports name the original .cu/.cpp lines.
  file(GLOB _ppt_emulated_kernels CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/csrc/*/*_cuda.cu")
  file(GLOB _ppt_emulated_glue CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/csrc/*/*_cuda.cpp")
  # The host-side argument checks and plans the glue calls (also compiled into _C).
  file(GLOB _ppt_emulated_helpers CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/csrc/*/*_checks.cpp"
       "${CMAKE_CURRENT_SOURCE_DIR}/csrc/*/*_plan.cpp")
  set(_ppt_emulated_sources "${CMAKE_CURRENT_SOURCE_DIR}/csrc/emulation/runtime.cpp" ${_ppt_emulated_helpers})
  foreach(_source IN LISTS _ppt_emulated_kernels _ppt_emulated_glue)
    file(RELATIVE_PATH _relative "${CMAKE_CURRENT_SOURCE_DIR}/csrc" "${_source}")
    string(REPLACE "/" "_" _wrapper_name "${_relative}")
    if(_source MATCHES "\\.cu$")
      set(_prelude "emulation/cuda_compat.h")
    else()
      set(_prelude "emulation/glue_prelude.h")
    endif()
    set(_wrapper "${CMAKE_CURRENT_BINARY_DIR}/emulation/${_wrapper_name}.cpp")
    file(CONFIGURE OUTPUT "${_wrapper}" CONTENT "#include \"${_prelude}\"\n#include \"${_source}\"\n" @ONLY)
    list(APPEND _ppt_emulated_sources "${_wrapper}")
  endforeach()

  Python_add_library(_C_emulated MODULE WITH_SOABI ${_ppt_emulated_sources})
  # csrc/emulation/include first: its cuda_runtime_api.h, cub/ and c10/cuda/ headers stand in for
  # the CUDA toolkit's and torch's CUDA headers.
  target_include_directories(_C_emulated BEFORE PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/csrc/emulation/include")
  target_include_directories(_C_emulated PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/csrc/include"
                             "${CMAKE_CURRENT_SOURCE_DIR}/csrc")
  target_include_directories(_C_emulated SYSTEM PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/third_party/hip-cpu/include")
  target_link_libraries(_C_emulated PRIVATE ppt::torch)
  # -ffp-contract=off: the kernels' _rn intrinsics are plain operators here and must not fuse.
  # -fno-gnu-unique / hidden visibility: the helpers are also in _C; neither module may bind the
  # other's copies.
  target_compile_options(_C_emulated PRIVATE -O2 -ffp-contract=off -fno-gnu-unique -fvisibility=hidden
                         -fvisibility-inlines-hidden -Wall -Wno-unknown-pragmas -Wno-attributes
                         # CUDA idioms g++ warns about (unsigned threadIdx vs int bounds, constexpr
                         # template arguments read only inside nested lambdas).
                         -Wno-sign-compare -Wno-unused-but-set-variable)
  set_target_properties(_C_emulated PROPERTIES INSTALL_RPATH "$ORIGIN/../torch/lib;${PPT_TORCH_LIB_DIR}")
  if(PPT_EMULATION_SANITIZE)
    # Larger fiber stacks: sanitizer frames carry redzones.
    target_compile_definitions(_C_emulated PRIVATE HIP_CPU_FIBER_STACK_BYTES=1048576)
    # -g1: line tables for the reports (full debug information only slows the build).
    target_compile_options(_C_emulated PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=undefined
                           -fno-omit-frame-pointer -g1)
    target_link_options(_C_emulated PRIVATE -fsanitize=address,undefined)
  endif()
  install(TARGETS _C_emulated LIBRARY DESTINATION ppt)
  message(STATUS "ppt: building the CUDA emulation module _C_emulated (sanitizers: ${PPT_EMULATION_SANITIZE})")
endif()
