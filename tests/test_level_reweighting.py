import pytest
import torch

import ddod  # noqa: F401
from ddod.modeling.losses import LevelReweighting, linear_reweight_factors


def test_factors_formula():
    w = linear_reweight_factors(torch.tensor([100.0, 50, 20, 10, 5], dtype=torch.float64))
    assert w.tolist() == pytest.approx([1.0, 1.5263, 1.8421, 1.9474, 2.0], abs=1e-4)


def test_equal_counts_give_two_everywhere():
    assert linear_reweight_factors(torch.zeros(5)).tolist() == [2.0] * 5
    assert linear_reweight_factors(torch.full((5,), 7.0)).tolist() == [2.0] * 5
    assert linear_reweight_factors(torch.tensor([0, 0, 0, 0, 5.0])).tolist() == [2, 2, 2, 2, 1]


def test_accumulation_equals_one_call_on_the_sum():
    a = LevelReweighting(5)
    a("cls", torch.tensor([10, 5, 2, 1, 0]))
    w_two_calls = a("cls", torch.tensor([90, 45, 18, 9, 5]))
    b = LevelReweighting(5)
    w_one_call = b("cls", torch.tensor([100, 50, 20, 10, 5]))
    assert torch.allclose(w_two_calls, w_one_call)
    assert a.cls_pos_count.tolist() == [100, 50, 20, 10, 5]


def test_cls_and_reg_counters_are_independent_by_default():
    m = LevelReweighting(3)
    m("cls", torch.tensor([5, 1, 0]))
    m("reg", torch.tensor([0, 1, 5]))
    assert m.cls_pos_count.tolist() == [5, 1, 0]
    assert m.reg_pos_count.tolist() == [0, 1, 5]


def test_shared_counters_reproduce_mmdetection():
    m = LevelReweighting(3, shared_counters=True)
    m("cls", torch.tensor([5, 1, 0]))
    w_reg = m("reg", torch.tensor([0, 1, 5]))
    assert m.cls_pos_count.tolist() == [5, 2, 5]
    assert w_reg.tolist() == pytest.approx([1.0, 2.0, 1.0])


def test_per_batch_mode_and_disabled():
    m = LevelReweighting(3, cumulative=False)
    m("cls", torch.tensor([5, 1, 0]))
    w = m("cls", torch.tensor([0, 1, 2]))
    assert w.tolist() == pytest.approx([2.0, 1.5, 1.0])
    off = LevelReweighting(3, enabled=False)
    assert off("cls", torch.tensor([5, 1, 0])).tolist() == [1.0, 1.0, 1.0]


def test_eval_mode_does_not_accumulate_and_state_dict_carries_counts():
    m = LevelReweighting(3)
    m("cls", torch.tensor([5, 1, 0]))
    m.eval()
    m("cls", torch.tensor([100, 100, 100]))
    assert m.cls_pos_count.tolist() == [5, 1, 0]
    restored = LevelReweighting(3)
    restored.load_state_dict(m.state_dict())
    assert restored.cls_pos_count.tolist() == [5, 1, 0]
    assert restored.cls_pos_count.dtype == torch.float64
