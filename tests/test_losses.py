"""Per-box loss terms against their definitions and the library versions they stand in for."""
import torch
from torchvision.ops import generalized_box_iou_loss

from ddod.modeling.losses.dense_losses import giou_loss_per_box


def _random_boxes(n, generator):
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 50
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 30 + 0.5
    return torch.cat([xy, xy + wh], dim=1)


def test_giou_hand_computed_cases():
    pred = torch.tensor(
        [
            [0.0, 0.0, 2.0, 2.0],  # same box: loss 0
            [0.0, 0.0, 2.0, 2.0],  # overlap 1 of union 7, enclosing 9: 1 - 1/7 + 2/9
            [0.0, 0.0, 1.0, 1.0],  # disjoint, 1x1 each, enclosing 3x1: 1 - 0 + 1/3
            [0.0, 0.0, 1.0, 1.0],  # disjoint in x only, overlapping in y: inter must be 0
        ],
        dtype=torch.float64,
    )
    target = torch.tensor(
        [[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [2.0, 0.5, 3.0, 1.5]],
        dtype=torch.float64,
    )
    expected = torch.tensor(
        [0.0, 1 - 1 / 7 + 2 / 9, 1 + 1 / 3, 1 + (4.5 - 2) / 4.5], dtype=torch.float64
    )
    torch.testing.assert_close(giou_loss_per_box(pred, target, eps=0.0), expected)


def test_giou_matches_torchvision_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    pred = _random_boxes(200, g).requires_grad_()
    target = _random_boxes(200, g)
    ours = giou_loss_per_box(pred, target, eps=1e-6)
    (grad_ours,) = torch.autograd.grad((ours * torch.arange(200.0, dtype=ours.dtype)).sum(), pred)
    ref = generalized_box_iou_loss(pred, target, reduction="none", eps=1e-6)
    (grad_ref,) = torch.autograd.grad((ref * torch.arange(200.0, dtype=ref.dtype)).sum(), pred)
    # the random boxes include disjoint pairs, where both must give zero intersection gradient
    assert (ref > 1).any() and (ref < 1).any()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, grad_ref)
