// Plain C entry points of the SSD operators: raw float32 pointers, no MXNet types, so the
// same kernels serve the MXNet registration (register.cc) and direct checks through ctypes
// (tests/gpu). Layouts follow MXNet's contrib operators:
//   prior:     out (H*W*A, 4)
//   target:    anchors (N, 4), labels (B, M, W>=5), cls_preds (B, C, N)
//              -> loc_target (B, N*4), loc_mask (B, N*4), cls_target (B, N)
//   detection: cls_prob (B, C, N), loc_pred (B, N*4), anchors (N, 4)
//              -> out (B, N, 6) best-class mode, (B, keep_topk, 6) per-class mode
#ifndef SSD_OPS_SSD_OPS_H_
#define SSD_OPS_SSD_OPS_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int height, width;            // feature map
  int num_sizes, num_ratios;    // A = num_sizes + num_ratios - 1 anchors per cell
  const float* sizes;           // host pointers (the CUDA launcher copies them)
  const float* ratios;
  float step_y, step_x;         // <= 0: 1 / height, 1 / width
  float offset_y, offset_x;
  int clip;
} SsdPriorParams;

typedef struct {
  int batch, num_anchors, num_labels, label_width, num_classes;
  float overlap_threshold;
  float ignore_label;
  float negative_mining_ratio;  // <= 0: every unmatched anchor is a negative
  float negative_mining_thresh;
  int minimum_negative_samples;
  float variances[4];
} SsdTargetParams;

typedef struct {
  int batch, num_classes, num_anchors;
  float threshold;
  int background_id;
  float nms_threshold;
  int force_suppress;
  int nms_topk;                 // <= 0: no limit
  int per_class;                // 0: MultiBoxDetection's best-class output
  int keep_topk;                // rows of the per-class output
  int clip;
  float variances[4];
} SsdDetectionParams;

// Number of output rows per image of the detection operator.
int ssd_detection_rows(const SsdDetectionParams* p);

void ssd_prior_cpu(const SsdPriorParams* p, float* out);
void ssd_target_cpu(const SsdTargetParams* p, const float* anchors, const float* labels,
                    const float* cls_preds, float* loc_target, float* loc_mask,
                    float* cls_target);
void ssd_detection_cpu(const SsdDetectionParams* p, const float* cls_prob,
                       const float* loc_pred, const float* anchors, float* out);

// CUDA launchers (built with WITH_CUDA; prior.cu, target.cu, detection.cu): device pointers,
// a cudaStream_t passed as void*, and a device workspace of at least the returned number of
// bytes. Return a cudaError_t.
size_t ssd_target_workspace_bytes(const SsdTargetParams* p);
size_t ssd_detection_workspace_bytes(const SsdDetectionParams* p);
int ssd_prior_cuda(const SsdPriorParams* p, float* out, void* stream);
int ssd_target_cuda(const SsdTargetParams* p, const float* anchors, const float* labels,
                    const float* cls_preds, float* loc_target, float* loc_mask,
                    float* cls_target, void* workspace, void* stream);
int ssd_detection_cuda(const SsdDetectionParams* p, const float* cls_prob,
                       const float* loc_pred, const float* anchors, float* out,
                       void* workspace, void* stream);
int ssd_zero_cuda(float* data, long count, void* stream);

#ifdef __cplusplus
}
#endif

#endif  // SSD_OPS_SSD_OPS_H_
