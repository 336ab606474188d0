"""Each sweep candidate's validation accuracy at the end of every epoch, and what cutting the sweep short would
have chosen: successive halving of the candidates, or fewer epochs.

Issue 17's 1.28M MR² target (< 2 h on the 2-core AMD EPYC) needs fewer products per run: the sweep's candidates
× its epochs. Two ways to fewer products change what a run selects, so this bench measures that first:

* **successive halving** (scikit-learn's ``HalvingGridSearchCV``, Hyperband): after some epochs ("rungs") stop
  the worse half of the candidates by their validation accuracy so far. Printed: for each set of rungs, whether
  the candidate the full sweep selects would have survived, the validation accuracy of the best survivor and
  the head-epochs saved;
* **fewer epochs**: run it again with ``--epochs`` (the fit's cosine schedule then spans those epochs) and compare
  the selected candidate's test accuracy with the default's.

It runs ``probe.run_probe`` as ``bench/scale.py`` does (ProbeConfig's default sweep, one seed) on scale.py's
synthetic data (1000 classes × 1024-d, 50 validation rows per class) or on a feature cache, and wraps
``probe.trainer._Run.end_epoch`` to score the head on the validation split as each epoch ends (fp32 forward,
in chunks; the selection sweep's joint fit comes first, then the seed fit). Selection is on validation
(``cv=0``) even where a run would cross-validate. Results go to
``bench/results/epoch_curves_<data>_<loss>_e<epochs>.json``.

Usage::

    python bench/epoch_curves.py --synthetic 128000 --loss ce                  # ~6 min on 2 cores
    python bench/epoch_curves.py --synthetic 128000 --loss ce --epochs 4 20
    python bench/epoch_curves.py --synthetic 128000 --loss ce --lr 0.001 --epochs 0 4   # another lr grid
    python bench/epoch_curves.py --features /work/cache/cifar10-full.h5 --loss ce --epochs 0 4 30
    python bench/epoch_curves.py --summary bench/results/epoch_curves_synthetic128000_ce_eauto.json
"""
from __future__ import annotations

import sys

import thread_caps  # bench/, this script's folder; imports nothing numerical

if __name__ == "__main__":  # the thread pools are sized at numpy's and torch's import: before it, and only when run
    thread_caps.cap_environment(thread_caps.threads_from_argv(sys.argv, default=2))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# successive halving: the fractions of the epochs after which the worse half of the candidates stops
RUNGS = ((1 / 2,), (1 / 3,), (1 / 4, 1 / 2), (1 / 5, 2 / 5), (1 / 10, 3 / 10))


def _recording(val_x, val_y, records: list[dict]):
    """Wrap ``probe.trainer._Run.end_epoch`` so that each head's validation accuracy is appended to ``records``
    as its epoch ends; returns a function restoring the original."""
    import numpy as np
    import torch

    import probe.trainer as trainer

    original = trainer._Run.end_epoch

    def end_epoch(run, loss):
        original(run, loss)
        correct = 0
        run.head.eval()
        with torch.no_grad():
            for start in range(0, len(val_y), 8192):
                xb = torch.from_numpy(np.asarray(val_x[start:start + 8192], dtype=np.float32))
                correct += int((run.head(xb).argmax(1).numpy() == val_y[start:start + 8192]).sum())
        run.head.train()
        t = run.trainer
        records.append({"fit": id(t), "lr": t.lr, "weight_decay": t.weight_decay, "cbar": t.cbar,
                        "epoch": run.epochs_run, "val": correct / len(val_y), "loss": loss})

    trainer._Run.end_epoch = end_epoch
    return lambda: setattr(trainer._Run, "end_epoch", original)


def load_data(args) -> tuple[dict, list[str], str]:
    """(run_probe's data, class names, a name for the result file)."""
    import numpy as np

    if args.synthetic:
        import scale

        rng = np.random.default_rng(0)
        means = scale.class_means(rng)
        data = {"train": scale.draw(args.synthetic, means, rng), "val": scale.draw(scale.N_VAL, means, rng),
                "test": scale.draw(scale.N_TEST, means, rng)}
        return data, [f"c{k}" for k in range(scale.NUM_CLASSES)], f"synthetic{args.synthetic}"
    from feature_cache.store import open_cache

    cache = open_cache(args.features)
    data = cache.training_data()
    if "val" not in data:
        raise SystemExit(f"{args.features} has no val split: this bench scores candidates on validation.")
    return data, cache.class_names, Path(args.features).stem


def curves(records: list[dict], n_candidates: int) -> list[dict]:
    """The selection sweep's fits (the first ``n_candidates`` to record an epoch), each with its validation
    accuracy per epoch."""
    by_fit: dict[int, dict] = {}
    for r in records:
        fit = by_fit.setdefault(r["fit"], {k: r[k] for k in ("lr", "weight_decay", "cbar")} | {"val": []})
        fit["val"].append(r["val"])
    return list(by_fit.values())[:n_candidates]


def halving(sweep: list[dict], fractions: tuple[float, ...]) -> dict:
    """What successive halving keeps when the worse half of the candidates still training stops at each of
    ``fractions`` of the epochs (by validation accuracy there; grid order breaks ties): the best survivor by final
    validation accuracy against the full sweep's best, and the head-epochs trained against the full sweep's
    (a fit that met ``tol`` earlier counts its own epochs)."""
    epochs = max(len(c["val"]) for c in sweep)
    rungs = [max(1, math.ceil(f * epochs)) for f in fractions]
    final = [c["val"][-1] for c in sweep]
    stopped = [len(c["val"]) for c in sweep]
    alive = list(range(len(sweep)))
    for rung in rungs:
        at = {i: sweep[i]["val"][min(rung, stopped[i]) - 1] for i in alive}
        alive = sorted(alive, key=lambda i: (-at[i], i))
        for i in alive[math.ceil(len(alive) / 2):]:
            stopped[i] = min(stopped[i], rung)
        alive = alive[:math.ceil(len(alive) / 2)]
    best = min(range(len(sweep)), key=lambda i: (-final[i], i))
    kept = min(alive, key=lambda i: (-final[i], i))
    return {"rungs": rungs, "kept_best": kept == best, "val_kept": final[kept], "val_best": final[best],
            "head_epochs": sum(stopped), "head_epochs_full": sum(len(c["val"]) for c in sweep)}


def summarize(result: dict) -> None:
    print(f"{result['data']} {result['loss']}, epochs {result['epochs']}: selected {result['selected']}, "
          f"test {100 * result['test_overall']:.2f} %, {result['seconds']:.0f} s")
    for c in result["sweep"]:
        print(f"  lr {c['lr']:g} wd {c['weight_decay']:.3g} c̄ {c['cbar']:g}: "
              + " ".join(f"{100 * v:.2f}" for v in c["val"]))
    for h in result["halving"]:
        print(f"  halving after epochs {h['rungs']}: keeps the full sweep's best: {h['kept_best']} (val "
              f"{100 * h['val_kept']:.2f} against {100 * h['val_best']:.2f}); head-epochs {h['head_epochs']} of "
              f"{h['head_epochs_full']} ({h['head_epochs_full'] / h['head_epochs']:.2f}x fewer)")


def run(args, epochs: int | None) -> dict:
    import numpy as np  # noqa: F401
    import torch  # noqa: F401

    from probe import ProbeConfig, run_probe

    pools = thread_caps.cap_pools(args.threads)
    data, names, name = load_data(args)
    records: list[dict] = []
    restore = _recording(*data["val"], records)
    extra = {"epochs": epochs} if epochs else {}
    if args.lr:
        extra["lr_grid"] = args.lr
    config = ProbeConfig(seeds=[0], loss=args.loss, cv=0, **extra)
    start = time.perf_counter()
    try:
        report = run_probe(data, names, config, tune_allocator=True).model_dump(mode="json")
    finally:
        restore()
    seconds = time.perf_counter() - start
    sweep = curves(records, len(report["selection"]["candidates"]))
    result = {"data": name, "loss": args.loss, "epochs": report["config"]["epochs"], "seconds": seconds,
              "selected": report["config"]["selected"], "test_overall": report["summary"]["overall"],
              "sweep": sweep, "halving": [halving(sweep, r) for r in RUNGS],
              "threads": args.threads, "pools": thread_caps.describe_pools(pools), "machine": thread_caps.machine(),
              "command": " ".join(["python", "bench/epoch_curves.py", *sys.argv[1:]])}
    lr = "_lr" + "_".join(f"{v:g}" for v in args.lr) if args.lr else ""
    out = RESULTS / f"epoch_curves_{name}_{args.loss}_e{epochs or 'auto'}{lr}.json"
    out.write_text(json.dumps(result, indent=1))
    summarize(result)
    print(f"  -> {out}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, help="rows of bench/scale.py's 1000-class synthetic training set")
    source.add_argument("--features", help="a feature cache with train, val and test splits")
    source.add_argument("--summary", nargs="+", help="print result files instead of running")
    parser.add_argument("--loss", default="ce", choices=["ce", "mr2"])
    parser.add_argument("--epochs", type=int, nargs="+", default=[0], help="epoch counts to run (0: auto_epochs)")
    parser.add_argument("--lr", type=float, nargs="+", help="the sweep's learning rates (default: ProbeConfig's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.summary:
        for path in args.summary:
            summarize(json.loads(Path(path).read_text()))
        return
    for epochs in args.epochs:
        run(args, epochs)


if __name__ == "__main__":
    main()
