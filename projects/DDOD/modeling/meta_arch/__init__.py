from .ddod import DDOD

__all__ = ["DDOD"]
