// Emulation build: __nv_bfloat16 is defined in cuda_compat.h.
#pragma once
