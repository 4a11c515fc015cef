// Box arithmetic and the small rules shared by the CPU loops (prior.cc, target.cc,
// detection.cc) and the CUDA kernels (prior.cu, target.cu, detection.cu). Every function and
// constant here is the single definition of its formula or rule: the two back ends may differ
// in how they schedule work, never in what a box, an IoU, a target or a cap is.
#ifndef SSD_OPS_SSD_BOX_H_
#define SSD_OPS_SSD_BOX_H_

#include <math.h>

#ifdef __CUDACC__
#define SSD_HD __host__ __device__ __forceinline__
#else
#define SSD_HD inline
#endif

namespace ssd {

SSD_HD float min2(float a, float b) { return a < b ? a : b; }
SSD_HD float max2(float a, float b) { return a > b ? a : b; }
SSD_HD float clip01(float v) { return max2(0.f, min2(1.f, v)); }

// Intersection and union areas of corner boxes [x0, y0, x1, y1], without the "+1" pixel
// convention (coordinates are normalized). The one copy of the arithmetic behind iou and
// iou_above, so that the division-free test agrees with the IoU to the last bit.
struct Overlap {
  float inter, uni;
};

SSD_HD Overlap inter_union(float ax0, float ay0, float ax1, float ay1, float bx0, float by0,
                           float bx1, float by1) {
  float w = max2(0.f, min2(ax1, bx1) - max2(ax0, bx0));
  float h = max2(0.f, min2(ay1, by1) - max2(ay0, by0));
  float inter = w * h;
  float uni = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter;
  return Overlap{inter, uni};
}

// Intersection over union of corner boxes [xmin, ymin, xmax, ymax]; a zero or negative union
// gives 0, like the built-ins' safe divide.
SSD_HD float iou(const float* a, const float* b) {
  // Read in the order inter_union first uses them (x1, x0, then y1, y0). Any order gives the
  // same value; this one keeps the kernels' machine code identical to the inline formula's.
  const float ax1 = a[2], bx1 = b[2], ax0 = a[0], bx0 = b[0];
  const float ay1 = a[3], by1 = b[3], ay0 = a[1], by0 = b[1];
  const Overlap o = inter_union(ax0, ay0, ax1, ay1, bx0, by0, bx1, by1);
  return o.uni <= 0.f ? 0.f : o.inter / o.uni;
}

// IoU(a, b) > thresh without the division (equivalent when the union is positive), so
// loops testing one box against many vectorize.
SSD_HD bool iou_above(float ax0, float ay0, float ax1, float ay1, float bx0, float by0,
                      float bx1, float by1, float thresh) {
  const Overlap o = inter_union(ax0, ay0, ax1, ay1, bx0, by0, bx1, by1);
  return (o.inter > thresh * o.uni) & (o.uni > 0.f);
}

// A ground-truth row [class, xmin, ymin, xmax, ymax, ...] takes part in matching when its
// class is not negative (padding is -1) and its box has positive width and height (a
// zero-area box would give log(0) regression targets).
SSD_HD bool valid_gt(const float* row) {
  return row[0] >= 0.f && row[3] > row[1] && row[4] > row[2];
}

// Distance between anchor centres along one axis of the feature map: the given step, or
// 1 / extent (cells spread evenly over [0, 1]) when it is not positive.
SSD_HD float prior_step(float step, int extent) { return step > 0 ? step : 1.f / extent; }

// Anchor ``k`` of one feature-map cell centred at (cx, cy): the sizes with the first ratio
// first, then the other ratios with the first size (MultiBoxPrior's order). ``aspect`` is
// height / width of the feature map, which keeps anchors square in image space.
SSD_HD void prior_box(float cx, float cy, int k, const float* sizes, int num_sizes,
                      const float* ratios, float aspect, int clip, float* out) {
  float size = k < num_sizes ? sizes[k] : sizes[0];
  float ratio = sqrtf(k < num_sizes ? ratios[0] : ratios[k - num_sizes + 1]);
  float w = size * aspect * ratio / 2.f;
  float h = size / ratio / 2.f;
  out[0] = cx - w;
  out[1] = cy - h;
  out[2] = cx + w;
  out[3] = cy + h;
  if (clip) {
    for (int i = 0; i < 4; ++i) out[i] = clip01(out[i]);
  }
}

// Regression target of ground truth ``g`` for anchor ``a`` (the paper's center/size
// encoding divided by the variances).
SSD_HD void encode(const float* a, const float* g, const float* var, float* out) {
  float aw = a[2] - a[0], ah = a[3] - a[1];
  float ax = (a[0] + a[2]) * 0.5f, ay = (a[1] + a[3]) * 0.5f;
  float gw = g[2] - g[0], gh = g[3] - g[1];
  float gx = (g[0] + g[2]) * 0.5f, gy = (g[1] + g[3]) * 0.5f;
  out[0] = (gx - ax) / aw / var[0];
  out[1] = (gy - ay) / ah / var[1];
  out[2] = logf(gw / aw) / var[2];
  out[3] = logf(gh / ah) / var[3];
}

// Inverse of encode: box prediction ``p`` relative to anchor ``a`` -> corner box.
SSD_HD void decode(const float* a, const float* p, const float* var, int clip, float* out) {
  float aw = a[2] - a[0], ah = a[3] - a[1];
  float ax = (a[0] + a[2]) / 2.f, ay = (a[1] + a[3]) / 2.f;
  float ox = p[0] * var[0] * aw + ax;
  float oy = p[1] * var[1] * ah + ay;
  float ow = expf(p[2] * var[2]) * aw / 2.f;
  float oh = expf(p[3] * var[3]) * ah / 2.f;
  out[0] = ox - ow;
  out[1] = oy - oh;
  out[2] = ox + ow;
  out[3] = oy + oh;
  if (clip) {
    for (int i = 0; i < 4; ++i) out[i] = clip01(out[i]);
  }
}

// Bipartite matching pairs a ground truth only with an anchor of IoU above this, so a
// ground truth that overlaps no anchor stays unmatched.
constexpr float kMinBipartiteIoU = 1e-6f;

// Number of hard negatives to mine: ``ratio`` per positive, at most the ``anchors`` that are
// not positive, at least ``minimum`` (which may exceed that cap: the candidates actually
// found bound it later).
SSD_HD int negatives_wanted(int positives, float ratio, int anchors, int minimum) {
  int wanted = static_cast<int>(positives * ratio);
  if (anchors - positives < wanted) wanted = anchors - positives;
  return wanted < minimum ? minimum : wanted;
}

// Softmax probability of class 0 (background) for one anchor, from logits laid out
// (C, N) with stride ``n`` between classes. Hard negative mining ranks anchors by it.
SSD_HD float background_prob(const float* logits, int num_classes, int n) {
  float m = logits[0];
  for (int k = 1; k < num_classes; ++k) m = max2(m, logits[k * n]);
  float sum = 0.f;
  for (int k = 0; k < num_classes; ++k) sum += expf(logits[k * n] - m);
  return expf(logits[0] - m) / sum;
}

// Best-matching valid ground truth of one anchor: returns its index (-1 if none) and
// writes the IoU. Ties go to the lower index, as in the built-in.
SSD_HD int best_gt(const float* anchor, const float* labels, int num_labels, int width,
                   float* best_iou) {
  int best = -1;
  float bi = -1.f;
  for (int k = 0; k < num_labels; ++k) {
    const float* row = labels + k * width;
    if (!valid_gt(row)) continue;
    float v = iou(anchor, row + 1);
    if (v > bi) {
      bi = v;
      best = k;
    }
  }
  *best_iou = bi;
  return best;
}

// Candidates kept by a top-k limit: ``topk`` of ``count`` when it is positive and smaller,
// else all of them.
SSD_HD int topk_cap(int topk, int count) { return topk > 0 && topk < count ? topk : count; }

// Foreground class id in the detection output: the background column is removed.
SSD_HD float output_class(int c, int background) {
  return static_cast<float>(c < background ? c : c - 1);
}

}  // namespace ssd

#endif  // SSD_OPS_SSD_BOX_H_
