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

namespace ppt {

// Open-addressing (linear probing) table from packed coordinate keys (>= 0) to row indices,
// stored as two flat arrays of `capacity` slots (a power of two); an empty slot holds
// kEmptyHashKey. The same probing sequence is used by the sequential host insert, the atomic
// device insert and the lookup, so a table built on either side is read the same way.
constexpr int64_t kEmptyHashKey = -1;

PPT_HOST_DEVICE int64_t hash_slot(int64_t key, int64_t capacity) {
  return static_cast<int64_t>(mix_hash64(static_cast<uint64_t>(key)) & static_cast<uint64_t>(capacity - 1));
}

// Smallest power of two >= 2 * entries (load factor <= 0.5 keeps probe chains short).
inline int64_t hash_capacity_for(int64_t entries) {
  int64_t capacity = 16;
  while (capacity < 2 * entries) capacity <<= 1;
  return capacity;
}

// Slot holding `key`, or -1 when absent.
PPT_HOST_DEVICE int64_t hash_find_slot(const int64_t* keys, int64_t capacity, int64_t key) {
  int64_t slot = hash_slot(key, capacity);
  while (true) {
    const int64_t stored = keys[slot];
    if (stored == key) return slot;
    if (stored == kEmptyHashKey) return -1;
    slot = (slot + 1) & (capacity - 1);
  }
}

// Row stored for `key`, or -1 when absent.
PPT_HOST_DEVICE int32_t hash_lookup(const int64_t* keys, const int32_t* values, int64_t capacity,
                                    int64_t key) {
  const int64_t slot = hash_find_slot(keys, capacity, key);
  return slot < 0 ? -1 : values[slot];
}

// Host insert; returns false when `key` is already present (the table is left unchanged).
inline bool hash_insert_host(int64_t* keys, int32_t* values, int64_t capacity, int64_t key,
                             int32_t value) {
  int64_t slot = hash_slot(key, capacity);
  while (true) {
    if (keys[slot] == key) return false;
    if (keys[slot] == kEmptyHashKey) {
      keys[slot] = key;
      values[slot] = value;
      return true;
    }
    slot = (slot + 1) & (capacity - 1);
  }
}

#if defined(__CUDACC__)
// Device insert claiming a slot with atomicCAS; returns false when `key` is already present.
__device__ __forceinline__ bool hash_insert_device(int64_t* keys, int32_t* values, int64_t capacity,
                                                   int64_t key, int32_t value) {
  static_assert(sizeof(unsigned long long) == sizeof(int64_t), "64-bit CAS expected");
  int64_t slot = hash_slot(key, capacity);
  while (true) {
    const unsigned long long previous =
        atomicCAS(reinterpret_cast<unsigned long long*>(keys + slot),
                  static_cast<unsigned long long>(kEmptyHashKey), static_cast<unsigned long long>(key));
    if (previous == static_cast<unsigned long long>(kEmptyHashKey)) {
      values[slot] = value;
      return true;
    }
    if (previous == static_cast<unsigned long long>(key)) return false;
    slot = (slot + 1) & (capacity - 1);
  }
}
#endif

}  // namespace ppt
