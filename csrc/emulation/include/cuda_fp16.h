// Emulation build: __half and its conversions come from HIP-CPU (through cuda_compat.h).
#pragma once
