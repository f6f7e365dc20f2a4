"""Each of DDOD's three disentanglements is an independent switch that changes exactly its own
part, checked on real forward passes of the paper's table configs at CPU size."""
import pytest
import torch

import ddod  # noqa: F401
from detectron2.utils.events import EventStorage

from ddod.modeling.layers import ConvNormAct, DeformConvNormAct
from ddod.modeling.losses import LevelReweighting

from .common import make_input, small_paper_model

# Two digits-sized objects in a 256 x 256 image.
BOXES = [[40.0, 40.0, 100.0, 90.0], [130.0, 120.0, 230.0, 240.0]]
CLASSES = [3, 7]


def forward_and_capture(model, batch=None):
    """Run one training forward; return (losses, cls_labels, reg_labels, storage scalars)."""
    batch = batch or [make_input(256, 256, BOXES, CLASSES)]
    captured = {}
    original = model.losses

    def capture(*args):
        captured["cls"], captured["reg"] = args[5], args[6]
        return original(*args)

    model.losses = capture
    model.train()
    with EventStorage() as storage:
        losses = model(batch)
        scalars = {k: v[0] for k, v in storage.latest().items()}
    K = model.num_classes
    positives = {b: (captured[b] >= 0) & (captured[b] != K) for b in ("cls", "reg")}
    return losses, positives["cls"], positives["reg"], scalars


def _logged_factors(scalars, branch):
    return [scalars[f"level_weight/{branch}_p{i}"] for i in range(3, 8)]


# ------------------------------------------------------------------------------------------------
# label assignment
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["table3_bases/retinanet.py", "table3_bases/fcos.py",
                                    "table3_bases/atss.py"])  # fmt: skip
def test_bases_share_assignment_have_no_dcn_and_weight_levels_one(config):
    torch.manual_seed(0)
    model = small_paper_model(config)
    assert model.reg_assigner is None
    assert not any("conv_offset" in n for n, _ in model.named_parameters())
    assert model.level_reweighting.strategy == "none"
    _, cls_pos, reg_pos, scalars = forward_and_capture(model)
    # one assignment serves both branches: identical positive sets
    assert cls_pos.any()
    assert torch.equal(cls_pos, reg_pos)
    # "none": factor 1.0 on every level of both branches
    assert _logged_factors(scalars, "cls") == [1.0] * 5
    assert _logged_factors(scalars, "reg") == [1.0] * 5


def test_retinanet_iou_thresholds_separate_the_positive_sets():
    torch.manual_seed(0)
    separate = small_paper_model("table1_retinanet_iou/cls0.5_reg0.4.py")
    _, cls_pos, reg_pos, _ = forward_and_capture(separate)
    # IoU >= 0.5 for classification, >= 0.4 for regression: the regression set strictly contains
    # the classification set (the anchors with IoU in [0.4, 0.5) of these boxes).
    assert (cls_pos & ~reg_pos).sum() == 0
    assert (reg_pos & ~cls_pos).sum() > 0

    # Equal thresholds in two assigners reproduce the shared assignment exactly.
    torch.manual_seed(0)
    equal = small_paper_model("table1_retinanet_iou/cls0.5_reg0.5.py")
    _, cls_eq, reg_eq, _ = forward_and_capture(equal)
    torch.manual_seed(0)
    _, cls_shared, _, _ = forward_and_capture(small_paper_model("table3_bases/retinanet.py"))
    assert torch.equal(cls_eq, reg_eq) and torch.equal(cls_eq, cls_shared)
    assert torch.equal(cls_eq, cls_pos)  # the classification threshold did not change


def _spread_predictions(model, seed=0):
    """Make the predictions depend on position, so that the cost p^(1-a) IoU^a ranks anchors
    differently for different alphas (at initialisation p is ~0.01 everywhere)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = model.head.cls_score.weight
        weight.copy_(torch.randn(weight.shape, generator=g))
        model.head.bbox_pred.weight.mul_(30.0)


def test_ddod_alphas_separate_the_positive_sets():
    torch.manual_seed(0)
    model = small_paper_model("table5_alpha/cls0.8_reg0.5.py")
    assert (model.cls_assigner.alpha, model.reg_assigner.alpha) == (0.8, 0.5)
    _spread_predictions(model)
    _, cls_pos, reg_pos, _ = forward_and_capture(model)
    assert cls_pos.any() and reg_pos.any()
    assert not torch.equal(cls_pos, reg_pos)

    # The same alpha in both assigners gives identical sets on the same weights.
    torch.manual_seed(0)
    same = small_paper_model("table5_alpha/cls0.5_reg0.5.py")
    same.load_state_dict(model.state_dict())
    _, cls_same, reg_same, _ = forward_and_capture(same)
    assert torch.equal(cls_same, reg_same)
    assert torch.equal(reg_same, reg_pos)  # alpha_reg is 0.5 in both models


def test_assignment_switch_changes_nothing_else():
    torch.manual_seed(0)
    base = small_paper_model("table4_components/baseline.py")
    torch.manual_seed(0)
    switched = small_paper_model("table4_components/assignment.py")
    assert type(base.head) is type(switched.head)
    assert base.head.state_dict().keys() == switched.head.state_dict().keys()
    assert base.level_reweighting.strategy == switched.level_reweighting.strategy == "none"


# ------------------------------------------------------------------------------------------------
# spatial features
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_deformable_conv_sits_at_the_chosen_position_only(position):
    torch.manual_seed(0)
    model = small_paper_model(f"table6_dcn_position/position{position}.py")
    calls = {}
    for tower_name in ("cls_tower", "reg_tower"):
        tower = getattr(model.head, tower_name)
        kinds = [type(block) for block in tower]
        assert kinds == [DeformConvNormAct if i == position - 1 else ConvNormAct for i in range(4)]
        block = tower[position - 1]
        block.conv_offset.register_forward_hook(
            lambda *_, name=tower_name: calls.__setitem__(name, calls.get(name, 0) + 1)
        )
    losses, _, _, _ = forward_and_capture(model)
    sum(losses.values()).backward()
    # the offsets are predicted once per FPN level in each tower, and they learn
    assert calls == {"cls_tower": 5, "reg_tower": 5}
    for tower in (model.head.cls_tower, model.head.reg_tower):
        assert tower[position - 1].conv_offset.weight.grad.abs().sum() > 0
    offset_params = [n for n, _ in model.named_parameters() if "conv_offset" in n]
    assert sorted({n.split(".conv_offset")[0] for n in offset_params}) == [
        f"head.cls_tower.{position - 1}",
        f"head.reg_tower.{position - 1}",
    ]


# ------------------------------------------------------------------------------------------------
# pyramid supervision
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, expected",
    [
        ("table2_fixed_level_weights/w1to3.py", [1.0, 1.5, 2.0, 2.5, 3.0]),
        ("table2_fixed_level_weights/w3to1.py", [3.0, 2.5, 2.0, 1.5, 1.0]),
    ],
)
def test_fixed_factors_in_a_forward_pass(config, expected):
    _, _, _, scalars = forward_and_capture(small_paper_model(config))
    assert _logged_factors(scalars, "cls") == pytest.approx(expected)
    assert _logged_factors(scalars, "reg") == pytest.approx(expected)


def test_level_factors_scale_every_loss_of_the_level():
    # Factor 2 on every level doubles every loss term, nothing else changes.
    torch.manual_seed(0)
    plain = small_paper_model("table3_bases/atss.py")
    doubled = small_paper_model(
        "table3_bases/atss.py", **{"level_reweighting.strategy": "fixed_linear",
                                   "level_reweighting.start": 2.0, "level_reweighting.end": 2.0}
    )  # fmt: skip
    doubled.load_state_dict(plain.state_dict())
    a, cls_a, reg_a, _ = forward_and_capture(plain)
    b, cls_b, reg_b, _ = forward_and_capture(doubled)
    assert torch.equal(cls_a, cls_b) and torch.equal(reg_a, reg_b)
    for name in a:
        assert b[name].item() == pytest.approx(2 * a[name].item(), rel=1e-5), name


def test_linear_interpolate_counts_the_positives_of_each_branch():
    torch.manual_seed(0)
    model = small_paper_model("table4_components/supervision.py")
    _, cls_pos, reg_pos, scalars = forward_and_capture(model)
    counts = model.level_reweighting.cls_pos_count
    # one anchor per location on 256 x 256: 32^2, 16^2, 8^2, 4^2, 2^2 anchors on P3..P7
    bounds = torch.tensor([0] + [(256 // s) ** 2 for s in (8, 16, 32, 64, 128)]).cumsum(0)
    expected = [cls_pos[:, bounds[i]:bounds[i + 1]].sum().item() for i in range(5)]
    assert counts.tolist() == expected
    lo, hi = min(expected), max(expected)
    factors = [2 - (c - lo) / (hi - lo + 1e-10) for c in expected]
    assert _logged_factors(scalars, "cls") == pytest.approx(factors, abs=1e-6)


def test_level_statistics_are_checkpointed_for_every_strategy():
    for strategy in ("none", "fixed_linear", "linear_reweight", "sum_reweight",
                     "linear_interpolate"):  # fmt: skip
        module = LevelReweighting(5, strategy=strategy)
        assert set(module.state_dict()) == {"cls_pos_count", "reg_pos_count"}


# Hand-written per-level counts (P3..P7) and the factors each strategy's formula gives.
COUNTS = [100.0, 50.0, 20.0, 10.0, 5.0]


@pytest.mark.parametrize(
    "strategy, kwargs, counts, expected",
    [
        ("none", {}, COUNTS, [1.0, 1.0, 1.0, 1.0, 1.0]),
        ("none", {}, [0.0] * 5, [1.0] * 5),
        ("fixed_linear", dict(start=1.0, end=2.0), COUNTS, [1.0, 1.25, 1.5, 1.75, 2.0]),
        ("fixed_linear", dict(start=1.0, end=3.0), [0.0] * 5, [1.0, 1.5, 2.0, 2.5, 3.0]),
        ("fixed_linear", dict(start=2.0, end=1.0), COUNTS, [2.0, 1.75, 1.5, 1.25, 1.0]),
        ("fixed_linear", dict(start=3.0, end=1.0), COUNTS, [3.0, 2.5, 2.0, 1.5, 1.0]),
        # Linear-Reweight: 1.0 .. 2.0 by count rank (most first); falling counts = fixed 1~2
        ("linear_reweight", {}, COUNTS, [1.0, 1.25, 1.5, 1.75, 2.0]),
        ("linear_reweight", {}, [5.0, 100.0, 50.0, 10.0, 20.0], [2.0, 1.0, 1.25, 1.75, 1.5]),
        ("linear_reweight", {}, [10.0, 10.0, 0.0, 0.0, 0.0], [1.0, 1.25, 1.5, 1.75, 2.0]),
        # Sum-Reweight: mean count / max(count, 1); mean of COUNTS = 37
        ("sum_reweight", {}, COUNTS, [0.37, 0.74, 1.85, 3.7, 7.4]),
        ("sum_reweight", {}, [40.0, 10.0, 0.0, 0.0, 0.0], [0.25, 1.0, 10.0, 10.0, 10.0]),
        ("sum_reweight", {}, [0.0] * 5, [1.0] * 5),
        # Linear-Interpolate (DDOD): 2 - (n - min) / (max - min)
        ("linear_interpolate", {}, COUNTS, [1.0, 1.5263, 1.8421, 1.9474, 2.0]),
        ("linear_interpolate", {}, [7.0] * 5, [2.0] * 5),
    ],
)
def test_reweighting_strategy_factors_on_hand_written_counts(strategy, kwargs, counts, expected):
    module = LevelReweighting(5, strategy=strategy, **kwargs)
    factors = module("cls", torch.tensor(counts))
    assert factors.dtype == torch.float32
    assert factors.tolist() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("strategy", ["linear_reweight", "sum_reweight", "linear_interpolate"])
def test_cumulative_counts_all_batches_and_per_batch_only_the_last(strategy):
    first, second = torch.tensor([1.0, 2, 40, 0, 0]), torch.tensor([99.0, 48, 0, 10, 5])
    cumulative = LevelReweighting(5, strategy=strategy, cumulative=True)
    cumulative("reg", first)
    per_batch = LevelReweighting(5, strategy=strategy, cumulative=False)
    per_batch("reg", first)
    reference = LevelReweighting(5, strategy=strategy)
    expected_cumulative = reference.factors_from_counts((first + second).double()).float()
    expected_per_batch = reference.factors_from_counts(second.double()).float()
    assert torch.allclose(cumulative("reg", second), expected_cumulative)
    assert torch.allclose(per_batch("reg", second), expected_per_batch)
    assert cumulative.reg_pos_count.tolist() == (first + second).tolist()
    assert per_batch.reg_pos_count.tolist() == second.tolist()


def test_counters_separate_or_shared():
    separate = LevelReweighting(5, strategy="sum_reweight")
    separate("cls", torch.tensor([4.0, 0, 0, 0, 0]))
    w_reg = separate("reg", torch.tensor([0.0, 0, 0, 0, 2]))
    assert separate.cls_pos_count.tolist() == [4, 0, 0, 0, 0]
    assert w_reg.tolist() == pytest.approx([0.4, 0.4, 0.4, 0.4, 0.2])  # mean 0.4
    shared = LevelReweighting(5, strategy="sum_reweight", shared_counters=True)
    shared("cls", torch.tensor([4.0, 0, 0, 0, 0]))
    w_reg = shared("reg", torch.tensor([0.0, 0, 0, 0, 2]))
    assert shared.cls_pos_count.tolist() == [4, 0, 0, 0, 2]
    assert w_reg.tolist() == pytest.approx([0.3, 1.2, 1.2, 1.2, 0.6])  # mean 1.2


@pytest.mark.parametrize("sync", [True, False])
def test_synced_counts_go_through_the_all_reduce(sync, monkeypatch):
    from ddod.modeling.losses import level_reweighting

    # Stand-in for a 3-process all-reduce in which every process saw the same counts.
    monkeypatch.setattr(level_reweighting, "all_reduce_sum", lambda t: t * 3)
    module = LevelReweighting(5, strategy="linear_interpolate", sync=sync)
    module("cls", torch.tensor([2.0, 1, 0, 0, 0]))
    assert module.cls_pos_count.tolist() == ([6, 3, 0, 0, 0] if sync else [2, 1, 0, 0, 0])
