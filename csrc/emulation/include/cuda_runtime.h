// Emulation build: see cuda_runtime_api.h beside this file.
#pragma once

#include <cuda_runtime_api.h>
