"""tests/bench/sweep.py's pure parts: the study it writes, the summary it reads, the estimate and the table.

The benchmark itself (batchscope and the baseline training) runs on demand,
not here; these check the arithmetic and the text it is built from.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

SWEEP_PY: Path = Path(__file__).resolve().parents[1] / "bench" / "sweep.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sweep", SWEEP_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


sweep = _load()
BATCHES = [16, 32, 64, 128, 256, 512, 1024, 2048]


def _spec(**kw: object) -> object:
    args: dict[str, object] = dict(batches=BATCHES, seeds=2, epochs=10.0, device="cuda",
                                   data="/usr/share/datasets/fashion-mnist", output="/tmp/x y/out")
    args.update(kw)
    return sweep.SweepSpec(**args)


def _study(**kw: object) -> dict[str, object]:
    study = yaml.safe_load(sweep.study_yaml(_spec(**kw)))
    assert isinstance(study, dict)
    return study


def test_study_holds_8_batches_x_2_seeds_of_one_rank() -> None:
    study = _study()
    s = study["sweep"]
    assert isinstance(s, dict)
    assert s["global_batch"] == BATCHES and s["seed"] == [1, 2] and s["ranks"] == 1
    assert len(s["global_batch"]) * len(s["seed"]) == 16
    assert "lr" not in s and "runs" not in study  # every run at optimizer.lr, nothing besides the sweep
    assert study["model"] == {"name": "mlp", "hidden": [512, 256]}
    assert study["optimizer"] == {"name": "sgd", "lr": 0.05, "ref_batch": 128, "scaling": "none", "momentum": 0.9}
    assert study["budget"] == {"epochs": 10}
    assert study["device"] == "cuda" and study["output"] == "/tmp/x y/out"
    assert study["data"] == {"name": "fashion-mnist", "root": "/usr/share/datasets/fashion-mnist",
                             "train_size": 0, "test_size": 2000}
    ev = study["eval"]
    assert isinstance(ev, dict) and ev["every_epochs"] == 0 and ev["train_subset"] == 0


@pytest.mark.parametrize("epochs", [0.02, 0.5, 1.25, 1e-3])
def test_fractional_epochs_go_through(epochs: float) -> None:
    assert _study(epochs=epochs)["budget"] == {"epochs": epochs}
    assert sweep.yaml_number(epochs) != "0"


def test_whole_epochs_are_integers() -> None:
    assert "epochs: 10\n" in sweep.study_yaml(_spec(epochs=10.0))


def test_seeds_and_device_follow_the_spec() -> None:
    study = _study(seeds=3, batches=[64], device="cpu")
    assert study["sweep"] == {"global_batch": [64], "seed": [1, 2, 3], "ranks": 1}
    assert study["device"] == "cpu"


@pytest.mark.parametrize("bad", [dict(batches=[]), dict(seeds=0), dict(epochs=0.0), dict(epochs=math.nan)])
def test_empty_or_zero_sweeps_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sweep.study_yaml(_spec(**bad))


SUMMARY = """run,global_batch,ranks,base_lr,peak_lr,seed,status,steps,steps_to_target,final_val_acc,best_val_acc,\
final_train_acc,samples_per_s,wall_s
b16_lr0.05_s1,16,1,0.05,0.05,1,completed,75,-1,0.6,0.6,nan,1000,1.2
b16_lr0.05_s2,16,1,0.05,0.05,2,completed,75,-1,0.6,0.6,nan,1000,1.2
b1024_lr0.05_s1,1024,1,0.05,0.05,1,completed,3,-1,0.3,0.3,nan,1000,1.2
b1024_lr0.05_s2,1024,1,0.05,0.05,2,diverged,2,-1,nan,0.1,nan,1000,1.2
"""


def test_summary_parses_by_column_name() -> None:
    rows = sweep.parse_summary(SUMMARY)
    assert [(r.global_batch, r.seed, r.status, r.steps) for r in rows] == [
        (16, 1, "completed", 75), (16, 2, "completed", 75), (1024, 1, "completed", 3), (1024, 2, "diverged", 2)]
    assert sweep.run_problems(rows, [16, 1024], 2) == []
    assert sweep.diverged(rows) == ["b1024_lr0.05_s2"]


def test_missing_failed_and_extra_runs_are_problems() -> None:
    rows = sweep.parse_summary(SUMMARY)
    assert len(sweep.run_problems(rows, [16, 64, 1024], 2)) == 2  # b64 s1, s2 missing
    assert len(sweep.run_problems(rows, [16, 1024], 1)) == 2  # two seed-2 runs not asked for
    rows[0].status = "failed"
    rows[1].steps = 0
    problems = sweep.run_problems(rows, [16, 1024], 2)
    assert problems == ["b16_lr0.05_s1: status failed", "b16_lr0.05_s2: 0 steps"]
    assert sweep.run_problems(rows[:1] + rows, [16, 1024], 2)[0] == "global batch 16, seed 1: 2 runs"
    assert sweep.run_problems([], [16], 1) == ["run of global batch 16, seed 1: missing from summary.csv"]


def test_estimate_sums_steps_times_ms_per_batch() -> None:
    rows = sweep.parse_summary(SUMMARY)
    got = sweep.estimate(rows, {16: 2.0, 1024: 40.0, 64: 999.0})
    assert [(b.batch, b.runs, b.steps) for b in got] == [(16, 2, 150), (1024, 2, 5)]
    assert got[0].estimate_s == pytest.approx(150 * 2.0 / 1e3)
    assert got[1].estimate_s == pytest.approx(5 * 40.0 / 1e3)
    t = sweep.totals(got, 0.1, 2)
    assert t.estimate_s == pytest.approx(0.3 + 0.2)
    assert t.speedup == pytest.approx(0.5 / 0.1)
    assert math.isnan(sweep.totals(got, 0.0, 2).speedup)
    with pytest.raises(KeyError):  # a batch the baseline did not time is an error, not a zero
        sweep.estimate(rows, {16: 2.0})


def test_table_shows_every_batch_and_the_totals() -> None:
    rows = sweep.parse_summary(SUMMARY)
    text = sweep.format_table(sweep.totals(sweep.estimate(rows, {16: 2.0, 1024: 40.0}), 0.25, 2))
    lines = text.splitlines()
    assert lines[0].startswith("| global batch | runs | steps (sum) | baseline ms/step | baseline estimate s |")
    assert "| 16 | 2 | 150 | 2.000 | 0.30 |" in lines
    assert "| 1024 | 2 | 5 | 40.000 | 0.20 |" in lines
    assert "| all | 4 | 155 | | 0.50 |" in lines
    assert "batchscope wall (2 ranks): 0.25 s" in lines
    assert "speed-up = estimate / wall: 2.00 (above 1: batchscope faster)" in lines
    assert any("conservative for batchscope" in line for line in lines)


def test_last_json_and_its_problems() -> None:
    out = sweep.last_json('noise\n{"step_ms": 1.5, "final_loss": 0.3}\n{bad json}\nmore\n')
    assert out == {"step_ms": 1.5, "final_loss": 0.3}
    assert sweep.json_problem(0, out) == ""
    assert sweep.json_problem(1, out) == "exit 1"
    assert sweep.json_problem(0, None) == "no JSON line"
    assert sweep.json_problem(0, {"step_ms": 1.0, "final_loss": math.nan}).startswith("no finite final_loss")
    assert sweep.json_problem(0, {"final_loss": 0.1}).startswith("no finite step_ms")


def test_mpirun_oversubscribes_only_past_the_cores() -> None:
    if sweep.shutil.which("mpirun") is None:
        pytest.skip("no mpirun")
    assert "--oversubscribe" not in sweep.mpirun_cmd(2, 2)
    assert sweep.mpirun_cmd(2, 2)[-2:] == ["-np", "2"]
    assert "--oversubscribe" in sweep.mpirun_cmd(4, 2)


def test_baseline_warmup() -> None:
    assert sweep.baseline_warmup(16, True, None) == 20
    assert sweep.baseline_warmup(1024, False, None) == 2
    assert sweep.baseline_warmup(8192, False, None) == 1
    assert sweep.baseline_warmup(16, False, 3) == 3
