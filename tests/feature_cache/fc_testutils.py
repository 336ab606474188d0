"""Builders for feature_cache tests: tiny image trees and a tiny random-weight encoder."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from torch import nn

from feature_cache import Encoder, EncoderSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/testdata.py, also in spawned processes
from testdata import make_tree, shared_cifar_zip, write_image  # noqa: E402,F401 - builders shared by all tests


class TinyNet(nn.Module):
    """conv → ReLU → global average pool → linear: (n, 3, s, s) → (n, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters of every BatchNorm away from their (identity) initial values, so
    that a wrong conversion or fold shows in the features; returns the model in eval mode."""
    from torch.nn.modules.batchnorm import _BatchNorm

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=gen))
    return model.eval()


def _forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images)


def tiny_encoder(seed: int = 0, counter: list[int] | None = None, precision: str = "fp32",
                 device: str = "cpu", name: str | None = None) -> Encoder:
    """A deterministic random-weight encoder (8-d features, 16×16 inputs); ``counter[0]`` counts images. ``name``:
    its spec's name (default ``tiny-<seed>``), e.g. ``mocov2:PATH``, whose path the fingerprints leave out."""
    torch.manual_seed(seed)
    model = TinyNet()
    digest = hashlib.sha256()
    for value in model.state_dict().values():
        digest.update(value.numpy().tobytes())
    spec = EncoderSpec(name=name or f"tiny-{seed}", num_features=8, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3,
                       interpolation="bilinear")
    encoder = Encoder(spec, model, _forward, digest.hexdigest(), torch.device(device), precision=precision)
    if counter is not None:
        encode = encoder.encode

        def counting(images: torch.Tensor) -> torch.Tensor:
            counter[0] += images.shape[0]
            return encode(images)

        encoder.encode = counting  # type: ignore[method-assign]
    return encoder




def fail_encoding(exc: BaseException) -> None:
    """This process's torchrun extraction (``feature_cache.distributed``) fails to encode its shard with ``exc``."""
    from feature_cache import distributed

    def failing(*args, **kwargs):
        raise exc

    distributed.run_plan = failing


def distributed_worker(rank: int, world_size: int, port: int, data: str, out: str, results: str,
                       failing_rank: int | None = None) -> None:
    """torch.multiprocessing.spawn target: gloo group, sharded extraction with the tiny encoder. ``failing_rank``:
    the rank whose encoding of its shard fails (a ``DatasetChanged``, as a file of its block moved meanwhile)."""
    import json
    import os

    import torch.distributed as dist

    from feature_cache.distributed import extract_distributed
    from feature_cache.errors import DatasetChanged

    if rank == failing_rank:
        fail_encoding(DatasetChanged(f"a file of rank {rank}'s block was moved"))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        from feature_cache import CacheMismatch, DatasetError, ExtractionBusy

        try:
            result = extract_distributed(data, tiny_encoder(), None, out=out, batch_size=4, workers=0,
                                         show_progress=False)
        except (DatasetError, CacheMismatch, ExtractionBusy) as exc:  # what every rank raised
            Path(results, f"rank{rank}.json").write_text(json.dumps({"error": str(exc),
                                                                      "kind": type(exc).__name__}))
            return
        Path(results, f"rank{rank}.json").write_text(json.dumps(
            {"encoded": result.encoded, "counts": result.counts, "reused": result.reused, "path": str(result.path),
             "skipped": sorted(map(list, result.skipped))}))
    finally:
        dist.destroy_process_group()


def distributed_main(rank: int, world_size: int, port: int, argv: list[str], results: str,
                     failure: BaseException | None = None) -> None:
    """torch.multiprocessing.spawn target: ``feature_cache.distributed.main(argv)`` as torchrun starts it (its
    environment variables), its exit code and what it printed to stderr written to ``results``/rank<r>.json.
    ``failure``: what the last rank's encoding of its shard raises (:func:`fail_encoding`)."""
    import contextlib
    import io
    import json
    import os

    from feature_cache.distributed import main

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    if failure is not None and rank == world_size - 1:
        fail_encoding(failure)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(argv)
    Path(results, f"rank{rank}.json").write_text(json.dumps({"code": code, "stderr": stderr.getvalue()}))
