"""Training recipes: preset values, overrides, linear lr scaling and the step schedule."""

import pytest

from ssd_gluon.engine import recipe


def test_voc_preset_is_the_reference_recipe():
    r = recipe.recipe_for("ssd_300_vgg16_atrous_voc")
    assert (r.optimizer, r.lr, r.momentum, r.wd, r.epochs) == ("sgd", 1e-3, 0.9, 5e-4, 240)
    assert r.lr_steps == pytest.approx((2 / 3, 5 / 6)) and r.augment == "paper"
    assert recipe.recipe_for("ssd_512_vgg16_atrous_voc") == r
    # 240 epochs of VOC07+12 (16,551 images) at batch 32: ~124k iterations, drops at 2/3, 5/6
    total, warmup, drops = recipe.schedule_steps(16551 // 32, r.epochs, r.warmup_epochs, r.lr_steps)
    assert total == 517 * 240 == 124080 and warmup == 517 and drops == [82720, 103400]


@pytest.mark.parametrize("model", ["ssd_300_vgg16_atrous_coco", "ssd_512_vgg16_atrous_coco"])
def test_coco_presets_get_gluoncvs_coco_recipe(model):
    r = recipe.recipe_for(model)
    assert (r.optimizer, r.lr, r.momentum, r.wd, r.epochs) == ("sgd", 1e-3, 0.9, 5e-4, 240)
    assert r.val_interval == 10 and r.warmup_epochs == 1.0 and r.augment == "paper"
    assert r.needs_pretrained_base and recipe.effective_lr(r.lr, 32, 1) == 1e-3
    # COCO train2017 (117,266 images with objects) at batch 32: 3664 iterations an epoch,
    # the drops after epochs 160 and 200
    total, warmup, drops = recipe.schedule_steps(
        117266 // 32, r.epochs, r.warmup_epochs, r.lr_steps
    )
    assert total == 3664 * 240 and warmup == 3664 and drops == [3664 * 160, 3664 * 200]


@pytest.mark.parametrize(
    "batch, workers, expected", [(32, 1, 1e-3), (8, 4, 1e-3), (32, 4, 4e-3), (8, 1, 2.5e-4)]
)
def test_effective_lr_scales_with_the_global_batch(batch, workers, expected):
    assert recipe.effective_lr(1e-3, batch, workers) == pytest.approx(expected)


def test_schedule_values_at_chosen_iterations():
    # 10 iterations/epoch x 12 epochs = 120; warm-up 2 epochs = 20; drops after 80 and 100.
    sched = recipe.lr_scheduler(0.1, 10, 12, warmup_epochs=2, lr_steps=(2 / 3, 5 / 6))
    expected = {
        1: 0.001 + (0.1 - 0.001) * 1 / 20,
        10: 0.001 + (0.1 - 0.001) * 10 / 20,
        20: 0.1,
        21: 0.1,
        80: 0.1,
        81: 0.01,
        100: 0.01,
        101: 0.001,
        120: 0.001,
    }
    for it in sorted(expected):  # the scheduler only moves forward
        assert sched(it) == pytest.approx(expected[it], rel=1e-6), it


def test_schedule_without_warmup_starts_at_the_base_lr():
    sched = recipe.lr_scheduler(0.5, 3, 6)
    assert [sched(i) for i in (1, 12, 13, 15, 16)] == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.005])


def test_warmup_past_the_first_drop_is_an_error():
    with pytest.raises(ValueError, match="warm-up"):
        recipe.lr_scheduler(0.1, 10, 3, warmup_epochs=2.5)


def test_overrides_and_the_pretrained_base_rule():
    r = recipe.make_recipe(
        "ssd_300_vgg16_atrous_voc",
        dict(lr=2e-3, lr_steps="0.5,0.75", epochs=None),
        has_pretrained_base=True,
    )
    assert r.lr == 2e-3 and r.lr_steps == (0.5, 0.75) and r.epochs == 240
    with pytest.raises(ValueError, match="--pretrained-base .*--from-scratch"):
        recipe.make_recipe("ssd_300_vgg16_atrous_voc", {})
    assert recipe.make_recipe("ssd_300_vgg16_atrous_voc", {}, from_scratch=True).optimizer == "sgd"
    assert recipe.make_recipe("ssd_demo", {}).optimizer == "adam"  # trained from scratch
    with pytest.raises(ValueError, match="unknown recipe field"):
        recipe.make_recipe("ssd_demo", dict(learning_rate=1))


def test_every_preset_has_a_recipe():
    from ssd_gluon import list_models

    assert sorted(recipe.RECIPES) == list_models()
