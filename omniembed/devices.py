"""Device names from users (``--device``, ``device=``, ``train.device``) → a ``torch.device`` that exists here.

torch accepts ``cuda`` on a machine without a GPU and fails later, deep in a call, with "Found no NVIDIA driver";
an unknown name fails with a list of twenty backends. Both become one :class:`DeviceError` naming the value.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

KNOWN = "cpu, cuda, cuda:N, mps"


class DeviceError(ConfigError):
    """A device name that is unknown, or names hardware this machine lacks."""


def resolve_device(spec: str | torch.device | None, where: str = "device") -> torch.device | None:
    """``spec`` as a ``torch.device`` that is usable here (None stays None: "keep where it is").

    Raises :class:`DeviceError` naming ``where`` and ``spec`` for an unknown name, CUDA or MPS when this machine
    has none, or a GPU index past the last one.
    """
    if spec is None:
        return None
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"{where} '{spec}' is not a device name (expected {KNOWN})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{where} '{spec}': CUDA is not available on this machine (no GPU or no driver); "
                              "use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{where} '{spec}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{where} '{spec}': MPS is not available on this machine; use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"{where} '{spec}': unsupported device type '{device.type}' (expected {KNOWN})")
    return device
