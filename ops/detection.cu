// CUDA detection output (ssd_detection_cuda, ssd_ops.h), scheduling detection.cc's work and
// giving its results, ties included: best-class mode, one block per image; per-class mode,
// decoding per anchor, one block per (image, class) for top-k and NMS, one block per image
// to merge.
// Launchers never synchronize and copy no data between host and device: their host-side
// parameters travel as kernel arguments.
#include <cuda_runtime.h>
#include <limits.h>
#include <stdint.h>

#include "cuda_block.cuh"
#include "ssd_box.h"
#include "ssd_ops.h"

namespace ssd {
namespace {

constexpr int kClassThreads = 256;  // one block per (image, class): top-k and NMS
constexpr int kMergeThreads = 512;  // one block per image: per-class merge

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
    l.cap = ssd::topk_cap(p->nms_topk, p->num_anchors);
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
      row[0] = ssd::output_class(id, p.background_id);
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
  const int keep = ssd::topk_cap(p.nms_topk, valid);
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
  const int top = ssd::topk_cap(p.nms_topk, count);
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
    row[0] = ssd::output_class(e / cap, p.background_id);
    row[1] = ws.kept_score[at];
    row[2] = box.x;
    row[3] = box.y;
    row[4] = box.z;
    row[5] = box.w;
  }
}

}  // namespace
}  // namespace ssd

extern "C" size_t ssd_detection_workspace_bytes(const SsdDetectionParams* p) {
  return ssd::detection_layout(p).bytes;
}

extern "C" int ssd_detection_cuda(const SsdDetectionParams* p, const float* cls_prob,
                                  const float* loc_pred, const float* anchors, float* out,
                                  void* workspace, void* stream) {
  if (p->batch <= 0) return cudaSuccess;
  if (p->num_anchors < 0 || p->num_classes < 0) return cudaErrorInvalidValue;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const ssd::DetectionLayout l = ssd::detection_layout(p);
  if (!p->per_class) {
    if (p->num_anchors == 0) return cudaSuccess;  // empty output
    ssd::best_class_kernel<<<p->batch, ssd::kImageThreads, 0, s>>>(
        *p, cls_prob, loc_pred, anchors, out, ssd::in_workspace<float>(workspace, l.rows),
        ssd::in_workspace<uint64_t>(workspace, l.keys), l.sort_len);
    return cudaGetLastError();
  }
  // Survivor (class, k) is packed as class * cap + k into the low half of a sort key.
  if (static_cast<long>(p->num_classes) * l.cap > INT_MAX) return cudaErrorInvalidValue;
  const int rows = ssd_detection_rows(p);
  float* boxes = ssd::in_workspace<float>(workspace, l.boxes);
  const ssd::ClassWs ws{boxes,
                        ssd::in_workspace<uint64_t>(workspace, l.cand),
                        ssd::in_workspace<float4>(workspace, l.kept_box),
                        ssd::in_workspace<float>(workspace, l.kept_score),
                        ssd::in_workspace<int>(workspace, l.kept_count),
                        l.cap,
                        l.cand_len};
  const long items = static_cast<long>(p->batch) * p->num_anchors;
  if (items > 0) {
    const int threads = ssd::kElementThreads;
    ssd::decode_kernel<<<ssd::grid_for(items, threads), threads, 0, s>>>(*p, loc_pred, anchors,
                                                                         boxes);
  }
  if (p->num_classes > 0) {
    ssd::nms_class_kernel<<<p->batch * p->num_classes, ssd::kClassThreads, 0, s>>>(
        *p, cls_prob, ws);
  }
  if (rows > 0) {
    ssd::merge_classes_kernel<<<p->batch, ssd::kMergeThreads, 0, s>>>(
        *p, ws, ssd::in_workspace<uint64_t>(workspace, l.merge), l.merge_len, rows, out);
  }
  return cudaGetLastError();
}
