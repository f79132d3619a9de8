"""Converters from peers' checkpoints into OmniEmbed models.

>>> from omniembed.convert import from_imagebind, load_imagebind
>>> model = load_imagebind("imagebind_huge.pth")      # weights_only torch.load or safetensors
>>> model.save("imagebind-omni")
>>> from omniembed.convert import load_ulip
>>> load_ulip("ULIP-2-PointBERT-10k-colored-pc.pt").save("ulip2-omni")   # + source.json (licences)
"""

from .imagebind import from_imagebind, load_imagebind
from .imagebind_arch import ImageBindArch
from .ulip import UlipArch, from_ulip, load_ulip

__all__ = ["from_imagebind", "load_imagebind", "ImageBindArch", "from_ulip", "load_ulip", "UlipArch"]
