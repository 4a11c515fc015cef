// CPU anchors: one loop over cells and anchors around ssd::prior_box.
#include "ssd_box.h"
#include "ssd_ops.h"

extern "C" void ssd_prior_cpu(const SsdPriorParams* p, float* out) {
  const int per_cell = p->num_sizes + p->num_ratios - 1;
  const float step_y = ssd::prior_step(p->step_y, p->height);
  const float step_x = ssd::prior_step(p->step_x, p->width);
  const float aspect = static_cast<float>(p->height) / p->width;
  for (int r = 0; r < p->height; ++r) {
    const float cy = (r + p->offset_y) * step_y;
    for (int c = 0; c < p->width; ++c) {
      const float cx = (c + p->offset_x) * step_x;
      float* cell = out + (static_cast<long>(r) * p->width + c) * per_cell * 4;
      for (int k = 0; k < per_cell; ++k) {
        ssd::prior_box(cx, cy, k, p->sizes, p->num_sizes, p->ratios, aspect, p->clip,
                       cell + k * 4);
      }
    }
  }
}
