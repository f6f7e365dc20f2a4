"""TSCODE's two input encoders and the head-side glue (shared/spec/related_methods.md §2.2-2.4).

For the head's level l (P3..P7), with ``mu`` a parameter-free x2 nearest upsampling to the
target's exact size:

* SCE (classification): ``G_cls = Concat(D_cls(P_l), P_{l+1})``, 2C channels on P_{l+1}'s
  grid. ``D_cls`` is one 3x3 stride-2 conv shared by every level. The head's classification
  tower becomes "shallow but wide" (2 x 3x3 conv 512, GN, ReLU) and its predictor gives 4 x A x K
  channels per coarse location, rearranged 2x2 (pixel shuffle, class-major channels) and cropped
  to P_l's H x W, so the host's assignment, losses and inference see ordinary maps.
* DPE (localization): ``G_loc = P_l + mu(P_{l+1}) + D_loc(mu(P_l) + P_{l-1})`` (C channels,
  P_l's grid), ``D_loc`` a second shared 3x3 stride-2 conv; P_{l-1} at level 3 is C2 (res2).
  The host's localization tower and outputs (box, quality) are unchanged.

The map above P7 (P8) is the ``top`` choice: "conv" (default: a 3x3 stride-2 conv on ReLU(P7),
the P6 -> P7 recipe once more), "maxpool" (parameter-free, detectron2's ``LastLevelMaxPool``) or
"drop" (level 7 omits the P_{l+1} terms; SCE's missing half is zeros, so the tower keeps its 2C
input).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SCE_DOWNSAMPLES",
    "DPE_INPUTS",
    "TOP_MODES",
    "shuffle_to_grid",
    "TopLevel",
    "SemanticContextEncoder",
    "DetailPreservingEncoder",
    "TaskContextDecoupler",
]

# How SCE downsamples P_l (paper Table 2): a conv of kernel 3 (default), 5 or 7, or a 3x3
# pooling, all stride 2.
SCE_DOWNSAMPLES = ("conv3", "conv5", "conv7", "avg", "max")
# The maps DPE sums (paper Table 3): P_{l-1} ("prev"), P_l ("same"), P_{l+1} ("next"),
# P_{l+2} ("next2").
DPE_INPUTS = ("prev", "same", "next", "next2")
TOP_MODES = ("conv", "maxpool", "drop")


def _head_conv_init(conv: nn.Conv2d):
    # Not stated in the paper; the head's own init (normal(0, 0.01), zero bias), spec §2.10.7.
    nn.init.normal_(conv.weight, std=0.01)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _up(x: Tensor, like: Tensor) -> Tensor:
    """``mu``: nearest upsampling of ``x`` to ``like``'s H x W (x2, or x2 then cropped on odd
    sizes)."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def shuffle_to_grid(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """SCE's 2x2 rearrangement (paper Eq. 4) and crop.

    Args:
        x: (N, 4*C, h, w) coarse predictions, class-major channels: channel ``c*4 + 2*i + j``
            predicts class/output ``c`` at the fine location (2y + i, 2x + j) of coarse (y, x).
        size: (H, W) of the fine grid, H <= 2h and W <= 2w (odd sizes drop the last row/column).

    Returns:
        (N, C, H, W).
    """
    fine = F.pixel_shuffle(x, 2)
    h, w = size
    if fine.shape[-2] < h or fine.shape[-1] < w:
        raise ValueError(f"coarse map {tuple(x.shape[-2:])} is too small for the grid {size}.")
    return fine[..., :h, :w]


class TopLevel(nn.Module):
    """The map above the head's last level (P8 from P7): ``mode`` in TOP_MODES; ``forward``
    returns None for "drop". (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""

    def __init__(self, channels: int, mode: str = "conv"):
        super().__init__()
        if mode not in TOP_MODES:
            raise ValueError(f"TSCODE top must be one of {TOP_MODES}, got {mode!r}.")
        self.mode = mode
        self.conv = None
        if mode == "conv":
            self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
            _head_conv_init(self.conv)

    def forward(self, top: Tensor) -> Optional[Tensor]:
        if self.mode == "conv":
            return self.conv(F.relu(top))
        if self.mode == "maxpool":
            return F.max_pool2d(top, kernel_size=1, stride=2)
        return None


class SemanticContextEncoder(nn.Module):
    """SCE's input: ``Concat(D_cls(P_l), P_{l+1})`` (or ``D_cls(P_l)`` alone with
    ``use_next=False``, Table 2's first row). One module for all levels.

    (N, C, H, W), (N, C, ceil(H/2), ceil(W/2)) or None -> (N, out_channels, ceil(H/2), ...).
    """

    def __init__(self, channels: int, *, downsample: str = "conv3", use_next: bool = True):
        super().__init__()
        if downsample not in SCE_DOWNSAMPLES:
            raise ValueError(
                f"sce_downsample must be one of {SCE_DOWNSAMPLES}, got {downsample!r}."
            )
        self.downsample = downsample
        self.use_next = use_next
        self.out_channels = channels * (2 if use_next else 1)
        if downsample.startswith("conv"):
            k = int(downsample[4:])
            # the paper's "plain" downsampling conv: bias, no norm or activation (spec §2.10.1)
            self.down = nn.Conv2d(channels, channels, k, stride=2, padding=k // 2)
            _head_conv_init(self.down)
        else:
            self.down = None

    def forward(self, x: Tensor, next_level: Optional[Tensor]) -> Tensor:
        if self.down is not None:
            y = self.down(x)
        elif self.downsample == "avg":
            # count_include_pad=False: the border average is over real pixels only
            y = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        else:
            y = F.max_pool2d(x, 3, stride=2, padding=1)
        if not self.use_next:
            return y
        if next_level is None:  # top="drop": zeros keep the tower's input width
            next_level = torch.zeros_like(y)
        if next_level.shape[-2:] != y.shape[-2:]:
            raise ValueError(
                f"SCE: the downsampled level is {tuple(y.shape[-2:])} but the level above is "
                f"{tuple(next_level.shape[-2:])}; the pyramid must halve with ceil at each level."
            )
        return torch.cat([y, next_level], dim=1)


class DetailPreservingEncoder(nn.Module):
    """DPE's input: the sum of the ``inputs`` terms of
    ``P_l + mu(P_{l+1}) [+ mu(mu(P_{l+2}))] + D_loc(mu(P_l) + P_{l-1})`` (paper Eq. 5; "same"
    contributes both P_l terms, "prev" enables ``D_loc``). One module for all levels.

    All maps have C channels; the result has P_l's shape (N, C, H, W).
    """

    def __init__(self, channels: int, *, inputs: Sequence[str] = ("prev", "same", "next")):
        super().__init__()
        inputs = tuple(inputs)
        unknown = set(inputs) - set(DPE_INPUTS)
        if unknown or not inputs:
            raise ValueError(f"dpe_inputs must be a non-empty subset of {DPE_INPUTS}: {inputs}.")
        self.inputs = inputs
        self.down = None
        if "prev" in inputs:
            self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
            _head_conv_init(self.down)

    def forward(
        self,
        same: Tensor,
        prev: Optional[Tensor],
        next_level: Optional[Tensor],
        next2: Optional[Tensor] = None,
    ) -> Tensor:
        out = same if "same" in self.inputs else torch.zeros_like(same)
        if "next" in self.inputs and next_level is not None:
            out = out + _up(next_level, same)
        if "next2" in self.inputs and next2 is not None:
            out = out + _up(_up(next2, next_level), same)
        if self.down is not None:
            if prev is None:
                raise ValueError(
                    "DPE needs the map below the first level (C2): build the backbone with "
                    "FPNWithBottomUp(extra_features=['res2']) and set the detector's "
                    "head_extra_features={'below': 'res2'}."
                )
            detail = prev + _up(same, prev) if "same" in self.inputs else prev
            out = out + self.down(detail)
        return out


class TaskContextDecoupler(nn.Module):
    """TSCODE as a head plug-in: builds each level's classification and localization inputs.

    A head given one of these (``tscode=``) runs its classification tower on
    ``cls_inputs[l]`` (with SCE: ``cls_in_channels`` wide, on P_{l+1}'s grid; its predictor
    then has 4x the channels and its output goes through :func:`shuffle_to_grid`) and its
    localization tower on ``reg_inputs[l]``; with ``sce``/``dpe`` off that side gets P_l.
    """

    def __init__(
        self,
        channels: int = 256,
        *,
        sce: bool = True,
        dpe: bool = True,
        top: str = "conv",
        sce_downsample: str = "conv3",
        sce_use_next: bool = True,
        sce_conv_dims: int = 512,
        sce_num_convs: int = 2,
        dpe_inputs: Sequence[str] = ("prev", "same", "next"),
    ):
        """
        Args:
            channels: width C of the FPN levels (and of C2 after the neck's projection).
            sce, dpe: switch each encoder on (both off: the host's own inputs).
            top: the map above P7, one of TOP_MODES.
            sce_downsample, sce_use_next: SCE's downsampling of P_l and whether P_{l+1} is
                concatenated (Table 2).
            sce_conv_dims, sce_num_convs: the classification tower with SCE (2 x 512; Table 2's
                "downsampled P_l only" row used a standard 4 x 256 tower, spec §2.6).
            dpe_inputs: the maps DPE sums (Table 3), a subset of DPE_INPUTS.
        """
        super().__init__()
        self.sce_on = bool(sce)
        self.dpe_on = bool(dpe)
        self.sce_conv_dims = sce_conv_dims
        self.sce_num_convs = sce_num_convs
        self.sce = (
            SemanticContextEncoder(channels, downsample=sce_downsample, use_next=sce_use_next)
            if sce
            else None
        )
        self.dpe = DetailPreservingEncoder(channels, inputs=dpe_inputs) if dpe else None
        needs_top = (sce and sce_use_next) or (dpe and {"next", "next2"} & set(dpe_inputs))
        self.top = TopLevel(channels, top) if needs_top else None
        self.cls_in_channels = self.sce.out_channels if sce else channels
        # the classification predictor's channels per output channel
        self.cls_upscale = 4 if sce else 1

    @property
    def needs_below(self) -> bool:
        return self.dpe is not None and self.dpe.down is not None

    def forward(
        self, features: List[Tensor], below: Optional[Tensor] = None
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """
        Args:
            features: the head's levels P_l (N, C, Hl, Wl), increasing stride.
            below: the map below the first level (C2, (N, C, 2*H3, 2*W3)); needed by DPE with
                "prev".

        Returns:
            cls_inputs: per level, (N, cls_in_channels, ceil(Hl/2), ceil(Wl/2)) with SCE, else
                the level itself.
            reg_inputs: per level, (N, C, Hl, Wl).
        """
        above = self.top(features[-1]) if self.top is not None else None
        extended = [below] + list(features) + [above]
        cls_inputs, reg_inputs = [], []
        for level, x in enumerate(features):
            next_level = extended[level + 2]
            if self.sce is not None:
                cls_inputs.append(self.sce(x, next_level))
            else:
                cls_inputs.append(x)
            if self.dpe is not None:
                # P_{l+2} exists up to P8; at P7 that term is left out
                next2 = extended[level + 3] if level + 3 < len(extended) else None
                reg_inputs.append(self.dpe(x, extended[level], next_level, next2))
            else:
                reg_inputs.append(x)
        return cls_inputs, reg_inputs

    def cls_to_grid(self, logits: Tensor, level_map: Tensor) -> Tensor:
        """The classification-side output of one level on ``level_map``'s H x W."""
        if self.sce is None:
            return logits
        return shuffle_to_grid(logits, level_map.shape[-2:])
