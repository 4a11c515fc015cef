// CUDA launchers of the SSD operators (declared in ssd_ops.h). Every box formula comes from
// ssd_box.h, shared with the CPU code; this file only schedules the work of prior.cc,
// target.cc and detection.cc on the GPU and must give their results, ties included:
//   prior:      one thread per anchor.
//   target:     per (image, anchor) statistics, then one block per image for the
//               sequential parts (bipartite matching, hard negative mining), then one
//               thread per (image, anchor) for the outputs.
//   detection:  best-class mode, one block per image; per-class mode, decoding per anchor,
//               one block per (image, class) for top-k and NMS, one block per image to merge.
// Launchers never synchronize and copy no data between host and device: their host-side
// parameters travel as kernel arguments.
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

#include "ssd_box.h"
#include "ssd_ops.h"

namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kElementThreads = 256;  // one-thread-per-item kernels
constexpr int kImageThreads = 1024;   // one block per image: target matching, best-class
constexpr int kClassThreads = 256;    // one block per (image, class): top-k and NMS
constexpr int kMergeThreads = 512;    // one block per image: per-class merge
constexpr int kMaxPriorValues = 32;   // sizes / ratios passed by value to the prior kernel
constexpr int kNegative = -2;         // match[] of a mined negative (-1: not matched)
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

__host__ __device__ int next_pow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

unsigned grid_for(long items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

// ---- sort keys -------------------------------------------------------------------------

// Float bits mapped so that unsigned order is float order. -0 becomes +0 first: the CPU
// comparisons treat them as equal and fall through to the index.
__device__ uint32_t ascending_bits(float v) {
  const uint32_t u = __float_as_uint(v == 0.f ? 0.f : v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// 64-bit keys with the index in the low half: ascending key order is (value asc, index asc)
// or (value desc, index asc), the orders of the CPU's pair comparisons, and no two keys of
// distinct indices are equal, so selecting "the k smallest keys" is exact.
__device__ uint64_t key_value_asc(float v, uint32_t index) {
  return (static_cast<uint64_t>(ascending_bits(v)) << 32) | index;
}
__device__ uint64_t key_value_desc(float v, uint32_t index) {
  return (static_cast<uint64_t>(~ascending_bits(v)) << 32) | index;
}
__device__ uint32_t key_index(uint64_t key) { return static_cast<uint32_t>(key & 0xffffffffu); }

// ---- block-wide building blocks (blockDim.x a multiple of 32, at most 1024) -------------
// Each ends with a barrier so that its shared memory may be reused by the next call.

__device__ int lane_id() { return threadIdx.x & 31; }
__device__ int warp_id() { return threadIdx.x >> 5; }
__device__ int num_warps() { return blockDim.x >> 5; }

__device__ int warp_sum(int v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(kFullMask, v, o);
  return v;
}

// Sum of v over the block, returned to every thread.
__device__ int block_sum(int v) {
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

__device__ int warp_inclusive_scan(int v) {
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(kFullMask, v, o);
    if (lane_id() >= o) v += t;
  }
  return v;
}

// Exclusive prefix sum of v in thread order; *total gets the block's sum. Used for
// order-preserving compaction.
__device__ int block_exclusive_scan(int v, int* total) {
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

// A candidate (anchor, ground truth) pair of the bipartite matching; anchor -1 is "none".
struct Pair {
  float iou;
  int anchor, gt;
};

// Order of the CPU's greedy matching: higher IoU, then lower anchor, then lower ground
// truth. A strict total order, so any reduction tree finds the same winner.
__device__ bool ranks_before(const Pair& a, const Pair& b) {
  if (a.anchor < 0) return false;
  if (b.anchor < 0) return true;
  if (a.iou != b.iou) return a.iou > b.iou;
  if (a.anchor != b.anchor) return a.anchor < b.anchor;
  return a.gt < b.gt;
}

// Best pair of the warp, in lane 0.
__device__ Pair warp_best(Pair p) {
  for (int o = 16; o > 0; o >>= 1) {
    const Pair other{__shfl_down_sync(kFullMask, p.iou, o),
                     __shfl_down_sync(kFullMask, p.anchor, o),
                     __shfl_down_sync(kFullMask, p.gt, o)};
    if (ranks_before(other, p)) p = other;
  }
  return p;
}

// Best pair of the block, returned to every thread.
__device__ Pair block_best(Pair p) {
  __shared__ Pair partial[32];
  __shared__ Pair best;
  p = warp_best(p);
  if (lane_id() == 0) partial[warp_id()] = p;
  __syncthreads();
  if (warp_id() == 0) {
    p = warp_best(lane_id() < num_warps() ? partial[lane_id()] : Pair{0.f, -1, -1});
    if (lane_id() == 0) best = p;
  }
  __syncthreads();
  const Pair result = best;
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
__device__ void block_bitonic_sort(uint64_t* keys, int n) {
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

// ---- prior -----------------------------------------------------------------------------

struct PriorArgs {
  int height, width, per_cell, num_sizes, clip;
  float step_y, step_x, offset_y, offset_x, aspect;
  float sizes[kMaxPriorValues], ratios[kMaxPriorValues];
};

__global__ void prior_kernel(PriorArgs a, float* out) {
  const long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long>(a.height) * a.width * a.per_cell) return;
  const int k = static_cast<int>(i % a.per_cell);
  const long cell = i / a.per_cell;
  const int r = static_cast<int>(cell / a.width), c = static_cast<int>(cell % a.width);
  const float cy = (r + a.offset_y) * a.step_y;
  const float cx = (c + a.offset_x) * a.step_x;
  ssd::prior_box(cx, cy, k, a.sizes, a.num_sizes, a.ratios, a.aspect, a.clip, out + i * 4);
}

// ---- target ----------------------------------------------------------------------------

struct TargetLayout {
  size_t best_iou, best_gt, bg_prob, match;  // (B, N)
  size_t gts, col_iou, col_anchor, done;     // (B, M): per valid ground truth
  size_t bytes;
};

TargetLayout target_layout(const SsdTargetParams* p) {
  const size_t bn = static_cast<size_t>(p->batch) * p->num_anchors;
  const size_t bm = static_cast<size_t>(p->batch) * p->num_labels;
  Carver c;
  TargetLayout l;
  l.best_iou = c.take<float>(bn);
  l.best_gt = c.take<int>(bn);
  l.bg_prob = c.take<float>(bn);
  l.match = c.take<int>(bn);
  l.gts = c.take<int>(bm);
  l.col_iou = c.take<float>(bm);
  l.col_anchor = c.take<int>(bm);
  l.done = c.take<int>(bm);
  l.bytes = c.size;
  return l;
}

struct TargetWs {
  float* best_iou;  // best IoU of each anchor over the valid ground truths (0 if none)
  int* best_gt;     // its label row, -1 if none
  float* bg_prob;   // background probability (only when mining)
  int* match;       // label row of a positive, kNegative, or -1
  int* gts;         // label rows of the valid ground truths, in order
  float* col_iou;   // bipartite matching: best free anchor of each ground truth ...
  int* col_anchor;  // ... (-1: none left)
  int* done;        // ground truth already matched
};

TargetWs target_ws(const SsdTargetParams* p, void* ws) {
  const TargetLayout l = target_layout(p);
  return TargetWs{in_workspace<float>(ws, l.best_iou), in_workspace<int>(ws, l.best_gt),
                  in_workspace<float>(ws, l.bg_prob), in_workspace<int>(ws, l.match),
                  in_workspace<int>(ws, l.gts), in_workspace<float>(ws, l.col_iou),
                  in_workspace<int>(ws, l.col_anchor), in_workspace<int>(ws, l.done)};
}

// Per (image, anchor): the best ground truth (threshold matching) and the background
// probability (mining), computed once here rather than inside the per-image blocks.
__global__ void target_anchor_kernel(SsdTargetParams p, const float* anchors,
                                     const float* labels, const float* cls_preds, TargetWs ws) {
  const long n = p.num_anchors;
  const long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * n) return;
  const long b = i / n;
  const int j = static_cast<int>(i % n);
  float iou;
  const int gt = ssd::best_gt(anchors + j * 4, labels + b * p.num_labels * p.label_width,
                              p.num_labels, p.label_width, &iou);
  ws.best_gt[i] = gt;
  ws.best_iou[i] = gt < 0 ? 0.f : iou;  // no ground truth at all: the CPU stores 0
  ws.match[i] = -1;
  if (p.negative_mining_ratio > 0) {
    ws.bg_prob[i] = ssd::background_prob(cls_preds + b * p.num_classes * n + j, p.num_classes,
                                         static_cast<int>(n));
  }
}

// Label rows of the valid ground truths, in row order, into gts; returns their number.
__device__ int collect_valid_gts(const float* labels, int rows, int width, int* gts) {
  __shared__ int count;
  if (warp_id() == 0) {
    int base = 0;
    for (int r0 = 0; r0 < rows; r0 += 32) {
      const int r = r0 + lane_id();
      const bool valid = r < rows && ssd::valid_gt(labels + static_cast<long>(r) * width);
      const unsigned mask = __ballot_sync(kFullMask, valid);
      if (valid) gts[base + __popc(mask & ((1u << lane_id()) - 1))] = r;
      base += __popc(mask);
    }
    if (lane_id() == 0) count = base;
  }
  __syncthreads();
  const int result = count;
  __syncthreads();
  return result;
}

// Best free anchor of ground truth k (target.cc's best_free_anchor): the highest IoU above
// 1e-6, ties to the lower anchor; anchor -1 when none is left.
__device__ Pair best_free_anchor(const float* box, int k, const float* anchors,
                                 const int* match, int n) {
  Pair best{0.f, -1, k};
  for (int j = threadIdx.x; j < n; j += blockDim.x) {  // ascending j: ">" keeps the lowest
    if (match[j] >= 0) continue;
    const float v = ssd::iou(anchors + j * 4, box);
    if (v > 1e-6f && (best.anchor < 0 || v > best.iou)) best = Pair{v, j, k};
  }
  return block_best(best);
}

// Greedy bipartite matching (target.cc's bipartite_match): repeatedly the best pair among
// unmatched anchors and ground truths. Like the CPU, keeps each ground truth's best free
// anchor and recomputes it only when that anchor gets taken. Returns the matches made.
__device__ int bipartite_match(const float* anchors, int n, const float* labels, int width,
                               const int* gts, int g, const TargetWs& ws, long gt_base,
                               int* match) {
  float* col_iou = ws.col_iou + gt_base;
  int* col_anchor = ws.col_anchor + gt_base;
  int* done = ws.done + gt_base;
  for (int k = 0; k < g; ++k) {
    const Pair best = best_free_anchor(labels + gts[k] * width + 1, k, anchors, match, n);
    if (threadIdx.x == 0) {
      col_iou[k] = best.iou;
      col_anchor[k] = best.anchor;
      done[k] = 0;
    }
  }
  __syncthreads();
  __shared__ int taken;  // anchor matched in this step, -1 when no pair is left
  int matched = 0;
  for (int step = 0; step < g; ++step) {
    if (warp_id() == 0) {  // ground truths are few: one warp picks among them
      Pair best{0.f, -1, -1};
      for (int k = lane_id(); k < g; k += 32) {
        const Pair cand{col_iou[k], col_anchor[k], k};
        if (!done[k] && ranks_before(cand, best)) best = cand;
      }
      best = warp_best(best);
      if (lane_id() == 0) {
        taken = best.anchor;
        if (best.anchor >= 0) {
          match[best.anchor] = gts[best.gt];
          done[best.gt] = 1;
        }
      }
    }
    __syncthreads();
    const int anchor = taken;
    if (anchor < 0) break;
    ++matched;
    // Ground truths whose best free anchor was just taken look for another. The tests read
    // values settled before the last barrier, so every thread takes the same branches.
    for (int k = 0; k < g; ++k) {
      if (done[k] || col_anchor[k] != anchor) continue;
      const Pair best = best_free_anchor(labels + gts[k] * width + 1, k, anchors, match, n);
      if (threadIdx.x == 0) {
        col_iou[k] = best.iou;
        col_anchor[k] = best.anchor;
      }
    }
    __syncthreads();
  }
  return matched;
}

// Anchors left by the bipartite step become positive with their best ground truth above
// the overlap threshold (target.cc's threshold_match). Returns the number added.
__device__ int threshold_match(const SsdTargetParams& p, int n, const int* best_gt,
                               const float* best_iou, int* match) {
  int added = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    if (match[j] < 0 && best_gt[j] >= 0 && p.overlap_threshold > 0 &&
        best_iou[j] > p.overlap_threshold) {
      match[j] = best_gt[j];
      ++added;
    }
  }
  return block_sum(added);
}

// Hard negative mining (target.cc's mine_negatives): marks kNegative the ``wanted``
// smallest (background probability, anchor) among the unmatched anchors below the mining
// IoU, or every unmatched anchor when the ratio is not positive.
__device__ void mine_negatives(const SsdTargetParams& p, int n, int positives,
                               const float* best_iou, const float* bg_prob, int* match) {
  if (p.negative_mining_ratio <= 0) {
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      if (match[j] < 0) match[j] = kNegative;
    }
    return;
  }
  int wanted = static_cast<int>(positives * p.negative_mining_ratio);
  wanted = min(wanted, n - positives);
  wanted = max(wanted, p.minimum_negative_samples);
  if (wanted <= 0) return;
  // Each thread reads and writes only its own anchors (the same j stride throughout).
  auto key_of = [&](int j, uint64_t* key) {
    if (match[j] >= 0 || !(best_iou[j] < p.negative_mining_thresh)) return false;
    *key = key_value_asc(bg_prob[j], static_cast<uint32_t>(j));
    return true;
  };
  int candidates = 0;
  uint64_t key;
  for (int j = threadIdx.x; j < n; j += blockDim.x) candidates += key_of(j, &key);
  wanted = min(wanted, block_sum(candidates));
  if (wanted <= 0) return;
  const uint64_t last = block_kth_smallest(n, wanted, key_of);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    if (key_of(j, &key) && key <= last) match[j] = kNegative;
  }
}

// One block per image: the sequential parts of the target computation.
__global__ void __launch_bounds__(kImageThreads)
target_match_kernel(SsdTargetParams p, const float* anchors, const float* labels, TargetWs ws) {
  const int b = blockIdx.x, n = p.num_anchors;
  const long anchor_base = static_cast<long>(b) * n;
  const long gt_base = static_cast<long>(b) * p.num_labels;
  const float* image_labels = labels + gt_base * p.label_width;
  int* match = ws.match + anchor_base;
  int* gts = ws.gts + gt_base;
  const int g = collect_valid_gts(image_labels, p.num_labels, p.label_width, gts);
  int positives = bipartite_match(anchors, n, image_labels, p.label_width, gts, g, ws, gt_base,
                                  match);
  __syncthreads();  // matches of the bipartite step are read by every thread below
  positives += threshold_match(p, n, ws.best_gt + anchor_base, ws.best_iou + anchor_base, match);
  mine_negatives(p, n, positives, ws.best_iou + anchor_base, ws.bg_prob + anchor_base, match);
}

// Per (image, anchor): the outputs, as target.cc's target_image writes them.
__global__ void target_output_kernel(SsdTargetParams p, const float* anchors,
                                     const float* labels, const int* match, float* loc_target,
                                     float* loc_mask, float* cls_target) {
  const long n = p.num_anchors;
  const long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * n) return;
  const long b = i / n;
  const int j = static_cast<int>(i % n);
  float* lt = loc_target + i * 4;
  float* lm = loc_mask + i * 4;
  const int m = match[i];
  if (m >= 0) {
    const float* row = labels + (b * p.num_labels + m) * p.label_width;
    ssd::encode(anchors + j * 4, row + 1, p.variances, lt);
    lm[0] = lm[1] = lm[2] = lm[3] = 1.f;
    cls_target[i] = row[0] + 1.f;
  } else {
    lt[0] = lt[1] = lt[2] = lt[3] = 0.f;
    lm[0] = lm[1] = lm[2] = lm[3] = 0.f;
    cls_target[i] = m == kNegative ? 0.f : p.ignore_label;
  }
}

// ---- detection -------------------------------------------------------------------------

// Foreground class id in the output: the background column is removed (detection.cc).
__device__ float output_class(int c, int background) {
  return static_cast<float>(c < background ? c : c - 1);
}

struct DetectionLayout {
  // best-class mode
  size_t rows, keys;  // (B, N, 6) compacted rows, (B, sort_len) sort keys
  int sort_len;
  // per-class mode
  size_t boxes;                            // (B, N, 4) decoded boxes
  size_t cand;                             // (B*C, cand_len) sorted candidate keys
  size_t kept_box, kept_score, kept_count; // (B*C, cap) NMS survivors, (B*C) their number
  size_t merge;                            // (B, merge_len) sort keys of the merge
  int cap, cand_len, merge_len;
  size_t bytes;
};

DetectionLayout detection_layout(const SsdDetectionParams* p) {
  const size_t b = p->batch, n = p->num_anchors, bc = b * p->num_classes;
  DetectionLayout l = {};
  Carver c;
  if (!p->per_class) {
    l.sort_len = next_pow2(p->num_anchors);
    l.rows = c.take<float>(b * n * 6);
    l.keys = c.take<uint64_t>(b * l.sort_len);
  } else {
    l.cap = p->nms_topk > 0 && p->nms_topk < p->num_anchors ? p->nms_topk : p->num_anchors;
    l.cand_len = next_pow2(l.cap);
    const long merged = static_cast<long>(p->num_classes) * l.cap;
    const int rows = ssd_detection_rows(p);
    l.merge_len = next_pow2(static_cast<int>(merged < rows ? merged : rows));
    l.boxes = c.take<float>(b * n * 4);
    l.cand = c.take<uint64_t>(bc * l.cand_len);
    l.kept_box = c.take<float4>(bc * l.cap);
    l.kept_score = c.take<float>(bc * l.cap);
    l.kept_count = c.take<int>(bc);
    l.merge = c.take<uint64_t>(b * l.merge_len);
  }
  l.bytes = c.size;
  return l;
}

// -- best-class mode (detection.cc's best_class_image) --

// Rows of the anchors whose best foreground score passes the threshold, compacted in anchor
// order into rows, with their sort keys; returns their number.
__device__ int compact_best_class(const SsdDetectionParams& p, const float* prob,
                                  const float* loc, const float* anchors, float* rows,
                                  uint64_t* keys) {
  const int n = p.num_anchors;
  int base = 0;
  for (int j0 = 0; j0 < n; j0 += blockDim.x) {  // same trip count in every thread
    const int j = j0 + threadIdx.x;
    float score = -1.f;
    int id = -1;
    if (j < n) {
      for (int c = 0; c < p.num_classes; ++c) {
        const float v = prob[static_cast<long>(c) * n + j];
        if (c != p.background_id && v > score) {
          score = v;
          id = c;
        }
      }
    }
    const bool take = j < n && id >= 0 && !(score < p.threshold);
    int total;
    const int at = base + block_exclusive_scan(take, &total);
    if (take) {
      float* row = rows + static_cast<long>(at) * 6;
      row[0] = output_class(id, p.background_id);
      row[1] = score;
      ssd::decode(anchors + j * 4, loc + j * 4, p.variances, p.clip, row + 2);
      keys[at] = key_value_desc(score, static_cast<uint32_t>(at));
    }
    base += total;
  }
  __syncthreads();  // rows and keys are read by other threads next
  return base;
}

__device__ void copy_row(const float* src, float* dst) {
  for (int k = 0; k < 6; ++k) dst[k] = src[k];
}

__device__ void fill_row(float* dst) {
  for (int k = 0; k < 6; ++k) dst[k] = -1.f;
}

// Greedy NMS over out rows [0, keep) in score order: a row suppresses (class -1) every later
// row of its class (any class when force_suppress) with IoU >= nms_threshold.
__device__ void suppress_best_class(const SsdDetectionParams& p, float* out, int keep) {
  for (int i = 0; i < keep; ++i) {
    const float* kept = out + static_cast<long>(i) * 6;
    const float cls = kept[0];  // settled before the last barrier: the same in all threads
    if (cls < 0) continue;
    for (int k = i + 1 + threadIdx.x; k < keep; k += blockDim.x) {
      float* row = out + static_cast<long>(k) * 6;
      if (row[0] < 0) continue;
      if ((p.force_suppress || row[0] == cls) && ssd::iou(kept + 2, row + 2) >= p.nms_threshold) {
        row[0] = -1.f;
      }
    }
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kImageThreads)
best_class_kernel(SsdDetectionParams p, const float* cls_prob, const float* loc_pred,
                  const float* anchors, float* out, float* ws_rows, uint64_t* ws_keys,
                  int sort_len) {
  const long b = blockIdx.x, n = p.num_anchors;
  const float* prob = cls_prob + b * p.num_classes * n;
  float* dst = out + b * n * 6;
  float* rows = ws_rows + b * n * 6;
  uint64_t* keys = ws_keys + b * sort_len;
  const int valid = compact_best_class(p, prob, loc_pred + b * n * 4, anchors, rows, keys);
  if (valid < 1 || p.nms_threshold <= 0 || p.nms_threshold > 1) {
    // No NMS: the compacted rows as they are, -1 after them.
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      if (i < valid) copy_row(rows + i * 6, dst + i * 6);
      else fill_row(dst + i * 6);
    }
    return;
  }
  const int keep = p.nms_topk > 0 && p.nms_topk < valid ? p.nms_topk : valid;
  const int len = next_pow2(valid);
  for (int i = valid + threadIdx.x; i < len; i += blockDim.x) keys[i] = kNoKey;
  block_bitonic_sort(keys, len);
  // The top ``keep`` rows in score order; rows past them keep their unsorted compacted
  // content with class -1, as the built-in does.
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float* row = dst + i * 6;
    if (i < keep) {
      copy_row(rows + static_cast<long>(key_index(keys[i])) * 6, row);
    } else if (i < valid) {
      copy_row(rows + i * 6, row);
      row[0] = -1.f;
    } else {
      fill_row(row);
    }
  }
  __syncthreads();
  suppress_best_class(p, dst, keep);
}

// -- per-class mode (detection.cc's per_class_batch) --

__global__ void decode_kernel(SsdDetectionParams p, const float* loc_pred, const float* anchors,
                              float* boxes) {
  const long n = p.num_anchors;
  const long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * n) return;
  ssd::decode(anchors + (i % n) * 4, loc_pred + i * 4, p.variances, p.clip, boxes + i * 4);
}

struct ClassWs {
  const float* boxes;
  uint64_t* cand;
  float4* kept_box;
  float* kept_score;
  int* kept_count;
  int cap, cand_len;
};

// Candidates of one class: the anchors with prob > threshold, the best nms_topk of them by
// (score desc, anchor asc), sorted into cand[0, top); returns top.
__device__ int select_candidates(const SsdDetectionParams& p, const float* prob, int n,
                                 uint64_t* cand) {
  auto key_of = [&](int j, uint64_t* key) {
    if (!(prob[j] > p.threshold)) return false;
    *key = key_value_desc(prob[j], static_cast<uint32_t>(j));
    return true;
  };
  int passing = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) passing += prob[j] > p.threshold;
  const int count = block_sum(passing);
  const int top = p.nms_topk > 0 && p.nms_topk < count ? p.nms_topk : count;
  const uint64_t last = top < count ? block_kth_smallest(n, top, key_of) : kNoKey;
  block_sorted_selection(n, key_of, last, top, cand);
  return top;
}

// Greedy NMS over the sorted candidates: a candidate is kept unless it overlaps an already
// kept box by more than nms_threshold (ssd::iou_above, as the CPU). Returns the kept count.
// Thread t owns kept entries t, t + blockDim.x, ...: it alone writes and reads them, so a
// new entry needs no barrier before the next candidate is tested against it.
__device__ int greedy_nms(float threshold, const uint64_t* cand, int top, const float* prob,
                          const float* boxes, float4* kept_box, float* kept_score) {
  int kept = 0;
  for (int i = 0; i < top; ++i) {
    const int j = static_cast<int>(key_index(cand[i]));
    const float* b = boxes + static_cast<long>(j) * 4;
    int hit = 0;
    for (int k = threadIdx.x; k < kept && !hit; k += blockDim.x) {
      const float4 o = kept_box[k];
      hit = ssd::iou_above(b[0], b[1], b[2], b[3], o.x, o.y, o.z, o.w, threshold);
    }
    if (__syncthreads_or(hit)) continue;
    if (kept % static_cast<int>(blockDim.x) == static_cast<int>(threadIdx.x)) {
      kept_box[kept] = make_float4(b[0], b[1], b[2], b[3]);
      kept_score[kept] = prob[j];
    }
    ++kept;
  }
  return kept;
}

// One block per (image, class): top-k candidates and NMS of one foreground class.
__global__ void nms_class_kernel(SsdDetectionParams p, const float* cls_prob, ClassWs ws) {
  const int slot = blockIdx.x;  // b * C + c
  const int b = slot / p.num_classes, c = slot % p.num_classes;
  if (c == p.background_id) return;
  const long n = p.num_anchors;
  const float* prob = cls_prob + static_cast<long>(slot) * n;
  uint64_t* cand = ws.cand + static_cast<long>(slot) * ws.cand_len;
  const int top = select_candidates(p, prob, static_cast<int>(n), cand);
  const int kept = greedy_nms(p.nms_threshold, cand, top, prob, ws.boxes + b * n * 4,
                              ws.kept_box + static_cast<long>(slot) * ws.cap,
                              ws.kept_score + static_cast<long>(slot) * ws.cap);
  if (threadIdx.x == 0) ws.kept_count[slot] = kept;
}

// One block per image: the best ``rows`` survivors of all classes by (score desc, class asc,
// NMS order asc) as rows [class, score, box], padded with -1 (detection.cc's merge_classes).
// Survivor (c, k) is element e = c * cap + k, so ascending e is (class, NMS order).
__global__ void __launch_bounds__(kMergeThreads)
merge_classes_kernel(SsdDetectionParams p, ClassWs ws, uint64_t* ws_merge, int merge_len,
                     int rows, float* out) {
  const int b = blockIdx.x, classes = p.num_classes, cap = ws.cap;
  const long slot0 = static_cast<long>(b) * classes;
  auto key_of = [&](int e, uint64_t* key) {
    const int c = e / cap, k = e % cap;
    if (c == p.background_id || k >= ws.kept_count[slot0 + c]) return false;
    *key = key_value_desc(ws.kept_score[(slot0 + c) * cap + k], static_cast<uint32_t>(e));
    return true;
  };
  const int elements = classes * cap;
  int local = 0;
  uint64_t key;
  for (int e = threadIdx.x; e < elements; e += blockDim.x) local += key_of(e, &key);
  const int total = block_sum(local);
  const int count = total < rows ? total : rows;
  const uint64_t last = count < total ? block_kth_smallest(elements, count, key_of) : kNoKey;
  uint64_t* keys = ws_merge + static_cast<long>(b) * merge_len;
  block_sorted_selection(elements, key_of, last, count, keys);
  float* dst = out + static_cast<long>(b) * rows * 6;
  for (int i = threadIdx.x; i < rows; i += blockDim.x) {
    float* row = dst + static_cast<long>(i) * 6;
    if (i >= count) {
      fill_row(row);
      continue;
    }
    const int e = static_cast<int>(key_index(keys[i]));
    const long at = (slot0 + e / cap) * cap + e % cap;
    const float4 box = ws.kept_box[at];
    row[0] = output_class(e / cap, p.background_id);
    row[1] = ws.kept_score[at];
    row[2] = box.x;
    row[3] = box.y;
    row[4] = box.z;
    row[5] = box.w;
  }
}

}  // namespace

// ---- C entry points --------------------------------------------------------------------

extern "C" size_t ssd_target_workspace_bytes(const SsdTargetParams* p) {
  return target_layout(p).bytes;
}

extern "C" size_t ssd_detection_workspace_bytes(const SsdDetectionParams* p) {
  return detection_layout(p).bytes;
}

extern "C" int ssd_prior_cuda(const SsdPriorParams* p, float* out, void* stream) {
  if (p->num_sizes < 1 || p->num_ratios < 1 || p->num_sizes > kMaxPriorValues ||
      p->num_ratios > kMaxPriorValues) {
    return cudaErrorInvalidValue;
  }
  PriorArgs a;
  a.height = p->height;
  a.width = p->width;
  a.per_cell = p->num_sizes + p->num_ratios - 1;
  a.num_sizes = p->num_sizes;
  a.clip = p->clip;
  // Same expressions as prior.cc, evaluated once on the host.
  a.step_y = p->step_y > 0 ? p->step_y : 1.f / p->height;
  a.step_x = p->step_x > 0 ? p->step_x : 1.f / p->width;
  a.offset_y = p->offset_y;
  a.offset_x = p->offset_x;
  a.aspect = static_cast<float>(p->height) / p->width;
  for (int i = 0; i < kMaxPriorValues; ++i) {
    a.sizes[i] = i < p->num_sizes ? p->sizes[i] : 0.f;
    a.ratios[i] = i < p->num_ratios ? p->ratios[i] : 0.f;
  }
  const long total = static_cast<long>(p->height) * p->width * a.per_cell;
  if (total <= 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  prior_kernel<<<grid_for(total, kElementThreads), kElementThreads, 0, s>>>(a, out);
  return cudaGetLastError();
}

extern "C" int ssd_target_cuda(const SsdTargetParams* p, const float* anchors,
                               const float* labels, const float* cls_preds, float* loc_target,
                               float* loc_mask, float* cls_target, void* workspace,
                               void* stream) {
  const long items = static_cast<long>(p->batch) * p->num_anchors;
  if (p->batch <= 0) return cudaSuccess;
  if (p->num_anchors < 0 || p->num_labels < 0) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const TargetWs ws = target_ws(p, workspace);
  const unsigned grid = grid_for(items, kElementThreads);
  if (items > 0) {
    target_anchor_kernel<<<grid, kElementThreads, 0, s>>>(*p, anchors, labels, cls_preds, ws);
  }
  target_match_kernel<<<p->batch, kImageThreads, 0, s>>>(*p, anchors, labels, ws);
  if (items > 0) {
    target_output_kernel<<<grid, kElementThreads, 0, s>>>(*p, anchors, labels, ws.match,
                                                          loc_target, loc_mask, cls_target);
  }
  return cudaGetLastError();
}

extern "C" int ssd_detection_cuda(const SsdDetectionParams* p, const float* cls_prob,
                                  const float* loc_pred, const float* anchors, float* out,
                                  void* workspace, void* stream) {
  if (p->batch <= 0) return cudaSuccess;
  if (p->num_anchors < 0 || p->num_classes < 0) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const DetectionLayout l = detection_layout(p);
  if (!p->per_class) {
    if (p->num_anchors == 0) return cudaSuccess;  // empty output
    best_class_kernel<<<p->batch, kImageThreads, 0, s>>>(
        *p, cls_prob, loc_pred, anchors, out, in_workspace<float>(workspace, l.rows),
        in_workspace<uint64_t>(workspace, l.keys), l.sort_len);
    return cudaGetLastError();
  }
  // Survivor (class, k) is packed as class * cap + k into the low half of a sort key.
  if (static_cast<long>(p->num_classes) * l.cap > INT_MAX) return cudaErrorInvalidValue;
  const int rows = ssd_detection_rows(p);
  float* boxes = in_workspace<float>(workspace, l.boxes);
  const ClassWs ws{boxes,
                   in_workspace<uint64_t>(workspace, l.cand),
                   in_workspace<float4>(workspace, l.kept_box),
                   in_workspace<float>(workspace, l.kept_score),
                   in_workspace<int>(workspace, l.kept_count),
                   l.cap,
                   l.cand_len};
  const long items = static_cast<long>(p->batch) * p->num_anchors;
  if (items > 0) {
    decode_kernel<<<grid_for(items, kElementThreads), kElementThreads, 0, s>>>(*p, loc_pred,
                                                                               anchors, boxes);
  }
  if (p->num_classes > 0) {
    nms_class_kernel<<<p->batch * p->num_classes, kClassThreads, 0, s>>>(*p, cls_prob, ws);
  }
  if (rows > 0) {
    merge_classes_kernel<<<p->batch, kMergeThreads, 0, s>>>(
        *p, ws, in_workspace<uint64_t>(workspace, l.merge), l.merge_len, rows, out);
  }
  return cudaGetLastError();
}

extern "C" int ssd_zero_cuda(float* data, long count, void* stream) {
  if (count <= 0) return cudaSuccess;
  return cudaMemsetAsync(data, 0, static_cast<size_t>(count) * sizeof(float),
                         static_cast<cudaStream_t>(stream));
}
