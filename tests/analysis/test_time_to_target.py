"""Wall time to the target per batch, the fastest batch, and runs whose times are not comparable.

The runs follow synthetic_runs: steps to val_error <= 0.15 are
S(B) + 10 x seed at lr 0.1 (S = 100, 60, 40, 30 at B = 32 .. 256), and
synthetic_timing sets /train/wall_s = step x seconds-per-step, so the wall
time to the target of each run is known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from synthetic_runs import TARGET_VALUE, RunSpec, steps_to_target_truth
from synthetic_timing import A100, H100, gpu, write_timed_run

from batchscope_analysis.load import load_study
from batchscope_analysis.intervals import small_sample_factor
from batchscope_analysis.scaling import device_model, scaling_answers, shared_devices
from batchscope_analysis.target import Target

TARGET = Target("val_error", TARGET_VALUE)
SPLITS: dict[int, tuple[int, ...]] = {32: (32,), 64: (32, 32), 128: (64, 64), 256: (128, 128)}
# Seconds per step: larger batches take longer steps, but fewer of them.
SECONDS_PER_STEP: dict[int, float] = {32: 0.010, 64: 0.012, 128: 0.015, 256: 0.030}
SEEDS: tuple[int, ...] = (0, 1)
Layout = Callable[[int], tuple[list[str], list[str]]]


def one_gpu_per_rank(batch: int) -> tuple[list[str], list[str]]:
    """Rank i on host gpu<i>, its own H100: the comparable layout."""
    n = len(SPLITS[batch])
    return [f"gpu{i}" for i in range(n)], [gpu(0) for _ in range(n)]


def spec(batch: int, seed: int) -> RunSpec:
    # 8 epochs, so every seed of every batch reaches the target.
    return RunSpec(f"b{batch}-s{seed}", SPLITS[batch], seed, 0.1, epochs=8)


def build(root: Path, seconds: Optional[dict[int, float]] = None, layout: Layout = one_gpu_per_rank) -> Path:
    seconds = {**SECONDS_PER_STEP, **(seconds or {})}
    for batch in SPLITS:
        hosts, devices = layout(batch)
        for seed in SEEDS:
            write_timed_run(root, spec(batch, seed), seconds[batch], hosts, devices)
    return root


def mean_wall(batch: int, seconds: dict[int, float]) -> float:
    return float(np.mean([steps_to_target_truth(spec(batch, s)) * seconds[batch] for s in SEEDS]))


def test_wall_time_to_target_per_batch_and_fastest(tmp_path: Path) -> None:
    answers = scaling_answers(load_study(build(tmp_path)), TARGET)
    per_batch = answers["time_to_target_per_batch"]
    assert sorted(per_batch) == [32, 64, 128, 256]
    for batch, row in per_batch.items():
        steps = np.mean([steps_to_target_truth(spec(batch, s)) for s in SEEDS])
        assert row["steps"] == pytest.approx(steps) and row["samples"] == pytest.approx(steps * batch)
        assert row["wall_s"] == pytest.approx(mean_wall(batch, SECONDS_PER_STEP))
        assert row["lr"] == 0.1 and row["seeds"] == 2 and row["comparable"] is True
        assert row["low"] <= row["wall_s"] <= row["high"]
    # 45 steps x 0.015 s beats 65 x 0.012, 105 x 0.010 and 35 x 0.030.
    fastest = answers["fastest_batch"]
    assert fastest["batch"] == 128 and fastest["comparable"] is True
    assert fastest["wall_s"] == pytest.approx(0.675)
    # The 2 seeds' walls span 0.6..0.75; with 2 seeds the interval is widened by the Student-t
    # factor, on a log scale (a time stays positive).
    c = small_sample_factor(2)
    assert fastest["low"] == pytest.approx(0.675 * (0.6 / 0.675) ** c)
    assert fastest["high"] == pytest.approx(0.675 * (0.75 / 0.675) ** c)
    assert not any("not comparable" in w for w in answers["warnings"])
    # Periodic evaluations happen every 10 steps, so B=32 waited through more of them.
    assert any("periodic evaluations" in w for w in answers["warnings"])
    json.dumps(answers)


def test_fastest_follows_the_clock_not_the_steps(tmp_path: Path) -> None:
    # Slow the big batches' steps: the fewest steps (B=256) is no longer the fastest;
    # make B=32's steps cheap enough that it wins despite 105 steps.
    seconds = {32: 0.004, 64: 0.012, 128: 0.015, 256: 0.030}
    answers = scaling_answers(load_study(build(tmp_path, seconds)), TARGET)
    assert answers["fastest_batch"]["batch"] == 32
    assert answers["fastest_batch"]["wall_s"] == pytest.approx(mean_wall(32, {**SECONDS_PER_STEP, **seconds}))


def test_ranks_sharing_a_device_are_not_comparable(tmp_path: Path) -> None:
    def shared_at_64(batch: int) -> tuple[list[str], list[str]]:
        if batch == 64:
            return ["gpu0", "gpu0"], [gpu(0), gpu(0)]
        return one_gpu_per_rank(batch)

    # B=64 would be fastest (65 x 0.005 s), but its two ranks share one GPU.
    answers = scaling_answers(load_study(build(tmp_path, {64: 0.005}, shared_at_64)), TARGET)
    per_batch = answers["time_to_target_per_batch"]
    assert per_batch[64]["comparable"] is False and "ranks 0, 1" in per_batch[64]["why_not_comparable"]
    assert all(per_batch[b]["comparable"] for b in (32, 128, 256))
    assert answers["fastest_batch"]["batch"] == 128
    assert any(w.startswith("time to target at B=64 is not comparable") for w in answers["warnings"])


def test_different_hardware_is_not_comparable(tmp_path: Path) -> None:
    def mixed(batch: int) -> tuple[list[str], list[str]]:
        hosts, devices = one_gpu_per_rank(batch)
        if batch == 256:
            return hosts, [gpu(0, A100) for _ in devices]
        if batch == 32:
            return ["elsewhere"], devices
        return hosts, devices

    answers = scaling_answers(load_study(build(tmp_path, layout=mixed)), TARGET)
    per_batch = answers["time_to_target_per_batch"]
    assert per_batch[256]["comparable"] is False and A100 in per_batch[256]["why_not_comparable"]
    assert H100 in per_batch[256]["why_not_comparable"]
    assert per_batch[32]["comparable"] is False and "elsewhere" in per_batch[32]["why_not_comparable"]
    # B=64 and B=128 ran on the hosts and GPUs most runs used (B=32 on fewer of them would be fine too).
    assert per_batch[64]["comparable"] and per_batch[128]["comparable"]
    warned = [w for w in answers["warnings"] if "is not comparable" in w]
    assert len(warned) == 2


def test_a_run_on_fewer_of_the_same_devices_is_comparable(tmp_path: Path) -> None:
    # B=32 runs on gpu0 alone, the others on gpu0 and gpu1: the same hardware, less of it.
    answers = scaling_answers(load_study(build(tmp_path)), TARGET)
    assert answers["time_to_target_per_batch"][32]["comparable"] is True


def test_every_run_splitting_one_cpu_host_alike_is_comparable(tmp_path: Path) -> None:
    def two_ranks_on_one_cpu(batch: int) -> tuple[list[str], list[str]]:
        return ["vm", "vm"], ["cpu", "cpu"]

    answers = scaling_answers(load_study(build(tmp_path, {}, two_ranks_on_one_cpu)), TARGET)
    assert all(t["comparable"] for t in answers["time_to_target_per_batch"].values())
    assert not any("not comparable" in w for w in answers["warnings"])


def test_device_model_and_sharing() -> None:
    assert device_model(gpu(3)) == H100
    assert device_model("cpu") == "cpu"
    assert device_model("cuda:1 Tesla T4") == "Tesla T4"
    assert shared_devices(["a", "a"], ["cpu", "cpu"]) == "ranks 0, 1 on cpu of a"
    assert shared_devices(["a", "b"], ["cpu", "cpu"]) == ""
    assert shared_devices(["a", "a", "a"], [gpu(0), gpu(1), gpu(0)]).startswith("ranks 0, 2 on cuda:0")


def test_no_target_gives_no_times_and_says_why(tmp_path: Path) -> None:
    runs = load_study(build(tmp_path))
    answers = scaling_answers(runs, None)  # the synthetic runs declare no target
    assert answers["b_crit"] is None and "no target" in answers["b_crit_reason"]
    assert answers["time_to_target_per_batch"] == {} and answers["fastest_batch"] is None
    unreachable = scaling_answers(runs, Target("val_error", 0.01))
    assert unreachable["b_crit"] is None and "no run reached" in unreachable["b_crit_reason"]
