// CUDA anchors (ssd_prior_cuda, ssd_ops.h): one thread per anchor around ssd::prior_box,
// the work of prior.cc's loop. Also ssd_zero_cuda, the zero backward of all three operators:
// it belongs to none of them, and here, beside the one launcher that needs no workspace, it
// keeps target.cu and detection.cu about their own operator only.
// Launchers never synchronize and copy no data between host and device: their host-side
// parameters travel as kernel arguments.
#include <cuda_runtime.h>

#include "cuda_block.cuh"
#include "ssd_box.h"
#include "ssd_ops.h"

namespace ssd {
namespace {

constexpr int kMaxPriorValues = 32;  // sizes / ratios passed by value to the prior kernel

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

}  // namespace
}  // namespace ssd

extern "C" int ssd_prior_cuda(const SsdPriorParams* p, float* out, void* stream) {
  if (p->num_sizes < 1 || p->num_ratios < 1 || p->num_sizes > ssd::kMaxPriorValues ||
      p->num_ratios > ssd::kMaxPriorValues) {
    return cudaErrorInvalidValue;
  }
  ssd::PriorArgs a;
  a.height = p->height;
  a.width = p->width;
  a.per_cell = p->num_sizes + p->num_ratios - 1;
  a.num_sizes = p->num_sizes;
  a.clip = p->clip;
  // Same expressions as prior.cc, evaluated once on the host.
  a.step_y = ssd::prior_step(p->step_y, p->height);
  a.step_x = ssd::prior_step(p->step_x, p->width);
  a.offset_y = p->offset_y;
  a.offset_x = p->offset_x;
  a.aspect = static_cast<float>(p->height) / p->width;
  for (int i = 0; i < ssd::kMaxPriorValues; ++i) {
    a.sizes[i] = i < p->num_sizes ? p->sizes[i] : 0.f;
    a.ratios[i] = i < p->num_ratios ? p->ratios[i] : 0.f;
  }
  const long total = static_cast<long>(p->height) * p->width * a.per_cell;
  if (total <= 0) return cudaSuccess;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  ssd::prior_kernel<<<ssd::grid_for(total, ssd::kElementThreads), ssd::kElementThreads, 0, s>>>(
      a, out);
  return cudaGetLastError();
}

extern "C" int ssd_zero_cuda(float* data, long count, void* stream) {
  if (count <= 0) return cudaSuccess;
  return cudaMemsetAsync(data, 0, static_cast<size_t>(count) * sizeof(float),
                         static_cast<cudaStream_t>(stream));
}
