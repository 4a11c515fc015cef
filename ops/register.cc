// MXNet registration (lib_api.h) of ssd_multibox_prior / _target / _detection: attribute
// parsing, shape and type inference, and thin forward functions that call the C entry
// points of ssd_ops.h. Compiled by the host compiler only: lib_api.h does not build under
// nvcc 13, and the CUDA side needs nothing from it but a stream and a workspace.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "mxnet/lib_api.h"
#include "ssd_ops.h"

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;
using mxnet::ext::MX_FAIL;
using mxnet::ext::MX_SUCCESS;

namespace {

// lib_api keeps every error message of the process and MXNet prints them all on each new
// failure; dropping the old ones makes a message name only the current problem. MXerrorMsgs
// holds a single std::vector<std::stringstream*> (lib_api.h).
void clear_errors() {
  auto* msgs = reinterpret_cast<std::vector<std::stringstream*>*>(mxnet::ext::MXerrorMsgs::get());
  for (std::stringstream* m : *msgs) delete m;
  msgs->clear();
}
#define SSD_ERROR (clear_errors(), MX_ERROR_MSG)

typedef std::unordered_map<std::string, std::string> Attrs;
typedef std::vector<std::vector<unsigned int>> Shapes;

// Attribute values arrive as Python's str() of the keyword: "0.5", "True", "(0.1, 0.2)".
// Parsed on every call, so with strtof rather than streams.
std::vector<float> floats(const Attrs& a, const char* key, std::vector<float> dflt) {
  auto it = a.find(key);
  if (it == a.end()) return dflt;
  std::vector<float> out;
  const char* s = it->second.c_str();
  while (*s) {
    char* end;
    const float v = std::strtof(s, &end);
    if (end == s) {
      ++s;  // brackets, commas, spaces
    } else {
      out.push_back(v);
      s = end;
    }
  }
  return out;
}

float number(const Attrs& a, const char* key, float dflt) {
  std::vector<float> v = floats(a, key, {dflt});
  return v.empty() ? dflt : v[0];
}

bool flag(const Attrs& a, const char* key, bool dflt) {
  auto it = a.find(key);
  if (it == a.end()) return dflt;
  const std::string& s = it->second;
  return s == "1" || s == "True" || s == "true";
}

// MultiBoxTarget's and MultiBoxDetection's default variances (x, y, w, h). Here and not in
// ssd_box.h: like every other attribute default it belongs to the MXNet interface, while the
// kernels always receive the variances in their parameters.
constexpr float kDefaultVariances[4] = {0.1f, 0.1f, 0.2f, 0.2f};

// The "variances" attribute of ``op`` into out[4].
bool parse_variances(const Attrs& a, const char* op, float* out) {
  const std::vector<float> dflt(std::begin(kDefaultVariances), std::end(kDefaultVariances));
  const std::vector<float> var = floats(a, "variances", dflt);
  if (var.size() != 4) {
    SSD_ERROR << op << ": variances needs 4 values, got " << var.size();
    return false;
  }
  std::memcpy(out, var.data(), sizeof(kDefaultVariances));
  return true;
}

bool float32_only(const char* op, std::vector<int>* in, std::vector<int>* out, size_t n_out) {
  for (size_t i = 0; i < in->size(); ++i) {
    if ((*in)[i] != mxnet::ext::kFloat32) {
      SSD_ERROR << op << ": input " << i << " must be float32 (dtype code " << (*in)[i] << ")";
      return false;
    }
  }
  out->assign(n_out, mxnet::ext::kFloat32);
  return true;
}

#ifdef SSD_WITH_CUDA
bool on_gpu(const MXTensor& t) { return t.ctx.dev_type == "gpu"; }

// OpResource::alloc_gpu takes an int: refuse what it cannot express instead of wrapping.
void* gpu_workspace(const char* op, const OpResource& res, size_t bytes) {
  if (bytes > static_cast<size_t>(INT_MAX)) {
    SSD_ERROR << op << ": needs " << bytes << " bytes of GPU workspace, more than MXNet's "
              << "allocator accepts; lower nms_topk or the batch size";
    return nullptr;
  }
  return res.alloc_gpu(static_cast<int>(bytes));
}

MXReturnValue cuda_status(const char* op, int err) {
  if (err == 0) return MX_SUCCESS;
  SSD_ERROR << op << ": CUDA error " << err;
  return MX_FAIL;
}
#endif

// ---- ssd_multibox_prior ---------------------------------------------------------------

struct Prior {
  std::vector<float> sizes, ratios, steps, offsets;
  SsdPriorParams p;
};

bool parse_prior(const Attrs& a, Prior* r) {
  r->sizes = floats(a, "sizes", {1.f});
  r->ratios = floats(a, "ratios", {1.f});
  r->steps = floats(a, "steps", {-1.f, -1.f});
  r->offsets = floats(a, "offsets", {0.5f, 0.5f});
  if (r->sizes.empty() || r->ratios.empty() || r->steps.size() != 2 || r->offsets.size() != 2) {
    SSD_ERROR << "ssd_multibox_prior: sizes and ratios need at least one value, steps and "
                 << "offsets exactly two (y, x)";
    return false;
  }
  for (float v : r->sizes) {
    if (v <= 0) { SSD_ERROR << "ssd_multibox_prior: sizes must be positive"; return false; }
  }
  for (float v : r->ratios) {
    if (v <= 0) { SSD_ERROR << "ssd_multibox_prior: ratios must be positive"; return false; }
  }
  r->p.num_sizes = static_cast<int>(r->sizes.size());
  r->p.num_ratios = static_cast<int>(r->ratios.size());
  r->p.sizes = r->sizes.data();
  r->p.ratios = r->ratios.data();
  r->p.step_y = r->steps[0];
  r->p.step_x = r->steps[1];
  r->p.offset_y = r->offsets[0];
  r->p.offset_x = r->offsets[1];
  r->p.clip = flag(a, "clip", false);
  return true;
}

MXReturnValue prior_attrs(const Attrs& a, int* n_in, int* n_out) {
  Prior r;
  *n_in = 1;
  *n_out = 1;
  return parse_prior(a, &r) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue prior_type(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return float32_only("ssd_multibox_prior", in, out, 1) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue prior_shape(const Attrs& a, Shapes* in, Shapes* out) {
  const std::vector<unsigned int>& d = (*in)[0];
  Prior r;
  if (!parse_prior(a, &r)) return MX_FAIL;
  if (d.size() != 4) {
    SSD_ERROR << "ssd_multibox_prior: data must be (B, C, H, W), got " << d.size() << " dims";
    return MX_FAIL;
  }
  const unsigned int per_cell = r.p.num_sizes + r.p.num_ratios - 1;
  out->assign(1, {1u, d[2] * d[3] * per_cell, 4u});
  return MX_SUCCESS;
}

MXReturnValue prior_forward(const Attrs& a, std::vector<MXTensor>* in,
                            std::vector<MXTensor>* out, const OpResource& res) {
  Prior r;
  parse_prior(a, &r);
  r.p.height = static_cast<int>((*in)[0].shape[2]);
  r.p.width = static_cast<int>((*in)[0].shape[3]);
  float* dst = (*out)[0].data<float>();
#ifdef SSD_WITH_CUDA
  if (on_gpu((*out)[0])) {
    return cuda_status("ssd_multibox_prior", ssd_prior_cuda(&r.p, dst, res.get_cuda_stream()));
  }
#endif
  ssd_prior_cpu(&r.p, dst);
  return MX_SUCCESS;
}

// ---- ssd_multibox_target --------------------------------------------------------------

bool parse_target(const Attrs& a, SsdTargetParams* p) {
  if (!parse_variances(a, "ssd_multibox_target", p->variances)) return false;
  p->overlap_threshold = number(a, "overlap_threshold", 0.5f);
  p->ignore_label = number(a, "ignore_label", -1.f);
  p->negative_mining_ratio = number(a, "negative_mining_ratio", -1.f);
  p->negative_mining_thresh = number(a, "negative_mining_thresh", 0.5f);
  p->minimum_negative_samples = static_cast<int>(number(a, "minimum_negative_samples", 0.f));
  if (p->negative_mining_ratio > 0 && p->negative_mining_thresh <= 0) {
    SSD_ERROR << "ssd_multibox_target: negative_mining_thresh must be > 0 when mining";
    return false;
  }
  return true;
}

MXReturnValue target_attrs(const Attrs& a, int* n_in, int* n_out) {
  SsdTargetParams p;
  *n_in = 3;
  *n_out = 3;
  return parse_target(a, &p) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue target_type(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return float32_only("ssd_multibox_target", in, out, 3) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue target_shape(const Attrs&, Shapes* in, Shapes* out) {
  const std::vector<unsigned int>& an = (*in)[0];
  const std::vector<unsigned int>& lb = (*in)[1];
  const std::vector<unsigned int>& cp = (*in)[2];
  if (an.size() != 3 || an[0] != 1 || an[2] != 4) {
    SSD_ERROR << "ssd_multibox_target: anchor must be (1, N, 4)";
    return MX_FAIL;
  }
  if (lb.size() != 3 || lb[1] < 1 || lb[2] < 5) {
    SSD_ERROR << "ssd_multibox_target: label must be (B, M, W) with M >= 1 and W >= 5 "
                 << "([class, xmin, ymin, xmax, ymax, ...])";
    return MX_FAIL;
  }
  if (cp.size() != 3 || cp[0] != lb[0] || cp[2] != an[1] || cp[1] < 2) {
    SSD_ERROR << "ssd_multibox_target: cls_pred must be (B, C, N) with the label's B and "
                 << "the anchors' N (got N=" << (cp.size() == 3 ? cp[2] : 0) << " vs "
                 << an[1] << ")";
    return MX_FAIL;
  }
  out->assign({{lb[0], an[1] * 4}, {lb[0], an[1] * 4}, {lb[0], an[1]}});
  return MX_SUCCESS;
}

MXReturnValue target_forward(const Attrs& a, std::vector<MXTensor>* in,
                             std::vector<MXTensor>* out, const OpResource& res) {
  SsdTargetParams p;
  parse_target(a, &p);
  MXTensor& labels = (*in)[1];
  p.batch = static_cast<int>(labels.shape[0]);
  p.num_labels = static_cast<int>(labels.shape[1]);
  p.label_width = static_cast<int>(labels.shape[2]);
  p.num_anchors = static_cast<int>((*in)[0].shape[1]);
  p.num_classes = static_cast<int>((*in)[2].shape[1]);
  const float* anchors = (*in)[0].data<float>();
  const float* cls_preds = (*in)[2].data<float>();
  float* lt = (*out)[0].data<float>();
  float* lm = (*out)[1].data<float>();
  float* ct = (*out)[2].data<float>();
#ifdef SSD_WITH_CUDA
  if (on_gpu(labels)) {
    void* ws = gpu_workspace("ssd_multibox_target", res, ssd_target_workspace_bytes(&p));
    if (ws == nullptr) return MX_FAIL;
    return cuda_status("ssd_multibox_target",
                       ssd_target_cuda(&p, anchors, labels.data<float>(), cls_preds, lt, lm,
                                       ct, ws, res.get_cuda_stream()));
  }
#endif
  ssd_target_cpu(&p, anchors, labels.data<float>(), cls_preds, lt, lm, ct);
  return MX_SUCCESS;
}

// ---- ssd_multibox_detection -----------------------------------------------------------

bool parse_detection(const Attrs& a, SsdDetectionParams* p) {
  if (!parse_variances(a, "ssd_multibox_detection", p->variances)) return false;
  p->clip = flag(a, "clip", true);
  p->threshold = number(a, "threshold", 0.01f);
  p->background_id = static_cast<int>(number(a, "background_id", 0.f));
  p->nms_threshold = number(a, "nms_threshold", 0.5f);
  p->force_suppress = flag(a, "force_suppress", false);
  p->nms_topk = static_cast<int>(number(a, "nms_topk", -1.f));
  p->per_class = flag(a, "per_class", false);
  p->keep_topk = static_cast<int>(number(a, "keep_topk", 200.f));
  if (p->per_class && p->force_suppress) {
    SSD_ERROR << "ssd_multibox_detection: force_suppress applies to the best-class mode "
                 << "only (per_class=True runs NMS within each class)";
    return false;
  }
  return true;
}

MXReturnValue detection_attrs(const Attrs& a, int* n_in, int* n_out) {
  SsdDetectionParams p;
  *n_in = 3;
  *n_out = 1;
  return parse_detection(a, &p) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue detection_type(const Attrs&, std::vector<int>* in, std::vector<int>* out) {
  return float32_only("ssd_multibox_detection", in, out, 1) ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue detection_shape(const Attrs& a, Shapes* in, Shapes* out) {
  const std::vector<unsigned int>& cp = (*in)[0];
  const std::vector<unsigned int>& lp = (*in)[1];
  const std::vector<unsigned int>& an = (*in)[2];
  SsdDetectionParams p;
  if (!parse_detection(a, &p)) return MX_FAIL;
  if (cp.size() != 3 || an.size() != 3 || an[0] != 1 || an[2] != 4 || cp[2] != an[1]) {
    SSD_ERROR << "ssd_multibox_detection: cls_prob must be (B, C, N) and anchor (1, N, 4)";
    return MX_FAIL;
  }
  if (lp.size() != 2 || lp[0] != cp[0] || lp[1] != an[1] * 4) {
    SSD_ERROR << "ssd_multibox_detection: loc_pred must be (B, N*4)";
    return MX_FAIL;
  }
  if (p.background_id < 0 || p.background_id >= static_cast<int>(cp[1])) {
    SSD_ERROR << "ssd_multibox_detection: background_id " << p.background_id
                 << " outside the " << cp[1] << " classes";
    return MX_FAIL;
  }
  p.num_anchors = static_cast<int>(an[1]);
  out->assign(1, {cp[0], static_cast<unsigned int>(ssd_detection_rows(&p)), 6u});
  return MX_SUCCESS;
}

MXReturnValue detection_forward(const Attrs& a, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  SsdDetectionParams p;
  parse_detection(a, &p);
  MXTensor& prob = (*in)[0];
  p.batch = static_cast<int>(prob.shape[0]);
  p.num_classes = static_cast<int>(prob.shape[1]);
  p.num_anchors = static_cast<int>(prob.shape[2]);
  const float* loc = (*in)[1].data<float>();
  const float* anchors = (*in)[2].data<float>();
  float* dst = (*out)[0].data<float>();
#ifdef SSD_WITH_CUDA
  if (on_gpu(prob)) {
    void* ws = gpu_workspace("ssd_multibox_detection", res, ssd_detection_workspace_bytes(&p));
    if (ws == nullptr) return MX_FAIL;
    return cuda_status("ssd_multibox_detection",
                       ssd_detection_cuda(&p, prob.data<float>(), loc, anchors, dst, ws,
                                          res.get_cuda_stream()));
  }
#endif
  ssd_detection_cpu(&p, prob.data<float>(), loc, anchors, dst);
  return MX_SUCCESS;
}

// The operators are not differentiable: like the built-ins, their inputs get zero gradient.
// Backward inputs are (output grads, inputs, outputs); its outputs are the input grads.
MXReturnValue zero_backward(const Attrs&, std::vector<MXTensor>*, std::vector<MXTensor>* out,
                            const OpResource& res) {
  for (MXTensor& g : *out) {
#ifdef SSD_WITH_CUDA
    if (on_gpu(g)) {
      MXReturnValue r = cuda_status("ssd_multibox backward",
                                    ssd_zero_cuda(g.data<float>(), g.size(), res.get_cuda_stream()));
      if (r != MX_SUCCESS) return r;
      continue;
    }
#endif
    std::memset(g.data<float>(), 0, sizeof(float) * g.size());
  }
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(ssd_multibox_prior)
    .setParseAttrs(prior_attrs)
    .setInferType(prior_type)
    .setInferShape(prior_shape)
    .setForward(prior_forward, "cpu")
    .setBackward(zero_backward, "cpu")
#ifdef SSD_WITH_CUDA
    .setForward(prior_forward, "gpu")
    .setBackward(zero_backward, "gpu")
#endif
    ;

REGISTER_OP(ssd_multibox_target)
    .setParseAttrs(target_attrs)
    .setInferType(target_type)
    .setInferShape(target_shape)
    .setForward(target_forward, "cpu")
    .setBackward(zero_backward, "cpu")
#ifdef SSD_WITH_CUDA
    .setForward(target_forward, "gpu")
    .setBackward(zero_backward, "gpu")
#endif
    ;

REGISTER_OP(ssd_multibox_detection)
    .setParseAttrs(detection_attrs)
    .setInferType(detection_type)
    .setInferShape(detection_shape)
    .setForward(detection_forward, "cpu")
    .setBackward(zero_backward, "cpu")
#ifdef SSD_WITH_CUDA
    .setForward(detection_forward, "gpu")
    .setBackward(zero_backward, "gpu")
#endif
    ;

MXReturnValue initialize(int version) {
  if (version < 10900) {
    SSD_ERROR << "ssd_gluon ops need MXNet >= 1.9 (found version code " << version << ")";
    return MX_FAIL;
  }
  return MX_SUCCESS;
}
