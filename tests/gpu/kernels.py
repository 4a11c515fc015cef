"""ctypes bindings of the operators' plain C entry points (ops/ssd_ops.h), for the GPU
checks (tests/gpu/test_kernels.py): they call the CUDA launchers on CuPy/PyTorch device
pointers and compare with the CPU functions, NumPy in and out, without MXNet. Layouts are
those of ops/ssd_ops.h.
"""

import ctypes

import numpy as np

from ssd_gluon.constants import VARIANCES

_VAR4 = ctypes.c_float * 4


class PriorParams(ctypes.Structure):
    _fields_ = [
        ("height", ctypes.c_int),
        ("width", ctypes.c_int),
        ("num_sizes", ctypes.c_int),
        ("num_ratios", ctypes.c_int),
        ("sizes", ctypes.POINTER(ctypes.c_float)),
        ("ratios", ctypes.POINTER(ctypes.c_float)),
        ("step_y", ctypes.c_float),
        ("step_x", ctypes.c_float),
        ("offset_y", ctypes.c_float),
        ("offset_x", ctypes.c_float),
        ("clip", ctypes.c_int),
    ]


class TargetParams(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int),
        ("num_anchors", ctypes.c_int),
        ("num_labels", ctypes.c_int),
        ("label_width", ctypes.c_int),
        ("num_classes", ctypes.c_int),
        ("overlap_threshold", ctypes.c_float),
        ("ignore_label", ctypes.c_float),
        ("negative_mining_ratio", ctypes.c_float),
        ("negative_mining_thresh", ctypes.c_float),
        ("minimum_negative_samples", ctypes.c_int),
        ("variances", _VAR4),
    ]


class DetectionParams(ctypes.Structure):
    _fields_ = [
        ("batch", ctypes.c_int),
        ("num_classes", ctypes.c_int),
        ("num_anchors", ctypes.c_int),
        ("threshold", ctypes.c_float),
        ("background_id", ctypes.c_int),
        ("nms_threshold", ctypes.c_float),
        ("force_suppress", ctypes.c_int),
        ("nms_topk", ctypes.c_int),
        ("per_class", ctypes.c_int),
        ("keep_topk", ctypes.c_int),
        ("clip", ctypes.c_int),
        ("variances", _VAR4),
    ]


def prior_params(
    height, width, sizes=(1.0,), ratios=(1.0,), steps=(-1.0, -1.0), offsets=(0.5, 0.5), clip=False
):
    """PriorParams for a (height, width) feature map; keeps its arrays alive on the object."""
    s = (ctypes.c_float * len(sizes))(*sizes)
    r = (ctypes.c_float * len(ratios))(*ratios)
    p = PriorParams(
        height,
        width,
        len(sizes),
        len(ratios),
        ctypes.cast(s, ctypes.POINTER(ctypes.c_float)),
        ctypes.cast(r, ctypes.POINTER(ctypes.c_float)),
        steps[0],
        steps[1],
        offsets[0],
        offsets[1],
        int(clip),
    )
    p._keep = (s, r)
    return p


def target_params(
    batch,
    num_anchors,
    num_labels,
    label_width,
    num_classes,
    overlap_threshold=0.5,
    ignore_label=-1.0,
    negative_mining_ratio=-1.0,
    negative_mining_thresh=0.5,
    minimum_negative_samples=0,
    variances=VARIANCES,
):
    return TargetParams(
        batch,
        num_anchors,
        num_labels,
        label_width,
        num_classes,
        overlap_threshold,
        ignore_label,
        negative_mining_ratio,
        negative_mining_thresh,
        minimum_negative_samples,
        _VAR4(*variances),
    )


def detection_params(
    batch,
    num_classes,
    num_anchors,
    threshold=0.01,
    background_id=0,
    nms_threshold=0.5,
    force_suppress=False,
    nms_topk=-1,
    per_class=False,
    keep_topk=200,
    clip=True,
    variances=VARIANCES,
):
    return DetectionParams(
        batch,
        num_classes,
        num_anchors,
        threshold,
        background_id,
        nms_threshold,
        int(force_suppress),
        nms_topk,
        int(per_class),
        keep_topk,
        int(clip),
        _VAR4(*variances),
    )


class Kernels:
    """Loads a library built from ops/ (the MXNet one or ``--kernels-only``) with ctypes."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.has_cuda = hasattr(self.lib, "ssd_target_cuda")
        self.lib.ssd_detection_rows.restype = ctypes.c_int
        if self.has_cuda:
            self.lib.ssd_target_workspace_bytes.restype = ctypes.c_size_t
            self.lib.ssd_detection_workspace_bytes.restype = ctypes.c_size_t

    # ---- CPU, NumPy in and out ---------------------------------------------------------
    def prior_cpu(self, p):
        per_cell = p.num_sizes + p.num_ratios - 1
        out = np.empty((p.height * p.width * per_cell, 4), np.float32)
        self.lib.ssd_prior_cpu(ctypes.byref(p), _ptr(out))
        return out

    def target_cpu(self, p, anchors, labels, cls_preds):
        b, n = p.batch, p.num_anchors
        outs = [
            np.empty((b, n * 4), np.float32),
            np.empty((b, n * 4), np.float32),
            np.empty((b, n), np.float32),
        ]
        self.lib.ssd_target_cpu(
            ctypes.byref(p),
            _ptr(_f32(anchors)),
            _ptr(_f32(labels)),
            _ptr(_f32(cls_preds)),
            *[_ptr(o) for o in outs],
        )
        return outs

    def detection_cpu(self, p, cls_prob, loc_pred, anchors):
        out = np.empty((p.batch, self.lib.ssd_detection_rows(ctypes.byref(p)), 6), np.float32)
        self.lib.ssd_detection_cpu(
            ctypes.byref(p),
            _ptr(_f32(cls_prob)),
            _ptr(_f32(loc_pred)),
            _ptr(_f32(anchors)),
            _ptr(out),
        )
        return out

    # ---- CUDA, raw device pointers (ints) and a stream handle ---------------------------
    def target_workspace_bytes(self, p):
        return self.lib.ssd_target_workspace_bytes(ctypes.byref(p))

    def detection_workspace_bytes(self, p):
        return self.lib.ssd_detection_workspace_bytes(ctypes.byref(p))

    def prior_cuda(self, p, out, stream=0):
        return self.lib.ssd_prior_cuda(ctypes.byref(p), _vp(out), _vp(stream))

    def target_cuda(
        self, p, anchors, labels, cls_preds, loc_target, loc_mask, cls_target, workspace, stream=0
    ):
        return self.lib.ssd_target_cuda(
            ctypes.byref(p),
            *[
                _vp(x)
                for x in (
                    anchors,
                    labels,
                    cls_preds,
                    loc_target,
                    loc_mask,
                    cls_target,
                    workspace,
                    stream,
                )
            ],
        )

    def detection_cuda(self, p, cls_prob, loc_pred, anchors, out, workspace, stream=0):
        return self.lib.ssd_detection_cuda(
            ctypes.byref(p),
            *[_vp(x) for x in (cls_prob, loc_pred, anchors, out, workspace, stream)],
        )


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


def _vp(x):
    return ctypes.c_void_p(int(x))
