"""bench/full_batch_epochs.py: both sides of each entry are the same run but for the epochs, and the table reads
them; bench/digits_images.py writes the layout extract reads."""
from __future__ import annotations

import json

import full_batch_epochs as bench


def test_an_entry_runs_the_baseline_at_100_epochs_and_the_automatic_count(tiny_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    assert bench.main(["--features", str(tiny_cache), "--name", "tiny", "--shots", "all", "--subsample-seeds", "0",
                       "--losses", "ce"]) == 0
    (entry,) = json.loads((tmp_path / "full_batch_epochs_tiny.json").read_text())["runs"]
    assert (entry["n"], entry["loss"], entry["seed"], entry["train_rows"]) == ("all", "ce", 0, 150)
    # 150 rows train full batch: 100 epochs against auto_epochs' 450
    assert (entry["baseline"]["epochs"], entry["auto"]["epochs"]) == (bench.BASELINE_EPOCHS, 450)
    assert entry["baseline"]["batch_size"] is entry["auto"]["batch_size"] is None
    table = bench.summary_table({"tiny": {"runs": [entry]}}).splitlines()
    diff = 100 * (entry["auto"]["overall"] - entry["baseline"]["overall"])
    assert table[2].startswith(f"| tiny, all | ce | 1 | 450 | {100 * entry['baseline']['overall']:.2f} | "
                               f"{100 * entry['auto']['overall']:.2f} | {diff:+.2f} ({diff:+.2f}..{diff:+.2f}) |")


def test_the_digits_are_written_as_train_and_test_class_folders(tmp_path):
    from PIL import Image

    import digits_images

    counts = digits_images.write_digits(tmp_path / "digits")
    assert counts == {"train": 1348, "test": 449}
    assert sorted(p.name for p in (tmp_path / "digits" / "train").iterdir()) == [str(d) for d in range(10)]
    files = sorted((tmp_path / "digits").rglob("*.png"))
    assert len(files) == 1797 and Image.open(files[0]).size == (32, 32)
