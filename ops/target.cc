// CPU training targets (MultiBoxTarget semantics, see ops/README.md): per image, bipartite
// matching of every ground truth to its best free anchor, then threshold matching, then
// hard negative mining by background probability.
#include <algorithm>
#include <utility>
#include <vector>

#include "cpu_threads.h"
#include "ssd_box.h"
#include "ssd_ops.h"

namespace {

struct Scratch {
  std::vector<int> gts;          // indices of valid label rows
  std::vector<float> overlaps;   // (G, N): IoU of ground truth g with anchor j
  std::vector<float> best_iou;   // (N) best IoU of each anchor over all ground truths
  std::vector<int> match;        // (N) matched label row, -1 when not positive
  std::vector<char> negative;    // (N)
  std::vector<std::pair<float, int>> candidates;
};

// Best free anchor of ground truth g (first index among equals); anchor -1 when none has an
// IoU above ssd::kMinBipartiteIoU.
std::pair<float, int> best_free_anchor(const float* ov, const std::vector<int>& match, int n) {
  std::pair<float, int> best(ssd::kMinBipartiteIoU, -1);
  for (int j = 0; j < n; ++j) {
    if (match[j] < 0 && ov[j] > best.first) best = std::make_pair(ov[j], j);
  }
  return best;
}

// Greedy bipartite matching: repeatedly take the highest-IoU (anchor, ground truth) pair
// among unmatched ones, ties to the lower anchor then the lower ground truth. Keeping each
// ground truth's best free anchor avoids rescanning the whole matrix per match.
int bipartite_match(const SsdTargetParams* p, Scratch* s) {
  const int n = p->num_anchors, g = static_cast<int>(s->gts.size());
  std::vector<std::pair<float, int>> col(g);
  std::vector<char> done(g, 0);
  for (int k = 0; k < g; ++k) col[k] = best_free_anchor(&s->overlaps[k * n], s->match, n);
  int positives = 0;
  for (int step = 0; step < g; ++step) {
    int pick = -1;
    for (int k = 0; k < g; ++k) {
      if (done[k] || col[k].second < 0) continue;
      if (pick < 0 || col[k].first > col[pick].first ||
          (col[k].first == col[pick].first && col[k].second < col[pick].second)) {
        pick = k;
      }
    }
    if (pick < 0) break;
    const int anchor = col[pick].second;
    s->match[anchor] = s->gts[pick];
    done[pick] = 1;
    ++positives;
    for (int k = 0; k < g; ++k) {
      if (!done[k] && col[k].second == anchor) {
        col[k] = best_free_anchor(&s->overlaps[k * n], s->match, n);
      }
    }
  }
  return positives;
}

// Anchors not taken by the bipartite step become positive above the IoU threshold.
int threshold_match(const SsdTargetParams* p, Scratch* s) {
  const int n = p->num_anchors, g = static_cast<int>(s->gts.size());
  int positives = 0;
  for (int j = 0; j < n; ++j) {
    float best = -1.f;
    int arg = -1;
    for (int k = 0; k < g; ++k) {
      const float v = s->overlaps[k * n + j];
      if (v > best) {
        best = v;
        arg = k;
      }
    }
    s->best_iou[j] = g > 0 ? best : 0.f;
    if (s->match[j] < 0 && arg >= 0 && p->overlap_threshold > 0 && best > p->overlap_threshold) {
      s->match[j] = s->gts[arg];
      ++positives;
    }
  }
  return positives;
}

// Marks the hard negatives: the unmatched anchors below the mining IoU with the lowest
// background probability, ``ratio`` per positive (at least the minimum, at most what exists).
void mine_negatives(const SsdTargetParams* p, const float* logits, int positives, Scratch* s) {
  const int n = p->num_anchors;
  if (p->negative_mining_ratio <= 0) {
    for (int j = 0; j < n; ++j) s->negative[j] = s->match[j] < 0;
    return;
  }
  int wanted = ssd::negatives_wanted(positives, p->negative_mining_ratio, n,
                                     p->minimum_negative_samples);
  if (wanted <= 0) return;
  s->candidates.clear();
  for (int j = 0; j < n; ++j) {
    if (s->match[j] < 0 && s->best_iou[j] < p->negative_mining_thresh) {
      s->candidates.emplace_back(ssd::background_prob(logits + j, p->num_classes, n), j);
    }
  }
  wanted = std::min(wanted, static_cast<int>(s->candidates.size()));
  if (wanted <= 0) return;
  std::nth_element(s->candidates.begin(), s->candidates.begin() + (wanted - 1),
                   s->candidates.end());
  for (int i = 0; i < wanted; ++i) s->negative[s->candidates[i].second] = 1;
}

void target_image(const SsdTargetParams* p, const float* anchors, const float* labels,
                  const float* logits, float* loc_target, float* loc_mask, float* cls_target,
                  Scratch* s) {
  const int n = p->num_anchors;
  s->gts.clear();
  for (int k = 0; k < p->num_labels; ++k) {
    if (ssd::valid_gt(labels + k * p->label_width)) s->gts.push_back(k);
  }
  const int g = static_cast<int>(s->gts.size());
  s->overlaps.resize(static_cast<size_t>(g) * n);
  for (int k = 0; k < g; ++k) {
    const float* box = labels + s->gts[k] * p->label_width + 1;
    for (int j = 0; j < n; ++j) s->overlaps[k * n + j] = ssd::iou(anchors + j * 4, box);
  }
  s->best_iou.assign(n, 0.f);
  s->match.assign(n, -1);
  s->negative.assign(n, 0);
  int positives = bipartite_match(p, s);
  positives += threshold_match(p, s);
  mine_negatives(p, logits, positives, s);
  for (int j = 0; j < n; ++j) {
    float* lt = loc_target + j * 4;
    float* lm = loc_mask + j * 4;
    const int m = s->match[j];
    if (m >= 0) {
      const float* row = labels + m * p->label_width;
      ssd::encode(anchors + j * 4, row + 1, p->variances, lt);
      lm[0] = lm[1] = lm[2] = lm[3] = 1.f;
      cls_target[j] = row[0] + 1.f;
    } else {
      lt[0] = lt[1] = lt[2] = lt[3] = 0.f;
      lm[0] = lm[1] = lm[2] = lm[3] = 0.f;
      cls_target[j] = s->negative[j] ? 0.f : p->ignore_label;
    }
  }
}

}  // namespace

extern "C" void ssd_target_cpu(const SsdTargetParams* p, const float* anchors,
                               const float* labels, const float* cls_preds, float* loc_target,
                               float* loc_mask, float* cls_target) {
  const long n = p->num_anchors;
  // Images are independent; each thread keeps its own scratch buffers.
#pragma omp parallel num_threads(ssd::cpu_threads())
  {
    Scratch s;
#pragma omp for schedule(dynamic)
    for (int b = 0; b < p->batch; ++b) {
      target_image(p, anchors, labels + static_cast<long>(b) * p->num_labels * p->label_width,
                   cls_preds + b * p->num_classes * n, loc_target + b * n * 4,
                   loc_mask + b * n * 4, cls_target + b * n, &s);
    }
  }
}
