import torch
from torch import nn


class Scale(nn.Module):
    """A learnable scalar multiplier, one per FPN level in ATSS/DDOD heads.

    The head's weights are shared across levels; this lets each level rescale its regression
    output to its own object-size range.
    """

    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
