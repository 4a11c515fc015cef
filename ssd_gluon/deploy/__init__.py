"""Deployment: the input normalizer (``normalize``), the MXNet symbol export (``symbol``),
the ONNX export (``to_onnx``: the raw heads, and with ``onnx_nms`` one graph from pixels to
detections with ONNX's NonMaxSuppression), the NumPy post-processing of the raw heads
(``postprocess``, MXNet-free),
checks of both in fresh processes (``verify``), int8 quantization (``quantize``), image
input/output (``io``) and one loader for checkpoints and exports (``loading``)."""
