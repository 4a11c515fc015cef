// CUDA training targets (ssd_target_cuda, ssd_ops.h), scheduling target.cc's work and giving
// its results, ties included: per (image, anchor) statistics, then one block per image for
// the sequential parts (bipartite matching, hard negative mining), then one thread per
// (image, anchor) for the outputs.
// Launchers never synchronize and copy no data between host and device: their host-side
// parameters travel as kernel arguments.
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_block.cuh"
#include "ssd_box.h"
#include "ssd_ops.h"

namespace ssd {
namespace {

constexpr int kNegative = -2;  // match[] of a mined negative (-1: not matched)

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
// ssd::kMinBipartiteIoU, ties to the lower anchor; anchor -1 when none is left.
__device__ Pair best_free_anchor(const float* box, int k, const float* anchors,
                                 const int* match, int n) {
  Pair best{0.f, -1, k};
  for (int j = threadIdx.x; j < n; j += blockDim.x) {  // ascending j: ">" keeps the lowest
    if (match[j] >= 0) continue;
    const float v = ssd::iou(anchors + j * 4, box);
    if (v > ssd::kMinBipartiteIoU && (best.anchor < 0 || v > best.iou)) best = Pair{v, j, k};
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
  int wanted = ssd::negatives_wanted(positives, p.negative_mining_ratio, n,
                                     p.minimum_negative_samples);
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

}  // namespace
}  // namespace ssd

extern "C" size_t ssd_target_workspace_bytes(const SsdTargetParams* p) {
  return ssd::target_layout(p).bytes;
}

extern "C" int ssd_target_cuda(const SsdTargetParams* p, const float* anchors,
                               const float* labels, const float* cls_preds, float* loc_target,
                               float* loc_mask, float* cls_target, void* workspace,
                               void* stream) {
  const long items = static_cast<long>(p->batch) * p->num_anchors;
  if (p->batch <= 0) return cudaSuccess;
  if (p->num_anchors < 0 || p->num_labels < 0) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const ssd::TargetWs ws = ssd::target_ws(p, workspace);
  const int threads = ssd::kElementThreads;
  const unsigned grid = ssd::grid_for(items, threads);
  if (items > 0) {
    ssd::target_anchor_kernel<<<grid, threads, 0, s>>>(*p, anchors, labels, cls_preds, ws);
  }
  ssd::target_match_kernel<<<p->batch, ssd::kImageThreads, 0, s>>>(*p, anchors, labels, ws);
  if (items > 0) {
    ssd::target_output_kernel<<<grid, threads, 0, s>>>(*p, anchors, labels, ws.match,
                                                       loc_target, loc_mask, cls_target);
  }
  return cudaGetLastError();
}
