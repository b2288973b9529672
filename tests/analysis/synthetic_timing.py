"""Run files with chosen wall clocks and device layouts, for time-to-target tests.

Built on synthetic_runs.write_run_file (its curves, so steps to the target
val_error <= TARGET_VALUE are S_MIN + E_MIN/B + 10 x seed at lr 0.1, plus 20
at any other lr), then /train/wall_s and /layout rewritten in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from synthetic_runs import RunSpec, write_run_file

H100: str = "NVIDIA H100 80GB HBM3"
A100: str = "NVIDIA A100-SXM4-40GB"


def gpu(index: int, model: str = H100) -> str:
    """A device string as the writer records it: `cuda:K <name> <uuid>`."""
    return f"cuda:{index} {model} GPU-{index:08x}-0000-0000-0000-000000000000"


def set_wall(path: Path, seconds_per_step: float) -> None:
    """/train/wall_s = step x seconds_per_step (the clock at the end of each step)."""
    with h5py.File(path, "r+") as f:
        steps = f["train/step"][()].astype(float)
        f["train/wall_s"][...] = steps * seconds_per_step


def set_layout(path: Path, hosts: Sequence[str], devices: Sequence[str]) -> None:
    """Replaces /layout/hosts and /layout/devices (one entry per rank)."""
    with h5py.File(path, "r+") as f:
        for name, values in (("hosts", hosts), ("devices", devices)):
            del f["layout"][name]
            f["layout"].create_dataset(name, data=list(values), dtype=h5py.string_dtype())


def write_timed_run(root: Path, spec: RunSpec, seconds_per_step: float, hosts: Sequence[str],
                    devices: Sequence[str]) -> Path:
    """One run file under root/runs with the given clock and layout."""
    runs = root / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    path = write_run_file(runs / f"{spec.name}.h5", spec, study="timed")
    set_wall(path, seconds_per_step)
    set_layout(path, hosts, devices)
    return path


def wall_truth(steps: float, seconds_per_step: float) -> float:
    return float(np.float64(steps) * seconds_per_step)
