"""Deployment: the input normalizer (``normalize``), the MXNet symbol export (``symbol``),
the ONNX export (``to_onnx``) and its NumPy post-processing (``postprocess``, MXNet-free),
checks of both in fresh processes (``verify``), image input/output (``io``) and one loader
for checkpoints and exports (``loading``)."""
