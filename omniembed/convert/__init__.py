"""Converters from peers' checkpoints into OmniEmbed models.

>>> from omniembed.convert import from_imagebind, load_imagebind
>>> model = load_imagebind("imagebind_huge.pth")      # weights_only torch.load or safetensors
>>> model.save("imagebind-omni")
"""

from .imagebind import from_imagebind, load_imagebind
from .imagebind_arch import ImageBindArch

__all__ = ["from_imagebind", "load_imagebind", "ImageBindArch"]
