#!/usr/bin/env python3
"""A sweep benchmark: batchscope's wall time for a whole study against the
reference PyTorch baseline's per-step time summed over the same steps.

    tests/bench/sweep.py --batchscope build/batchscope \
        --baseline ../shared/baselines/torch_ddp_baseline.py --device cuda [--ranks 4]

By default the study is 8 global batches (16 .. 2048) x 2 seeds = 16 runs of
the mlp (hidden 512, 256) on Fashion-MNIST, SGD lr 0.05 momentum 0.9 (no
batch scaling), 10 epochs each, one rank per run. batchscope trains them with
`mpirun -np K batchscope run` (K one-rank replica groups, so K runs at once;
on a GPU host K processes share the GPU), and that whole command's wall time,
start-up included, is its number. The baseline (torch_ddp_baseline.py, one
process, data resident on the device) is timed once per global batch
(--baseline-steps timed steps after --baseline-warmup), and

    baseline estimate = sum over runs of (steps the run trained x baseline ms/step at its batch)

It prints a markdown table per global batch (runs, steps, baseline ms/step,
baseline estimate), then batchscope's wall time, the estimate and
speed-up = estimate / wall (above 1: batchscope faster). The estimate leaves
out the baseline's start-up and evaluation, while batchscope's wall includes
its start-up, evaluations and run files, so the comparison is conservative
for batchscope.

A small CPU check (about a minute on 2 cores):

    tests/bench/sweep.py --batchscope build/batchscope --baseline ../shared/baselines/torch_ddp_baseline.py \
        --device cpu --ranks 2 --epochs 0.02 --batches 16,64,256,1024 --seeds 1 --baseline-steps 20

A process that fails (exit code, a missing or unfinished run, a baseline
without its JSON line or with a non-finite loss) makes the script exit 1
without printing the table.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

# compare.py's; not imported from it, so that mypy checks this file alone.
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
DEFAULT_BATCHES = "16,32,64,128,256,512,1024,2048"
STUDY_NAME = "sweep_bench"


# ---------------------------------------------------------------- pure parts

@dataclass
class SweepSpec:
    """What the study trains."""
    batches: list[int]
    seeds: int
    epochs: float
    device: str
    data: str
    output: str
    name: str = STUDY_NAME


def yaml_number(x: float) -> str:
    """10.0 -> '10', 0.02 -> '0.02' (repr keeps every digit of a fraction)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def study_yaml(s: SweepSpec) -> str:
    """The study file: one 1-rank run per (global batch, seed), evaluation only at the start and the end."""
    if not s.batches or s.seeds < 1 or not s.epochs > 0:
        raise ValueError(f"need batches, seeds >= 1 and epochs > 0, got {s.batches}, {s.seeds}, {s.epochs}")
    seeds = ", ".join(str(i) for i in range(1, s.seeds + 1))
    batches = ", ".join(str(b) for b in s.batches)
    return f"""# written by tests/bench/sweep.py
study: {s.name}
output: {json.dumps(s.output)}
seed: 7
device: {s.device}

data:
  name: fashion-mnist
  root: {json.dumps(s.data)}
  train_size: 0                # all 60000
  test_size: 2000

model:
  name: mlp
  hidden: [512, 256]

optimizer:
  name: sgd
  lr: 0.05
  ref_batch: 128
  scaling: none
  momentum: 0.9

budget:
  epochs: {yaml_number(s.epochs)}

eval:
  every_epochs: 0              # only at step 0 and after the last step
  train_subset: 0              # no training-set evaluation
  batch: 1000

log:
  every_steps: 20
  progress_seconds: 30

checkpoint:
  every_minutes: 0

sweep:
  global_batch: [{batches}]
  seed: [{seeds}]
  ranks: 1
"""


@dataclass
class RunRow:
    """One row of the study's summary.csv."""
    run: str
    global_batch: int
    seed: int
    status: str
    steps: int


def parse_summary(text: str) -> list[RunRow]:
    """<output>/summary.csv as `batchscope run` writes it (columns named in its header)."""
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        rows.append(RunRow(r["run"], int(r["global_batch"]), int(r["seed"]), r["status"], int(r["steps"])))
    return rows


def run_problems(rows: list[RunRow], batches: list[int], seeds: int) -> list[str]:
    """Why the runs are not the whole sweep, completed: one line per problem (none: all is well).

    A diverged run is a result (it trained the steps it says), not a problem; see diverged()."""
    problems = []
    want = {(b, s) for b in batches for s in range(1, seeds + 1)}
    got = [(r.global_batch, r.seed) for r in rows]
    for b, s in sorted(want - set(got)):
        problems.append(f"run of global batch {b}, seed {s}: missing from summary.csv")
    for key in sorted(set(got) - want):
        problems.append(f"unexpected run of global batch {key[0]}, seed {key[1]}")
    for key in sorted({k for k in got if got.count(k) > 1}):
        problems.append(f"global batch {key[0]}, seed {key[1]}: {got.count(key)} runs")
    for r in rows:
        if r.status not in ("completed", "diverged"):
            problems.append(f"{r.run}: status {r.status}")
        elif r.steps <= 0:
            problems.append(f"{r.run}: {r.steps} steps")
    return problems


def diverged(rows: list[RunRow]) -> list[str]:
    return [r.run for r in rows if r.status == "diverged"]


@dataclass
class BatchRow:
    """The runs of one global batch and what the baseline would take for their steps."""
    batch: int
    runs: int
    steps: int
    baseline_ms: float
    estimate_s: float


@dataclass
class Totals:
    wall_s: float
    ranks: int
    estimate_s: float
    speedup: float
    rows: list[BatchRow] = field(default_factory=list)


def estimate(rows: list[RunRow], baseline_ms: dict[int, float]) -> list[BatchRow]:
    """Per global batch (ascending): sum of steps x the baseline's ms/step at that batch, in seconds."""
    out = []
    for b in sorted({r.global_batch for r in rows}):
        runs = [r for r in rows if r.global_batch == b]
        steps = sum(r.steps for r in runs)
        ms = baseline_ms[b]
        out.append(BatchRow(b, len(runs), steps, ms, steps * ms / 1e3))
    return out


def totals(batch_rows: list[BatchRow], wall_s: float, ranks: int) -> Totals:
    est = sum(r.estimate_s for r in batch_rows)
    return Totals(wall_s, ranks, est, est / wall_s if wall_s > 0 else math.nan, batch_rows)


def format_table(t: Totals) -> str:
    lines = ["| global batch | runs | steps (sum) | baseline ms/step | baseline estimate s |",
             "|---:|---:|---:|---:|---:|"]
    for r in t.rows:
        lines.append(f"| {r.batch} | {r.runs} | {r.steps} | {r.baseline_ms:.3f} | {r.estimate_s:.2f} |")
    lines.append(f"| all | {sum(r.runs for r in t.rows)} | {sum(r.steps for r in t.rows)} | | {t.estimate_s:.2f} |")
    lines += [
        "",
        f"batchscope wall ({t.ranks} rank{'s' if t.ranks != 1 else ''}): {t.wall_s:.2f} s",
        f"baseline estimate: {t.estimate_s:.2f} s",
        f"speed-up = estimate / wall: {t.speedup:.2f} (above 1: batchscope faster)",
        "The estimate leaves out the baseline's start-up and evaluation; batchscope's wall includes its "
        "start-up, evaluations and run files (and its noise statistics), so the comparison is conservative "
        "for batchscope.",
    ]
    return "\n".join(lines)


def baseline_warmup(batch: int, gpu: bool, asked: Optional[int]) -> int:
    """Untimed steps: what was asked, else compare.py's choice (20 on a GPU, fewer for large CPU batches)."""
    if asked is not None:
        return asked
    return 20 if gpu else max(1, min(20, 2048 // batch))


def last_json(text: str) -> Optional[dict[str, Any]]:
    """The last line of text that is a JSON object (the baseline prints one), as compare.py reads it."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                out = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(out, dict):
                return out
    return None


def json_problem(code: int, out: Optional[dict[str, Any]]) -> str:
    """Why a benchmark's result is unusable ("" when it is not): exit code, no JSON, no finite step time or loss."""
    if code != 0:
        return f"exit {code}"
    if out is None:
        return "no JSON line"
    for key in ("step_ms", "final_loss"):
        try:
            ok = math.isfinite(float(out.get(key, math.nan)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return f"no finite {key}: {out}"
    return ""


def mpirun_cmd(ranks: int, cores: int) -> list[str]:
    exe = shutil.which("mpirun")
    if not exe:
        sys.exit("sweep.py: mpirun not found (Debian: openmpi-bin)")
    return [exe] + (["--oversubscribe"] if ranks > cores else []) + ["-np", str(ranks)]


# ---------------------------------------------------------------- processes

def resolve_device(asked: str, python: str) -> str:
    """auto: cuda when the baseline's torch sees a GPU (batchscope then must too: the study says cuda)."""
    if asked != "auto":
        return asked
    probe = subprocess.run([python, "-c", "import torch; print(int(torch.cuda.is_available()))"],
                           capture_output=True, text=True)
    return "cuda" if probe.stdout.strip() == "1" else "cpu"


def run_json(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[Optional[dict[str, Any]], str]:
    """Runs cmd and returns its JSON line, or None and why not."""
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s: {' '.join(cmd)}"
    out = last_json(p.stdout)
    why = json_problem(p.returncode, out)
    if why:
        return None, f"{why}: {' '.join(cmd)}\n    {tail(p.stdout + p.stderr)}"
    return out, ""


def tail(text: str, n: int = 15) -> str:
    return "\n    ".join(text.strip().splitlines()[-n:])


def plan_study(a: argparse.Namespace, study: str, sets: list[str], env: dict[str, str]) -> Optional[str]:
    """`batchscope plan`: validates the study for K ranks before anything trains. Returns an error or None."""
    cmd = [a.batchscope, "plan", study, "--ranks", str(a.ranks)] + sets
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=a.timeout)
    if p.returncode != 0:
        return f"exit {p.returncode}: {' '.join(cmd)}\n    {tail(p.stdout + p.stderr)}"
    print(f"# {p.stdout.strip().splitlines()[0]}", flush=True)
    return None


def run_baselines(a: argparse.Namespace, device: str, batches: list[int], env: dict[str, str],
                  failures: list[str]) -> tuple[dict[int, float], list[dict[str, Any]]]:
    """The baseline once per global batch, one process: its ms per step by batch, and its JSON lines."""
    gpu = device == "cuda"
    steps = a.baseline_steps or (200 if gpu else 20)
    threads = a.threads or (os.cpu_count() or 1)
    ms: dict[int, float] = {}
    results: list[dict[str, Any]] = []
    for i, b in enumerate(batches):
        cmd = [a.python, a.baseline, "--data", a.data, "--model", "mlp", "--batch", str(b), "--steps", str(steps),
               "--warmup", str(baseline_warmup(b, gpu, a.baseline_warmup)), "--device", device,
               "--loader", "resident"] + ([] if gpu else ["--threads", str(threads)])
        # A fresh rendezvous port per process: the last one's socket may be in TIME_WAIT.
        t = time.perf_counter()
        r, err = run_json(cmd, dict(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29650 + i)), a.timeout)
        if err or r is None:
            failures.append(f"baseline b{b}: {err}")
            continue
        ms[b] = float(r["step_ms"])
        results.append(r)
        print(f"# baseline b{b}: {ms[b]:.3f} ms/step ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    return ms, results


def run_batchscope(a: argparse.Namespace, study: str, sets: list[str], env: dict[str, str], log: str,
                   failures: list[str]) -> float:
    """`mpirun -np K batchscope run STUDY`: its wall time in seconds, start-up included (NaN if it failed)."""
    cmd = mpirun_cmd(a.ranks, os.cpu_count() or 1) + [a.batchscope, "run", study, "--overwrite"] + sets
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    print(f"# {' '.join(cmd)}", file=sys.stderr, flush=True)
    with open(log, "w") as f:
        t = time.perf_counter()
        try:
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=a.timeout)
            code: Optional[int] = p.returncode
        except subprocess.TimeoutExpired:
            code = None
        wall = time.perf_counter() - t
    with open(log) as f:
        text = f.read()
    if code != 0:
        why = f"timed out after {a.timeout:.0f} s" if code is None else f"exit {code}"
        failures.append(f"batchscope: {why}: {' '.join(cmd)}\n    {tail(text)}")
        return math.nan
    print(f"# batchscope: {wall:.1f} s", file=sys.stderr, flush=True)
    return wall


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batchscope", required=True, help="the batchscope binary")
    ap.add_argument("--baseline", required=True, help="torch_ddp_baseline.py (a copy of ../shared/baselines/)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch for the baseline")
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", DEFAULT_DATA),
                    help="Fashion-MNIST IDX folder")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: cuda when the baseline's torch sees a GPU")
    ap.add_argument("--ranks", type=int, default=1, help="MPI ranks for batchscope: 1-rank groups, K runs at once")
    ap.add_argument("--batches", default=DEFAULT_BATCHES, help="global batches, comma-separated")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per batch (1..N)")
    ap.add_argument("--epochs", type=float, default=10, help="epochs per run (fractions allowed)")
    ap.add_argument("--baseline-steps", type=int, default=0, help="timed baseline steps (0: 200 on cuda, 20 on cpu)")
    ap.add_argument("--baseline-warmup", type=int, default=None,
                    help="untimed baseline steps (default: 20 on cuda; on cpu min(20, 2048 / batch))")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads: the baseline's (0: all cores) and, when set, batchscope's per rank")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="passed to batchscope plan/run as --set (repeatable); leave sweep.* and output alone "
                         "(the runs are checked against --batches and --seeds in <study folder>/out)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    ap.add_argument("--out", help="also write a JSON summary here")
    ap.add_argument("--keep", help="study folder to keep: study.yaml, run.log (batchscope's console), out/ (run files, "
                         "summary.csv); default: a temporary one, removed at the end")
    a = ap.parse_args(argv)
    if a.ranks < 1 or a.seeds < 1 or not a.epochs > 0:
        ap.error("--ranks and --seeds must be >= 1 and --epochs > 0")
    return a


def benchmark(a: argparse.Namespace, folder: str) -> int:
    batches = [int(b) for b in a.batches.split(",")]
    device = resolve_device(a.device, a.python)
    spec = SweepSpec(batches, a.seeds, a.epochs, device, os.path.abspath(a.data), os.path.join(folder, "out"))
    study = os.path.join(folder, "study.yaml")
    with open(study, "w") as f:
        f.write(study_yaml(spec))
    sets = [x for kv in a.sets for x in ("--set", kv)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", PYTHONUNBUFFERED="1")
    version = subprocess.run([a.batchscope, "version"], capture_output=True, text=True).stdout.strip()
    print(f"# {len(batches) * a.seeds} runs ({len(batches)} batches x {a.seeds} seeds), {yaml_number(a.epochs)} "
          f"epochs, device {device}, {a.ranks} rank(s); study {study}\n# {version.splitlines()[0] if version else '?'}"
          f"\n# load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (a busy machine slows the baseline "
          f"and batchscope unevenly)", flush=True)

    err = plan_study(a, study, sets, env)
    if err:
        print(f"sweep.py: the study does not plan: {err}", file=sys.stderr)
        return 1
    failures: list[str] = []
    ms, base_json = run_baselines(a, device, batches, env, failures)
    wall = run_batchscope(a, study, sets, env, os.path.join(folder, "run.log"), failures) if not failures else math.nan
    rows: list[RunRow] = []
    if not failures:
        summary = os.path.join(spec.output, "summary.csv")
        try:
            with open(summary) as f:
                rows = parse_summary(f.read())
        except (OSError, KeyError, ValueError) as e:
            failures.append(f"batchscope: cannot read {summary}: {e}")
        failures += [f"batchscope: {p}" for p in run_problems(rows, batches, a.seeds)]
    if failures:
        print(f"\n{len(failures)} failure(s); no table:", file=sys.stderr)
        for f_ in failures:
            print("  " + f_, file=sys.stderr)
        return 1

    t = totals(estimate(rows, ms), wall, a.ranks)
    print("\n" + format_table(t))
    if diverged(rows):
        print(f"diverged (counted with the steps they trained): {', '.join(diverged(rows))}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"device": device, "ranks": a.ranks, "epochs": a.epochs, "seeds": a.seeds, "batches": batches,
                       "batchscope_version": version, "totals": asdict(t), "runs": [asdict(r) for r in rows],
                       "baseline": base_json}, f, indent=1)
            f.write("\n")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    a = parse_args(argv)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        return benchmark(a, os.path.abspath(a.keep))
    with tempfile.TemporaryDirectory(prefix="bs-sweep-") as folder:
        return benchmark(a, folder)


if __name__ == "__main__":
    sys.exit(main())
