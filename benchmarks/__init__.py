"""Speed and memory benchmarks of DDOD against the same-framework ATSS baseline and Detectron2's
own FCOS and RetinaNet. Entry point: ``python -m benchmarks.run --device {cpu,cuda}``."""
