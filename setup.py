"""Packaging: the importable package ``ddod`` lives in ``projects/DDOD`` (Detectron2 project layout)."""
from setuptools import find_packages, setup

setup(
    package_dir={"ddod": "projects/DDOD"},
    packages=["ddod"] + ["ddod." + p for p in find_packages("projects/DDOD")],
)
