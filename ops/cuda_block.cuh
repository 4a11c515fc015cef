// Generic CUDA building blocks of the operator kernels (prior.cu, target.cu, detection.cu):
// workspace carving, launch sizes, 64-bit sort keys and block-wide reductions, scans,
// selection and sorting. Nothing here knows a box or an operator. Everything is defined in
// this header (inline, templates or constants), so each .cu compiles on its own and the
// library needs no relocatable device code (-rdc).
#ifndef SSD_OPS_CUDA_BLOCK_CUH_
#define SSD_OPS_CUDA_BLOCK_CUH_

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

namespace ssd {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kElementThreads = 256;  // one-thread-per-item kernels
constexpr int kImageThreads = 1024;   // one block per image: target matching, best-class
constexpr uint64_t kNoKey = ~0ull;    // sorts after every real key

// ---- workspace -------------------------------------------------------------------------

// Hands out 256-byte aligned ranges of one buffer; the same code sizes the workspace and
// finds the arrays in it, so the two cannot disagree.
struct Carver {
  size_t size = 0;
  template <typename T>
  size_t take(size_t count) {
    const size_t at = (size + 255) & ~static_cast<size_t>(255);
    size = at + count * sizeof(T);
    return at;
  }
};

template <typename T>
T* in_workspace(void* ws, size_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(ws) + offset);
}

__host__ __device__ inline int next_pow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

inline unsigned grid_for(long items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

// ---- sort keys -------------------------------------------------------------------------

// Float bits mapped so that unsigned order is float order. -0 becomes +0 first: the CPU
// comparisons treat them as equal and fall through to the index.
__device__ inline uint32_t ascending_bits(float v) {
  const uint32_t u = __float_as_uint(v == 0.f ? 0.f : v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// 64-bit keys with the index in the low half: ascending key order is (value asc, index asc)
// or (value desc, index asc), the orders of the CPU's pair comparisons, and no two keys of
// distinct indices are equal, so selecting "the k smallest keys" is exact.
__device__ inline uint64_t key_value_asc(float v, uint32_t index) {
  return (static_cast<uint64_t>(ascending_bits(v)) << 32) | index;
}
__device__ inline uint64_t key_value_desc(float v, uint32_t index) {
  return (static_cast<uint64_t>(~ascending_bits(v)) << 32) | index;
}
__device__ inline uint32_t key_index(uint64_t key) {
  return static_cast<uint32_t>(key & 0xffffffffu);
}

// ---- block-wide building blocks (blockDim.x a multiple of 32, at most 1024) -------------
// Each ends with a barrier so that its shared memory may be reused by the next call.

__device__ inline int lane_id() { return threadIdx.x & 31; }
__device__ inline int warp_id() { return threadIdx.x >> 5; }
__device__ inline int num_warps() { return blockDim.x >> 5; }

__device__ inline int warp_sum(int v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(kFullMask, v, o);
  return v;
}

// Sum of v over the block, returned to every thread.
__device__ inline int block_sum(int v) {
  __shared__ int partial[32];
  __shared__ int total;
  v = warp_sum(v);
  if (lane_id() == 0) partial[warp_id()] = v;
  __syncthreads();
  if (warp_id() == 0) {
    v = warp_sum(lane_id() < num_warps() ? partial[lane_id()] : 0);
    if (lane_id() == 0) total = v;
  }
  __syncthreads();
  const int result = total;
  __syncthreads();
  return result;
}

__device__ inline int warp_inclusive_scan(int v) {
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(kFullMask, v, o);
    if (lane_id() >= o) v += t;
  }
  return v;
}

// Exclusive prefix sum of v in thread order; *total gets the block's sum. Used for
// order-preserving compaction.
__device__ inline int block_exclusive_scan(int v, int* total) {
  __shared__ int warp_offset[32];
  __shared__ int sum;
  const int inclusive = warp_inclusive_scan(v);
  if (lane_id() == 31) warp_offset[warp_id()] = inclusive;
  __syncthreads();
  if (warp_id() == 0) {
    const int w = lane_id() < num_warps() ? warp_offset[lane_id()] : 0;
    const int w_inclusive = warp_inclusive_scan(w);
    warp_offset[lane_id()] = w_inclusive - w;
    if (lane_id() == 31) sum = w_inclusive;
  }
  __syncthreads();
  const int result = warp_offset[warp_id()] + inclusive - v;
  *total = sum;
  __syncthreads();
  return result;
}

// The k-th smallest (1-based) of the keys for which key_of(i, &key) is true, i in
// [0, count); k must be between 1 and their number. Radix select, 8 bits per pass from the
// top: each pass histograms the keys that share the digits found so far and picks the
// digit holding the k-th one. Exact, as all keys are distinct.
template <typename KeyOf>
__device__ uint64_t block_kth_smallest(int count, int k, KeyOf key_of) {
  __shared__ unsigned hist[256];
  __shared__ uint64_t found_prefix;
  __shared__ int found_k;
  uint64_t prefix = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
      uint64_t key;
      if (!key_of(i, &key)) continue;
      if (shift < 56 && ((key ^ prefix) >> (shift + 8)) != 0) continue;  // other prefix
      atomicAdd(&hist[(key >> shift) & 255], 1u);
    }
    __syncthreads();
    if (warp_id() == 0) {
      // Lane l owns digits [8l, 8l+8); the one lane whose range holds the k-th key walks it.
      int own = 0;
      for (int d = 0; d < 8; ++d) own += static_cast<int>(hist[lane_id() * 8 + d]);
      const int inclusive = warp_inclusive_scan(own);
      int below = inclusive - own;
      if (below < k && k <= inclusive) {
        int d = lane_id() * 8;
        while (below + static_cast<int>(hist[d]) < k) below += static_cast<int>(hist[d++]);
        found_prefix = prefix | (static_cast<uint64_t>(d) << shift);
        found_k = k - below;
      }
    }
    __syncthreads();
    prefix = found_prefix;
    k = found_k;
    __syncthreads();
  }
  return prefix;
}

// Sorts keys[0, n) ascending, n a power of two: a bitonic network whose compare-exchange
// stages are shared by the block's threads, in global memory (n may exceed shared memory).
__device__ inline void block_bitonic_sort(uint64_t* keys, int n) {
  __syncthreads();  // the keys were written by other threads
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = threadIdx.x; t < n / 2; t += blockDim.x) {
        const int lo = (t / stride) * 2 * stride + t % stride;
        const int hi = lo + stride;
        const bool ascending = (lo & size) == 0;
        const uint64_t a = keys[lo], b = keys[hi];
        if ((a > b) == ascending) {
          keys[lo] = b;
          keys[hi] = a;
        }
      }
      __syncthreads();
    }
  }
}

// Compacts the keys for which key_of(i, &key) holds and key <= last into keys[0, selected)
// (any order), pads with kNoKey up to the next power of two and sorts. ``selected`` is
// their known number.
template <typename KeyOf>
__device__ void block_sorted_selection(int count, KeyOf key_of, uint64_t last, int selected,
                                       uint64_t* keys) {
  __shared__ int fill;
  if (threadIdx.x == 0) fill = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    uint64_t key;
    if (key_of(i, &key) && key <= last) keys[atomicAdd(&fill, 1)] = key;
  }
  const int len = next_pow2(selected);
  for (int i = selected + threadIdx.x; i < len; i += blockDim.x) keys[i] = kNoKey;
  block_bitonic_sort(keys, len);
}

}  // namespace ssd

#endif  // SSD_OPS_CUDA_BLOCK_CUH_
