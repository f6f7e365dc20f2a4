"""Small torch.distributed helpers that do nothing on a single process.

detectron2 v0.6's ``comm`` has no tensor all-reduce helper; these use ``torch.distributed``
directly and are safe to call outside a process group (unit tests, inference).
"""
import torch
import torch.distributed as dist

from detectron2.utils import comm


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (a new tensor; the input is left untouched)."""
    if comm.get_world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all processes (mmdet's ``reduce_mean``)."""
    world_size = comm.get_world_size()
    if world_size == 1:
        return tensor
    return all_reduce_sum(tensor) / world_size
