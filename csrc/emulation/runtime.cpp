// The emulation build's runtime and its Python module `ppt._C_emulated`: launch checks, launch
// counts, device faults, the emulated CUDA runtime calls, and switching ppt's CPU kernels to the
// CUDA glue + kernels (ppt.testing.emulated_cuda is the public face of this module).
#include <Python.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "emulation/glue_prelude.h"

// After torch's headers: HIP-CPU's macros (__shared__, __device__, ...) must not reach them.
#include <hip/hip_runtime.h>

namespace ppt::emulation {
namespace {

struct LaunchState {
  cudaError_t error = cudaSuccess;           // cleared by cudaGetLastError
  cudaError_t reported_error = cudaSuccess;  // kept, so that the message can follow the error
  std::string message;
  std::string fault;  // first device fault of the running launch
};
thread_local LaunchState launch_state;

std::mutex counts_mutex;
std::map<std::string, int64_t> launch_counts;

std::vector<RegisterImpls>& cuda_registrations() {
  static std::vector<RegisterImpls> registrations;
  return registrations;
}

// The active override of the ppt CPU kernels (null when emulation is off), and how many
// emulated_cuda() contexts hold it.
std::unique_ptr<torch::Library> active_library;
int active_holders = 0;

void fail_launch(cudaError_t error, std::string message) {
  launch_state.error = launch_state.reported_error = error;
  launch_state.message = std::move(message);
}

// "knn_kernel<T>" and "(accumulate_offset_kernel<T, Term>)" count as knn_kernel and
// accumulate_offset_kernel: one entry per __global__ function.
std::string kernel_name(const char* expression) {
  std::string name(expression);
  if (!name.empty() && name.front() == '(') name.erase(0, 1);
  const size_t end = name.find_first_of("<) ");
  return end == std::string::npos ? name : name.substr(0, end);
}

std::string dims(const dim3& d) {
  return "(" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + ")";
}

}  // namespace

bool add_cuda_registration(RegisterImpls register_impls) {
  cuda_registrations().push_back(register_impls);
  return true;
}

void device_fault(const char* message) {
  if (launch_state.fault.empty()) launch_state.fault = message;
}

bool accept_launch(const char* kernel, const dim3& grid, const dim3& block, size_t dynamic_shared_bytes) {
  // The limits of every GPU ppt builds for (sm_80, sm_90) without opt-in attributes.
  constexpr uint64_t kMaxThreads = 1024, kMaxGridX = 2147483647, kMaxGridYZ = 65535;
  constexpr size_t kMaxDynamicShared = 48 * 1024;
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  std::string problem;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) problem = "an empty grid " + dims(grid);
  else if (block.x == 0 || block.y == 0 || block.z == 0) problem = "an empty block " + dims(block);
  else if (threads > kMaxThreads || block.z > 64) problem = "block " + dims(block) + " exceeds 1024 threads or z > 64";
  else if (grid.x > kMaxGridX || grid.y > kMaxGridYZ || grid.z > kMaxGridYZ) problem = "grid " + dims(grid) + " exceeds (2^31 - 1, 65535, 65535)";
  else if (dynamic_shared_bytes > kMaxDynamicShared) problem = std::to_string(dynamic_shared_bytes) + " bytes of dynamic shared memory exceed 48 KiB";
  if (problem.empty()) return true;
  fail_launch(cudaErrorInvalidConfiguration, kernel_name(kernel) + " launched with " + problem);
  return false;
}

void count_launch(const char* kernel) {
  launch_state.fault.clear();
  const std::lock_guard<std::mutex> lock(counts_mutex);
  ++launch_counts[kernel_name(kernel)];
}

void finish_launch(const char* kernel) {
  if (launch_state.fault.empty()) return;
  fail_launch(cudaErrorLaunchFailure, kernel_name(kernel) + ": " + launch_state.fault);
  launch_state.fault.clear();
}

}  // namespace ppt::emulation

cudaError_t cudaGetLastError() {
  const cudaError_t error = ppt::emulation::launch_state.error;
  ppt::emulation::launch_state.error = cudaSuccess;
  return error;
}

const char* cudaGetErrorString(cudaError_t error) {
  const char* description = "unknown error";
  switch (error) {
    case cudaSuccess: description = "no error"; break;
    case cudaErrorInvalidValue: description = "invalid argument"; break;
    case cudaErrorInvalidConfiguration: description = "invalid configuration argument"; break;
    case cudaErrorLaunchFailure: description = "unspecified launch failure"; break;
  }
  auto& state = ppt::emulation::launch_state;
  if (error != state.reported_error || state.message.empty()) return description;
  thread_local std::string detailed;
  detailed = std::string(description) + " (" + state.message + ")";
  return detailed.c_str();
}

namespace {

using ppt::emulation::active_holders;
using ppt::emulation::active_library;

// Registering over the CPU kernels of _C is the point, so torch's override warning is dropped.
class DropOverrideWarnings final : public c10::WarningHandler {
 public:
  explicit DropOverrideWarnings(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("Overriding a previously registered kernel") == std::string::npos) next_->process(warning);
  }

 private:
  c10::WarningHandler* next_;
};

PyObject* enable(PyObject*, PyObject*) {
  try {
    if (active_holders++ == 0) {
      DropOverrideWarnings handler(c10::WarningUtils::get_warning_handler());
      const c10::WarningUtils::WarningHandlerGuard guard(&handler);
      auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "ppt", c10::DispatchKey::CPU,
                                                      __FILE__, __LINE__);
      for (const auto register_impls : ppt::emulation::cuda_registrations()) register_impls(*library);
      active_library = std::move(library);
    }
  } catch (const std::exception& error) {
    --active_holders;
    PyErr_SetString(PyExc_RuntimeError, error.what());
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* disable(PyObject*, PyObject*) {
  if (active_holders > 0 && --active_holders == 0) active_library.reset();  // restores _C's CPU kernels
  Py_RETURN_NONE;
}

PyObject* active(PyObject*, PyObject*) { return PyBool_FromLong(active_holders > 0); }

PyObject* launch_counts(PyObject*, PyObject*) {
  PyObject* counts = PyDict_New();
  if (!counts) return nullptr;
  const std::lock_guard<std::mutex> lock(ppt::emulation::counts_mutex);
  for (const auto& [name, count] : ppt::emulation::launch_counts) {
    PyObject* value = PyLong_FromLongLong(count);
    if (!value || PyDict_SetItemString(counts, name.c_str(), value) < 0) {
      Py_XDECREF(value);
      Py_DECREF(counts);
      return nullptr;
    }
    Py_DECREF(value);
  }
  return counts;
}

PyObject* set_reverse_thread_order(PyObject*, PyObject* flag) {
  const int reverse = PyObject_IsTrue(flag);
  if (reverse < 0) return nullptr;
  hip::detail::reverse_thread_order = reverse != 0;
  Py_RETURN_NONE;
}

PyObject* reverse_thread_order(PyObject*, PyObject*) { return PyBool_FromLong(hip::detail::reverse_thread_order); }

PyMethodDef methods[] = {
    {"enable", enable, METH_NOARGS, "Run ppt's ops on CPU tensors through the CUDA glue and kernels (nests)."},
    {"disable", disable, METH_NOARGS, "Undo one enable(); the last one restores the CPU kernels."},
    {"active", active, METH_NOARGS, "Whether an enable() is in force."},
    {"launch_counts", launch_counts, METH_NOARGS, "Launches per __global__ kernel since the module was loaded."},
    {"set_reverse_thread_order", set_reverse_thread_order, METH_O,
     "Run each block's threads from the last to the first between barriers (True) or in order (False)."},
    {"reverse_thread_order", reverse_thread_order, METH_NOARGS, "Whether threads run in reverse order."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C_emulated",
                      "ppt's CUDA kernels on CPU (the emulation build); use ppt.testing.emulated_cuda().", -1,
                      methods};

}  // namespace

PyMODINIT_FUNC PyInit__C_emulated() { return PyModule_Create(&module); }
