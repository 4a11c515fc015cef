// CPU detection output. Best-class mode reproduces MultiBoxDetection row for row; per-class
// mode is the paper's DetectionOutput (see ops/README.md for the exact rules of each).
#include <algorithm>
#include <memory>
#include <vector>

#include "cpu_threads.h"
#include "ssd_box.h"
#include "ssd_ops.h"

namespace {

struct Det {
  float score;
  int index;  // anchor
  bool operator<(const Det& o) const {  // higher score first, then lower anchor
    return score > o.score || (score == o.score && index < o.index);
  }
};

// Sorts the best ``top`` elements of ``v`` to its front (strict total order, so the result
// equals a full stable sort's prefix); linear selection first, as top << size is common.
template <typename T>
void select_top(T* first, T* last, int top) {
  if (top < last - first) std::nth_element(first, first + top, last);
  std::sort(first, first + top);
}

template <typename T>
void select_top(std::vector<T>* v, int top) {
  select_top(v->data(), v->data() + v->size(), top);
}

void best_class_image(const SsdDetectionParams* p, const float* prob, const float* loc,
                      const float* anchors, float* out, std::vector<Det>* order,
                      std::vector<float>* rows) {
  const int n = p->num_anchors;
  std::fill(out, out + n * 6, -1.f);
  int valid = 0;
  for (int j = 0; j < n; ++j) {
    float score = -1.f;
    int id = -1;
    for (int c = 0; c < p->num_classes; ++c) {
      if (c != p->background_id && prob[c * n + j] > score) {
        score = prob[c * n + j];
        id = c;
      }
    }
    if (id < 0 || score < p->threshold) continue;
    float* row = out + valid * 6;
    row[0] = ssd::output_class(id, p->background_id);
    row[1] = score;
    ssd::decode(anchors + j * 4, loc + j * 4, p->variances, p->clip, row + 2);
    ++valid;
  }
  if (valid < 1 || p->nms_threshold <= 0 || p->nms_threshold > 1) return;
  order->resize(valid);
  for (int i = 0; i < valid; ++i) (*order)[i] = Det{out[i * 6 + 1], i};
  const int keep = ssd::topk_cap(p->nms_topk, valid);
  select_top(order, keep);
  rows->assign(out, out + valid * 6);
  // Rows past the top-k keep their unsorted content with class -1, as the built-in does.
  for (int i = keep; i < valid; ++i) out[i * 6] = -1.f;
  for (int i = 0; i < keep; ++i) std::copy_n(rows->data() + (*order)[i].index * 6, 6, out + i * 6);
  for (int i = 0; i < keep; ++i) {
    if (out[i * 6] < 0) continue;
    for (int k = i + 1; k < keep; ++k) {
      if (out[k * 6] < 0) continue;
      if ((p->force_suppress || out[i * 6] == out[k * 6]) &&
          ssd::iou(out + i * 6 + 2, out + k * 6 + 2) >= p->nms_threshold) {
        out[k * 6] = -1.f;
      }
    }
  }
}

// Survivors of one (image, class) in NMS order, as separate coordinate arrays so that
// testing a candidate against all of them is a vectorizable loop.
struct Kept {
  std::vector<float> x0, y0, x1, y1, score;
  std::unique_ptr<Det[]> cand;  // not a vector: no zero-filling N entries per class
  void clear() {
    x0.clear(); y0.clear(); x1.clear(); y1.clear(); score.clear();
  }
  void push(const float* box, float s) {
    x0.push_back(box[0]); y0.push_back(box[1]); x1.push_back(box[2]); y1.push_back(box[3]);
    score.push_back(s);
  }
  // Whether box b overlaps a survivor by IoU > t. Blocks of 16 vectorize; a suppressed
  // box usually overlaps an early (high-score) survivor, so testing stops at the first hit.
  __attribute__((target_clones("avx2", "default")))
  bool any_above(const float* b, float t) const {
    const size_t m = score.size();
    for (size_t k0 = 0; k0 < m; k0 += 16) {
      const size_t k1 = std::min(m, k0 + 16);
      int hit = 0;
      for (size_t k = k0; k < k1; ++k) {
        hit |= ssd::iou_above(b[0], b[1], b[2], b[3], x0[k], y0[k], x1[k], y1[k], t);
      }
      if (hit) return true;
    }
    return false;
  }
};

// One class of the per-class mode: candidates above the threshold, the best nms_topk, then
// greedy NMS that drops a box overlapping a kept one by more than nms_threshold.
void nms_one_class(const SsdDetectionParams* p, const float* prob, const float* boxes,
                   Kept* kept) {
  const int n = p->num_anchors;
  kept->clear();
  // Branch-free compaction: about a third of the anchors pass a 0.01 threshold in random
  // order, which would mispredict a branch half the time.
  if (!kept->cand) kept->cand.reset(new Det[n]);
  Det* cand = kept->cand.get();
  int count = 0;
  for (int j = 0; j < n; ++j) {
    cand[count] = Det{prob[j], j};
    count += prob[j] > p->threshold;
  }
  const int top = ssd::topk_cap(p->nms_topk, count);
  select_top(cand, cand + count, top);
  for (int i = 0; i < top; ++i) {
    const float* b = boxes + cand[i].index * 4;
    if (!kept->any_above(b, p->nms_threshold)) kept->push(b, cand[i].score);
  }
}

// Merges the classes of one image: the keep_topk best survivors by score (ties in class
// order), rows [class, score, box], padded with -1.
void merge_classes(const SsdDetectionParams* p, const Kept* per_class, float* out) {
  struct Ref {
    float score;
    int cls, k;
    bool operator<(const Ref& o) const {  // score, then class, then NMS order
      return score > o.score || (score == o.score && (cls < o.cls || (cls == o.cls && k < o.k)));
    }
  };
  std::vector<Ref> all;
  for (int c = 0; c < p->num_classes; ++c) {
    for (size_t k = 0; k < per_class[c].score.size(); ++k) {
      all.push_back(Ref{per_class[c].score[k], c, static_cast<int>(k)});
    }
  }
  const int rows = ssd_detection_rows(p);
  const int count = std::min(rows, static_cast<int>(all.size()));
  select_top(&all, count);
  std::fill(out, out + rows * 6, -1.f);
  for (int i = 0; i < count; ++i) {
    const Kept& src = per_class[all[i].cls];
    const int k = all[i].k;
    float* row = out + i * 6;
    row[0] = ssd::output_class(all[i].cls, p->background_id);
    row[1] = all[i].score;
    row[2] = src.x0[k]; row[3] = src.y0[k]; row[4] = src.x1[k]; row[5] = src.y1[k];
  }
}

void decode_all(const SsdDetectionParams* p, const float* loc, const float* anchors,
                float* boxes) {
  for (int j = 0; j < p->num_anchors; ++j) {
    ssd::decode(anchors + j * 4, loc + j * 4, p->variances, p->clip, boxes + j * 4);
  }
}

// Per-class mode over the batch: the (image, class) pairs are independent and share the
// threads; decoding and merging are per image.
void per_class_batch(const SsdDetectionParams* p, const float* cls_prob, const float* loc_pred,
                     const float* anchors, float* out) {
  const long n = p->num_anchors, c = p->num_classes, rows = ssd_detection_rows(p);
  std::vector<float> boxes(p->batch * n * 4);
  std::vector<Kept> kept(p->batch * c);
#pragma omp parallel for schedule(static) num_threads(ssd::cpu_threads())
  for (int b = 0; b < p->batch; ++b) decode_all(p, loc_pred + b * n * 4, anchors, &boxes[b * n * 4]);
#pragma omp parallel for schedule(dynamic) num_threads(ssd::cpu_threads())
  for (long t = 0; t < p->batch * c; ++t) {
    const long b = t / c, k = t % c;
    if (k != p->background_id) {
      nms_one_class(p, cls_prob + (b * c + k) * n, &boxes[b * n * 4], &kept[t]);
    }
  }
#pragma omp parallel for schedule(static) num_threads(ssd::cpu_threads())
  for (int b = 0; b < p->batch; ++b) merge_classes(p, &kept[b * c], out + b * rows * 6);
}

}  // namespace

extern "C" int ssd_detection_rows(const SsdDetectionParams* p) {
  return p->per_class && p->keep_topk > 0 ? p->keep_topk : p->num_anchors;
}

extern "C" void ssd_detection_cpu(const SsdDetectionParams* p, const float* cls_prob,
                                  const float* loc_pred, const float* anchors, float* out) {
  if (p->per_class) {
    per_class_batch(p, cls_prob, loc_pred, anchors, out);
    return;
  }
  const long n = p->num_anchors;
#pragma omp parallel for schedule(static) num_threads(ssd::cpu_threads())
  for (int b = 0; b < p->batch; ++b) {
    std::vector<Det> order;
    std::vector<float> rows;
    best_class_image(p, cls_prob + b * p->num_classes * n, loc_pred + b * n * 4, anchors,
                     out + b * n * 6, &order, &rows);
  }
}
