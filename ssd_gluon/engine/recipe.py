"""Training recipes: the reference schedule of each preset, linear learning-rate scaling and
the step schedule with warm-up."""

import dataclasses

import mxnet as mx

from ..model.zoo import check_model_name
from ..utils.errors import UserError

# Learning rates are quoted for a global batch of this many images (the paper's batch).
REFERENCE_BATCH = 32


@dataclasses.dataclass
class Recipe:
    """Everything about how a preset is trained; every field can be overridden from
    ``scripts/train.py``'s command line."""

    optimizer: str  # 'sgd' (with momentum) or 'adam'
    lr: float  # learning rate for a global batch of REFERENCE_BATCH images
    momentum: float  # sgd only
    wd: float
    epochs: int
    warmup_epochs: float  # linear warm-up from lr/100
    lr_steps: tuple  # fractions of training where the lr drops x0.1
    batch_size: int  # images per worker
    augment: str  # a key of data.AUGMENTATIONS
    val_interval: int  # validate every this many epochs (and after the last)
    needs_pretrained_base: bool


def voc_recipe():
    """SSD300/SSD512 on VOC07+12 trainval (16,551 images): SGD momentum 0.9, wd 5e-4, lr 1e-3
    at batch 32, x0.1 at 2/3 and 5/6 of 240 epochs (~120k iterations at batch 32), the
    paper's augmentation, from an ImageNet VGG16. One epoch of warm-up guards the linearly
    scaled lr of large global batches (lr 4e-3 at 4 x 32 images)."""
    return Recipe(
        optimizer="sgd",
        lr=1e-3,
        momentum=0.9,
        wd=5e-4,
        epochs=240,
        warmup_epochs=1.0,
        lr_steps=(2 / 3, 5 / 6),
        batch_size=32,
        augment="paper",
        val_interval=10,
        needs_pretrained_base=True,
    )


def coco_recipe():
    """SSD300/SSD512 on COCO train2017 (117,266 images with objects), gluoncv's schedule:
    SGD momentum 0.9, wd 5e-4, lr 1e-3 at batch 32, x0.1 at epochs 160 and 200 of 240
    (~880k iterations at batch 32), the paper's augmentation, from an ImageNet VGG16,
    validated every 10 epochs. Those are the VOC recipe's numbers (160/240 = 2/3, 200/240 =
    5/6), so it is that recipe; gluoncv has no warm-up, its epoch of it guards the linearly
    scaled lr of large global batches here as well."""
    return voc_recipe()


def demo_recipe():
    """ssd_demo from scratch on the embedded sample in minutes on 2 CPU cores: Adam (SGD
    needs many more epochs from scratch), lr 2e-3 per 32 images (1e-3 at batch 16), half an
    epoch of warm-up, 24 epochs, the lighter augmentation."""
    return Recipe(
        optimizer="adam",
        lr=2e-3,
        momentum=0.9,
        wd=5e-4,
        epochs=24,
        warmup_epochs=0.5,
        lr_steps=(2 / 3, 5 / 6),
        batch_size=16,
        augment="light",
        val_interval=24,
        needs_pretrained_base=False,
    )


# The reference recipe of every preset of model.zoo (tests/engine/test_recipe.py checks that
# none is missing).
RECIPES = {
    "ssd_300_vgg16_atrous_voc": voc_recipe,
    "ssd_512_vgg16_atrous_voc": voc_recipe,
    "ssd_300_vgg16_atrous_coco": coco_recipe,
    "ssd_512_vgg16_atrous_coco": coco_recipe,
    "ssd_demo": demo_recipe,
}


def recipe_for(model):
    """The reference recipe of a model preset name."""
    return RECIPES[check_model_name(model)]()


FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "needs_pretrained_base")


def make_recipe(model, overrides, has_pretrained_base=False, from_scratch=False):
    """The preset's recipe with ``overrides`` (field -> value; None keeps the preset's;
    ``lr_steps`` may be a comma-separated string). A VOC or COCO preset without an ImageNet
    base is an error unless ``from_scratch``."""
    recipe = recipe_for(model)
    for field, value in overrides.items():
        if field not in FIELDS:
            raise UserError("unknown recipe field %r" % field)
        if value is None:
            continue
        if field == "lr_steps" and isinstance(value, str):
            value = _parse_lr_steps(value)
        setattr(recipe, field, value)
    check_recipe(recipe)
    if recipe.needs_pretrained_base and not has_pretrained_base and not from_scratch:
        raise UserError(
            "%s is trained from an ImageNet VGG16: pass --pretrained-base "
            "PATH.params (or 'gluoncv' to download it), or --from-scratch to train "
            "without it (expect far less than the paper's mAP)" % model
        )
    return recipe


def _parse_lr_steps(text):
    try:
        return tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UserError("--lr-steps: expected comma-separated fractions, got %r" % text) from None


# The command line's flag and the rule of each numeric field (library callers that build a
# TrainConfig get the same checks as the command line's argument types).
_RULES = {
    "epochs": ("--epochs", lambda v: v >= 1, "at least 1"),
    "batch_size": ("--batch-size", lambda v: v >= 1, "at least 1"),
    "lr": ("--lr", lambda v: v > 0, "above 0"),
    "momentum": ("--momentum", lambda v: 0 <= v <= 1, "in [0, 1]"),
    "wd": ("--wd", lambda v: 0 <= v <= 1, "in [0, 1]"),
    "warmup_epochs": ("--warmup-epochs", lambda v: v >= 0, "at least 0"),
    "val_interval": ("--val-interval", lambda v: v >= 1, "at least 1"),
}


def check_recipe(recipe):
    """A one-line error naming the flag of the first value out of its range."""
    for field, (flag, ok, rule) in _RULES.items():
        if not ok(getattr(recipe, field)):
            raise UserError("%s must be %s, got %s" % (flag, rule, getattr(recipe, field)))
    if not recipe.lr_steps or not all(0 < f <= 1 for f in recipe.lr_steps):
        raise UserError(
            "--lr-steps must be fractions of training in (0, 1], got %s"
            % ",".join(map(str, recipe.lr_steps))
        )


def effective_lr(lr, batch_size, world_size):
    """Linear scaling: ``lr`` is quoted for REFERENCE_BATCH images; the run's global batch
    is ``batch_size`` per worker x ``world_size`` workers."""
    return lr * batch_size * world_size / REFERENCE_BATCH


def schedule_steps(iters_per_epoch, epochs, warmup_epochs, lr_steps):
    """(total iterations, warm-up iterations, sorted iterations of the x0.1 drops)."""
    total = max(1, int(iters_per_epoch * epochs))
    drops = sorted({max(1, int(total * f)) for f in lr_steps})
    return total, int(iters_per_epoch * warmup_epochs), drops


def lr_scheduler(base_lr, iters_per_epoch, epochs, warmup_epochs=0.0, lr_steps=(2 / 3, 5 / 6)):
    """MXNet scheduler (called with the update count, from 1): linear warm-up from base_lr/100
    to base_lr, then x0.1 after each drop iteration. It is pickled with the trainer states,
    so a resumed run continues the same schedule."""
    _, warmup, drops = schedule_steps(iters_per_epoch, epochs, warmup_epochs, lr_steps)
    if warmup >= drops[0]:
        raise UserError(
            "warm-up (%d iterations) must end before the first lr drop "
            "(iteration %d): lower --warmup-epochs, or raise --epochs or the first "
            "--lr-steps fraction" % (warmup, drops[0])
        )
    return mx.lr_scheduler.MultiFactorScheduler(
        step=drops,
        factor=0.1,
        base_lr=base_lr,
        warmup_steps=warmup,
        warmup_begin_lr=base_lr * 0.01 if warmup else base_lr,
        warmup_mode="linear",
    )
