"""SSD (Single Shot MultiBox Detector) in MXNet Gluon.

The package, by concern (the imports run downwards only):

* ``deploy``, ``engine``  - exports and deployment; training and evaluation runtime
* ``model``, ``data``     - the network; datasets, records and iterators
* ``evaluation``          - the VOC metric and speed measurements
* ``ops``, ``constants``, ``utils`` - the operator switch, shared conventions, helpers

The public names below are imported on first use, so ``import ssd_gluon`` (and the NumPy-only
``ssd_gluon.deploy.postprocess``) does not load MXNet.
"""

import importlib

__version__ = "0.3.0"

# public name -> module that defines it
_EXPORTS = {
    "get_model": "ssd_gluon.model.zoo",
    "list_models": "ssd_gluon.model.zoo",
    "load_network": "ssd_gluon.model.zoo",
    "load_gluoncv_parameters": "ssd_gluon.model.weights",
    "load_parameters": "ssd_gluon.model.weights",
    "SSD": "ssd_gluon.model.ssd",
    "SSDPredictor": "ssd_gluon.model.predictor",
    "VOCMApMetric": "ssd_gluon.evaluation.voc_map",
    "load_detector": "ssd_gluon.deploy.loading",
    "ops": "ssd_gluon.ops",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError("module 'ssd_gluon' has no attribute %r" % name)
    module = importlib.import_module(_EXPORTS[name])
    value = module if name == "ops" else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
