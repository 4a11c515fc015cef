"""What happens to an image between the record and the network: the augmentation presets of
MXNet's C++ ``ImageDetRecordIter`` and the inverse of its normalization. The forward
normalization, (pixel - MEAN_RGB) / STD_RGB with ``constants``' numbers, runs in the
iterator (``loader``) and, for deployed detectors, in ``deploy.normalize.ImageNormalizer``."""

import numpy as np

from ..constants import MEAN_RGB, STD_RGB
from ..utils.errors import UserError

# The paper's augmentation (section 3.6 and the "zoom out" of SSD300*), in MXNet's order:
# photometric distortion, mirror, expansion onto a mean-filled canvas up to 4x (p 0.5), one
# of five min-IoU crop samplers (IoU >= 0.1 ... 0.9 with some object, scale [0.3, 1], aspect
# [0.5, 2], 50 trials; an object is kept when its center stays inside), resize.
PAPER_PHOTOMETRIC = dict(
    max_random_hue=18,
    random_hue_prob=0.5,
    max_random_saturation=32,
    random_saturation_prob=0.5,
    max_random_illumination=32,
    random_illumination_prob=0.5,
    max_random_contrast=0.5,
    random_contrast_prob=0.5,
)
PAPER_GEOMETRY = dict(
    rand_crop_prob=5.0 / 6,
    num_crop_sampler=5,
    min_crop_overlaps=(0.1, 0.3, 0.5, 0.7, 0.9),
    max_crop_overlaps=(1.0,) * 5,
    min_crop_scales=(0.3,) * 5,
    max_crop_scales=(1.0,) * 5,
    min_crop_aspect_ratios=(0.5,) * 5,
    max_crop_aspect_ratios=(2.0,) * 5,
    max_crop_trials=(50,) * 5,
    crop_emit_mode="center",
    rand_pad_prob=0.5,
    max_pad_scale=4.0,
    fill_value=124,
    rand_mirror_prob=0.5,
)
PAPER_AUG = dict(PAPER_PHOTOMETRIC, **PAPER_GEOMETRY)
# Milder setting for the compact demo model (short schedule, small objects hurt it).
LIGHT_AUG = dict(PAPER_AUG, rand_crop_prob=0.5, max_pad_scale=1.5, rand_pad_prob=0.3)
AUGMENTATIONS = {"paper": PAPER_AUG, "light": LIGHT_AUG, "none": {}}


def augmentation(augment):
    """ImageDetRecordIter parameters of a preset name (a key of AUGMENTATIONS), or ``augment``
    itself when it is already a dict of them."""
    if isinstance(augment, dict):
        return augment
    if augment not in AUGMENTATIONS:
        raise UserError(
            "augment must be one of %s (or a dict of ImageDetRecordIter "
            "augmentation parameters)" % ", ".join(AUGMENTATIONS)
        )
    return AUGMENTATIONS[augment]


def _channels(values):
    return np.array(values, np.float32).reshape(1, 3, 1, 1)


def denormalize(images):
    """The network's input (B, 3, H, W) NumPy, (pixel - mean) / std -> RGB pixels 0-255."""
    return images * _channels(STD_RGB) + _channels(MEAN_RGB)
