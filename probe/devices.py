"""The one device resolver: what ``auto``, ``cpu``, ``cuda`` and ``cuda:N`` mean on this host.

Probes (``probe.trainer``), extraction (``feature_cache.encoders``), the service's setting and a job's request
(``app.config``, ``app.validation``) all resolve a device here, so a name accepted by one is accepted by all and
a device this host lacks is refused with the same words before any work starts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .constraints import Device, check

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(device: "str | torch.device" = "auto") -> "torch.device":
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` as a ``torch.device``.

    Raises ValueError for any other value (:data:`probe.constraints.DEVICE_PATTERN`), and for ``cuda`` /
    ``cuda:N`` on a host without CUDA or without device N, naming the value and what is accepted.
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    check("device", device, [Device()])
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r} does not exist on this host: CUDA is not available; use 'cpu' or "
                             "'auto'.")
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise ValueError(f"device {device!r} does not exist on this host: it has {count} CUDA device(s); use "
                             f"cuda:0..cuda:{count - 1}, 'cpu' or 'auto'.")
    return torch.device(device)
