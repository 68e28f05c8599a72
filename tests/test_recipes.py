"""The shipped configs: each loads, each recipe's network has its reference's parameter
count, and its learning rate follows the reference's own schedule code."""
import glob
import os

import pytest

from hgpipe.config import load_config
from hgpipe.model.inference import model_kwargs
from test_model import build_for_count, count_parameters, expected_parameter_count
from test_seed_network import seed_parameter_count

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

# trainable parameters of each shipped config (the recipe tables of README.md and docs/recipes.md)
PARAMETERS = {
    "seed_4x256": 14500480,    # wbenbihi hourglass_tiny.py, counted from its code
    "newell_hg8": 25434112,    # Newell's hg.lua, nStack 8
    "psh_hg8": 25434112,       # PSH PoseNet(8, 256) without its unused skip layers
    "bearpaw_hg2": 6730912,    # hg_s2_b1, wider stem residual 2
    "bearpaw_hg8": 25594624,   # hg_s8_b1
    "bearpaw2017_hg2": 6730912,   # the same networks, 17dc840's training code
    "bearpaw2017_hg8": 25594624,
    "hg2": 6570400,
    "tiny": 380896,
}


def _load(name):
    return load_config(os.path.join(CONFIGS, name + ".cfg"))


def test_every_shipped_config_is_listed_and_loads():
    names = sorted(os.path.splitext(os.path.basename(p))[0]
                   for p in glob.glob(os.path.join(CONFIGS, "*.cfg")))
    assert names == sorted(PARAMETERS)
    for name in names:
        cfg = _load(name)
        train, prep = cfg["Train"], cfg["Prepare"]
        # flip/colour are drawn either at prepare or on the device, never both
        assert not (train["device_flip"] and prep["flip"]), name
        assert not (train["device_color"] > 0 and prep["color_jitter"] > 0), name


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_parameter_count_of_each_recipe(name):
    net = _load(name)["Network"]
    if net["architecture"] == "seed":
        assert (net["nModules"], net["tiny"]) == (1, False)
        count = seed_parameter_count(net["nStacks"], net["nFeats"], net["nLow"])
    else:
        count = expected_parameter_count(net["nStacks"], net["nFeats"], net["nModules"],
                                         net["nLow"], tiny=net["tiny"], stem=net["stem"])
    assert count == PARAMETERS[name]


def test_bearpaw_stem_is_built_with_its_parameter_count():
    cfg = _load("bearpaw_hg2")
    kwargs = model_kwargs(cfg)
    if "stem" not in kwargs:
        pytest.skip("the model does not build [Network] stem = bearpaw yet")
    graph, _ = build_for_count(input_size=64, **kwargs)
    assert count_parameters(graph) == 6730912


# ------------------------------------------------------------------------ learning rates
# Each reference's schedule, written from its code, as the lr used by 0-based step s.

def _seed_lr(step):          # tf.train.exponential_decay(2.5e-4, step, 2000, 0.96, staircase)
    return 2.5e-4 * 0.96 ** (step // 2000)


def _newell_lr(step):        # optim.rmsprop with optimState.learningRate = opt.LR throughout
    return 2.5e-4


def _bearpaw_lr(step, epoch_size=3708):
    lr = 2.5e-4              # main.py: for epoch in range(start, epochs):
    for epoch in range(step // epoch_size + 1):   # lr = adjust_learning_rate(..., epoch, lr,
        if epoch in (60, 90):                     # [60, 90], 0.1): `if epoch in schedule`
            lr *= 0.1
    return lr


def _psh_lr(step):           # task/pose.py: after the step with batch_id == decay_iters
    return 1e-3 if step <= 100000 else 2e-4       # (100000) the lr becomes decay_lr


REFERENCE_LR = {
    "seed_4x256": (_seed_lr, [0, 1999, 2000, 4000, 199999]),
    "newell_hg8": (_newell_lr, [0, 8000, 799999]),
    "bearpaw_hg2": (_bearpaw_lr, [0, 60 * 3708 - 1, 60 * 3708, 90 * 3708 - 1, 90 * 3708,
                                  370799]),
    "bearpaw_hg8": (_bearpaw_lr, [0, 60 * 3708 - 1, 60 * 3708, 90 * 3708, 370799]),
    "psh_hg8": (_psh_lr, [0, 99999, 100000, 100001, 250999]),
    # 17dc840: --epochs 90 (example/mpii.py:309), so only the drop at 60 happens
    "bearpaw2017_hg2": (_bearpaw_lr, [0, 60 * 3708 - 1, 60 * 3708, 90 * 3708 - 1]),
    "bearpaw2017_hg8": (_bearpaw_lr, [0, 60 * 3708, 90 * 3708 - 1]),
}


def test_bearpaw_2017_and_head_differ_only_in_loss_and_length():
    """17dc840 (published tables) vs HEAD: unweighted MSE and 90 epochs against
    JointsMSELoss weighted by the visibility flag and 100 epochs."""
    old, new = _load("bearpaw2017_hg2")["Train"], _load("bearpaw_hg2")["Train"]
    assert (old["weighted_loss"], old["nEpochs"]) == (False, 90)
    assert (new["weighted_loss"], new["weighted_loss_mode"], new["nEpochs"]) == (
        True, "bearpaw", 100)
    same = [k for k in old if k not in ("weighted_loss", "weighted_loss_mode", "nEpochs")]
    assert [old[k] for k in same] == [new[k] for k in same]


def test_fp32_references_train_in_fp32():
    """Every recipe of an fp32 reference turns mixed precision off (it defaults on for
    gpu/npu); the seed's NPU mixed precision stays."""
    for name in ("newell_hg8", "bearpaw_hg2", "bearpaw_hg8", "bearpaw2017_hg2",
                 "bearpaw2017_hg8", "psh_hg8"):
        assert _load(name)["Train"]["mixed_precision"] is False, name
    assert _load("seed_4x256")["Train"]["mixed_precision"] is True


def test_reference_formulas_give_the_published_values():
    assert _bearpaw_lr(60 * 3708 - 1) == 2.5e-4
    assert _bearpaw_lr(60 * 3708) == pytest.approx(2.5e-5)
    assert _bearpaw_lr(90 * 3708) == pytest.approx(2.5e-6)
    assert (_psh_lr(100000), _psh_lr(100001)) == (1e-3, 2e-4)
    assert _seed_lr(4000) == pytest.approx(2.5e-4 * 0.96 ** 2)


@pytest.mark.parametrize("name", sorted(REFERENCE_LR))
def test_recipe_learning_rate_follows_its_reference(name):
    try:
        from hgpipe.train.schedules import learning_rate_at
    except ImportError:
        pytest.skip("hgpipe.train.schedules.learning_rate_at has not landed yet")
    formula, steps = REFERENCE_LR[name]
    train = _load(name)["Train"]
    assert train["nEpochs"] * train["epoch_size"] > max(steps)
    for step in steps:
        assert learning_rate_at(train, step) == pytest.approx(formula(step), rel=1e-6), step


def test_seed_recipe_is_the_seeds_pipeline():
    """seed_4x256 runs wbenbihi 356e063's own settings: its network and its loss
    (hourglass_tiny.py:160, one mean of sigmoid cross-entropy over maps and stacks), its
    augmentation (datagen.py:331-338), crop and targets (tests/test_seed_pipeline.py)."""
    cfg = _load("seed_4x256")
    assert cfg["Network"]["architecture"] == "seed"
    assert (cfg["Train"]["loss"], cfg["Train"]["stack_loss"],
            cfg["Train"]["weighted_loss"]) == ("sigmoid_cross_entropy", "mean", False)
    # augmentation: rotation only, p 0.5, integer -30..29 (datagen.py:331-338)
    prep, train = cfg["Prepare"], cfg["Train"]
    assert (prep["augmentation"], prep["flip"], prep["color_jitter"]) == ("seed", False, 0.0)
    assert (train["device_flip"], train["device_color"]) == (False, 0.0)
    # crop: joints' box + 20% (datagen.py:249-298, 422); targets FWHM 3 over the whole
    # map at integer centres (datagen.py:229, 243, 328)
    assert (prep["crop"], prep["gaussian_fwhm"], prep["gaussian_centre"],
            prep["gaussian_window"], prep["geometry"]) == ("seed_box", 3.0, "pixel", 0,
                                                            "offline")
    assert prep["sigma"] == pytest.approx(1.27398, abs=1e-5)
