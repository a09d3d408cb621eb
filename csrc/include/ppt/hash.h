// Hashing of packed integer coordinates, shared by host and device hash tables.
#pragma once

#include "ppt/common.h"

namespace ppt {

// 64-bit finalizer (MurmurHash3 fmix64): spreads packed keys, whose low bits are nearly
// sequential along z, over an open-addressing table.
PPT_HOST_DEVICE uint64_t mix_hash64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace ppt
