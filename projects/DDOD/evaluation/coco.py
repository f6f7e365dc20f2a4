"""COCO-style box AP evaluation that works with and without detectron2's compiled ops."""

from detectron2.evaluation import COCOEvaluator

from ..compat import has_compiled_ops
from ..data.datasets import check_dataset_files

__all__ = ["build_coco_evaluator"]


def build_coco_evaluator(dataset_name: str, output_dir=None, **kwargs) -> COCOEvaluator:
    """Build detectron2's ``COCOEvaluator`` for box detection on a registered dataset.

    Compared with constructing ``COCOEvaluator`` directly:

    * the dataset's files are checked first (a clear ``FileNotFoundError`` naming the missing
      path) and the built-in digits datasets are generated if needed, because the evaluator reads
      the metadata's ``json_file`` directly, without the dataset loader that would generate it;
    * ``use_fast_impl`` defaults to whether detectron2's compiled ops exist: v0.6's fast path
      calls them at evaluation time and, unlike later versions, does not fall back;
    * ``tasks`` defaults to ``("bbox",)``, since the detectors here predict boxes only.

    Args:
        dataset_name: a name registered in ``DatasetCatalog``/``MetadataCatalog``.
        output_dir: where to dump ``coco_instances_results.json`` and
            ``instances_predictions.pth``; None to keep results in memory only.
        kwargs: other ``COCOEvaluator`` arguments (``tasks``, ``distributed`` (default True),
            ``max_dets_per_image``, ``use_fast_impl``).

    Returns:
        a ``COCOEvaluator``; its ``evaluate()`` returns ``{"bbox": {"AP": ..., ...}}`` in 0-100.
    """
    check_dataset_files(dataset_name)
    kwargs.setdefault("tasks", ("bbox",))
    kwargs.setdefault("distributed", True)
    kwargs.setdefault("use_fast_impl", has_compiled_ops())
    return COCOEvaluator(dataset_name, output_dir=output_dir, **kwargs)
