"""Saab transform and the channel-wise PixelHop++ tree (DefakeHop's feature extractor)."""

from .pixelhop import PixelHop, max_pool, neighbourhoods
from .saab import Saab

__all__ = ["PixelHop", "Saab", "max_pool", "neighbourhoods"]
