"""bench/scale.py's file names and summary table (the runs themselves take minutes to hours)."""
from __future__ import annotations

import json
from pathlib import Path

import scale


def _row(method: str, n: int, seconds: float, **extra) -> dict:
    return {"method": method, "n_train": n, "candidates": 6, "epochs": 10, "seconds": seconds, "peak_rss_gb": 1.5,
            "test_overall": 0.5, "threads": 2, **extra}


def test_result_path_keeps_the_cpu_name_and_suffixes_other_devices():
    results = Path("r")
    assert scale.result_path(results, "erm", 128_000, "cpu") == results / "scale_erm_128000.json"
    assert scale.result_path(results, "mr2", 1_280_000, "cuda") == results / "scale_mr2_1280000_cuda.json"
    assert scale.result_path(results, "erm", 32_000, "cuda:1") == results / "scale_erm_32000_cuda1.json"


def test_summary_lists_each_device_and_fits_growth_per_device(tmp_path, capsys):
    rows = {"scale_erm_1000.json": _row("erm", 1000, 60.0, optimizer="adam", commit="abc1234"),
            "scale_erm_4000.json": _row("erm", 4000, 240.0),
            "scale_erm_1000_cuda.json": _row("erm", 1000, 6.0, device="cuda", gpu="NVIDIA H200"),
            "scale_erm_4000_cuda.json": _row("erm", 4000, 12.0, device="cuda", gpu="NVIDIA H200")}
    for name, row in rows.items():
        (tmp_path / name).write_text(json.dumps(row))
    scale.summary(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| device | method | precision | N train |")
    assert [line.split(" | ")[0] for line in out[2:6]] == ["| cpu", "| cpu", "| NVIDIA H200", "| NVIDIA H200"]
    assert out[2].endswith("| adam | abc1234 | current |")
    assert "| erm | ? | 4,000 | 6 | 10 | 4.0 min | 1.50 GB | 50.00 | 2 | nan | ? | ? | current |" in out[3]
    assert out[6:] == ["cpu erm: time ∝ N^1.00 (current runs)", "cuda erm: time ∝ N^0.50 (current runs)"]


def test_summary_lists_kept_runs_after_the_current_ones_and_leaves_them_out_of_the_growth(tmp_path, capsys):
    rows = {"scale_mr2_1000.json": _row("mr2", 1000, 60.0), "scale_mr2_4000.json": _row("mr2", 4000, 240.0),
            # an older commit's run at 16k, four times slower than linear: it must not bend the fitted exponent
            "scale_mr2_16000_0552ee9.json": _row("mr2", 16000, 3840.0),
            "scale_mr2_4000_cuda_d808d48.json": _row("mr2", 4000, 12.0, device="cuda")}
    for name, row in rows.items():
        (tmp_path / name).write_text(json.dumps(row))
    scale.summary(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" | ", 1)[-1] for line in out[2:6]] == ["current |", "current |", "0552ee9 |", "d808d48 |"]
    assert "| mr2 | ? | 16,000 |" in out[4]
    assert out[6:] == ["cpu mr2: time ∝ N^1.00 (current runs)"]


def test_print_steps_projects_the_median_step_to_ten_epochs_of_each_size(capsys):
    """--steps: median per-step time × 10 epochs × ⌈N / 1024⌉ steps, the operations each case issues per step,
    and each round's ratio to the first case."""
    scale.print_steps({"erm": [0.30, 0.20, 0.25], "mr2 joint": [0.90, 0.40, 1.00]}, {"erm": 56.0, "mr2 joint": 102.0},
                      [102_400, 1_000])
    erm, mr2 = capsys.readouterr().out.splitlines()
    assert erm == ("erm: 250.0 ms per step (median; rounds 300.0, 200.0, 250.0), 56 operations issued per step; "
                   "training steps N=102,400: 4.2 min, N=1,000: 0.0 min")
    assert mr2.startswith("mr2 joint: 900.0 ms per step (median; rounds 900.0, 400.0, 1000.0), 102 operations issued "
                          "per step; training steps N=102,400: 15.0 min, N=1,000: 0.1 min; per round / erm: 3.00, "
                          "2.00, 4.00")


def test_result_path_names_a_requested_precision_and_the_summary_keeps_it_current(tmp_path, capsys):
    """--precision bf16 writes scale_<method>_<N>_<device>_bf16.json; the summary counts it as a current run with
    a growth of its own, not as a kept older one."""
    assert scale.result_path(Path("r"), "mr2", 4000, "cuda", "bf16") == Path("r") / "scale_mr2_4000_cuda_bf16.json"
    rows = {"scale_mr2_1000_cuda_bf16.json": _row("mr2", 1000, 6.0, device="cuda", precision="bf16",
                                                  precision_requested="bf16"),
            "scale_mr2_4000_cuda_bf16.json": _row("mr2", 4000, 24.0, device="cuda", precision="bf16",
                                                  precision_requested="bf16")}
    for name, row in rows.items():
        (tmp_path / name).write_text(json.dumps(row))
    scale.summary(tmp_path)
    out = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" | ", 1)[-1] for line in out[2:4]] == ["current |", "current |"]
    assert "| mr2 | bf16 | 1,000 |" in out[2] and out[4:] == ["cuda mr2 bf16: time ∝ N^1.00 (current runs)"]


def test_step_forms_take_the_trainers_rule_of_a_device_and_restore_it():
    """--forms per-head / joint run probe.trainer._joint_step's own CPU / CUDA rule on this device; auto and the
    end of the context leave the trainer's rule in place."""
    import torch

    import probe.trainer as trainer_module

    cpu, closed = torch.device("cpu"), trainer_module.CLOSED_FORM_CLASSES
    rule = trainer_module._joint_step
    for form, expected in (("auto", [False, True, False]), ("per-head", [False, True, False]),
                           ("joint", [False, True, True])):
        with scale.step_form(form):
            assert [trainer_module._joint_step(closed, k, cpu) for k in (1, 10, 1000)] == expected, form
        assert trainer_module._joint_step is rule
