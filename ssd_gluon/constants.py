"""The detector's fixed conventions, one definition each, shared by every layer (the graph,
the NumPy deployment path, the exports, the command-line defaults). Pure Python: importing
this module needs neither MXNet nor NumPy.
"""

# The paper's "variances": box offsets are divided by these before regression (x, y, w, h).
VARIANCES = (0.1, 0.1, 0.2, 0.2)

# Post-processing of the paper's DetectionOutput (VOC and COCO models alike): NMS IoU
# threshold, candidates kept per class before NMS, detections kept per image, and the
# score a candidate must exceed.
POSTPROCESS = dict(nms_thresh=0.45, nms_topk=400, post_nms=200, score_thresh=0.01)

# ImageNet statistics of RGB pixels on the 0-255 scale. The network expects
# (pixel - MEAN_RGB) / STD_RGB; the Caffe VGG weights expect pixel - mean, which the VGG
# base restores by multiplying its input by STD_RGB.
MEAN_RGB = (123.675, 116.28, 103.53)
STD_RGB = (58.395, 57.12, 57.375)
