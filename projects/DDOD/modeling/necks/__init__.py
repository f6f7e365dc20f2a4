"""Necks: modules between the FPN and the head. ``ssh.py``: SSH's context module."""
from .ssh import SSHContextModule, SSHNeck

__all__ = ["SSHContextModule", "SSHNeck"]
