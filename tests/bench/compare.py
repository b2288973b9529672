#!/usr/bin/env python3
"""Times batchscope and the reference PyTorch DDP baseline in one invocation,
on the same model, per-rank batch, world size and data, and prints step time
for both and their ratio.

    tests/bench/compare.py --batchscope build/batchscope \
        --baseline ../shared/baselines/torch_ddp_baseline.py [--ranks 2] [--device cpu]

Both run under mpirun with the same number of ranks: batchscope with its own
communicator (NCCL on GPUs, MPI on the CPU), the baseline with
DistributedDataParallel over NCCL (GPU) or gloo (CPU). Both keep the data set
resident on the device and train with SGD (lr 0.05, momentum 0.9).

ratio = batchscope step time / baseline step time: below 1 batchscope is
faster. batchscope's step also computes what the baseline does not (per-rank
and micro-batch squared gradient norms for the noise estimate): the ratio is
the price of that instrumentation plus any difference in the training loop.

--rounds N runs each case N times, batchscope and the baseline in turn
(A B A B ...), and reports each side's median step time and the median,
min and max of the per-round ratios, so a drift in the machine's speed hits
both sides of a pair alike.

--instrumentation also runs, per case and after its rounds, one `bench
--pair stats` and one `bench --pair trace` process: each times its two sides
(the noise statistics on / off; the run file written / not) in turn, A B B A
..., --pair-rounds times inside that one process, since separate processes of
one configuration drift by +-10 % on a small machine, far more than the 1-2 %
asked of the instrumentation. "stats" = with / without the statistics,
"trace" = with / without the run file (above 1: what the instrumentation
costs): the median of the per-round ratios and, in brackets, its
order-statistic interval (about 98 % at 10 rounds; `ratio_ci_level` in --out).

--floor also runs, in the same rounds, tests/bench/floor.py in the baseline's
interpreter under the same mpirun: the step's convolutions and matrix
products alone, each layer timed in isolation with the library both sides
link (the baseline's own model). Neither side's step can be faster than this
sum, so "floor / baseline" is the lowest ratio the library's kernels allow: a
target below it needs kernels faster than the library's, not a leaner loop.

--eager also times, in the same rounds, batchscope with CUDA graphs off
(bench --graphs off): "eager ms/step" and its ratio to the baseline. The
main column is gpu.graphs: auto (graphs on GPUs for the built-in models; the
"graphs" column says which it was).

A benchmark that fails (exit code, missing JSON, non-finite loss) is counted
and makes the script exit 1, so a broken build cannot print a table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
FLOOR_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.py")


@dataclass
class Case:
    model: str
    batch: int
    steps: int
    warmup: int


def plan_cases(models: list[str], batches: list[int], gpu: bool, steps: int, warmup: int) -> list[Case]:
    """Step counts: what was asked, else a budget that keeps CPU runs short.

    batchscope rounds timed steps up to a multiple of warm-up steps (its host
    read-back interval); the baseline gets the same rounded count."""
    cases = []
    for m in models:
        for b in batches:
            if gpu:
                w = warmup or 20
                s = steps or 200
            else:
                w = warmup or max(1, min(20, 2048 // b))
                s = steps or max(2, min(60, 8192 // b))
            s = -(-s // w) * w
            cases.append(Case(m, b, s, w))
    return cases


def mpirun_prefix(ranks: int) -> list[str]:
    exe = shutil.which("mpirun")
    if not exe:
        sys.exit("compare.py: mpirun not found (Debian: openmpi-bin)")
    return [exe, "--oversubscribe", "-np", str(ranks)]


def last_json(text: str) -> Optional[dict]:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def run_one(cmd: list[str], env: dict, timeout: float, trains: bool = True) -> tuple[Optional[dict], str]:
    """One benchmark process: its last JSON line, or the error. A training
    benchmark (`trains`) must also end with a finite loss; the floor trains
    nothing."""
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s: {' '.join(cmd)}"
    out = last_json(p.stdout)
    if p.returncode != 0 or out is None:
        tail = (p.stdout + p.stderr).strip().splitlines()[-8:]
        return None, f"exit {p.returncode}: {' '.join(cmd)}\n    " + "\n    ".join(tail)
    if trains and not math.isfinite(float(out.get("final_loss", float("nan")))):
        return None, f"non-finite final loss: {out}"
    return out, ""


def median_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Median, min and max of a[i] / b[i] over the rounds where both ran."""
    r = [x / y for x, y in zip(a, b) if x == x and y == y and y > 0]
    return (statistics.median(r), min(r), max(r)) if r else (float("nan"),) * 3


@dataclass
class Variant:
    """One command timed in every round of a case: its step times by round."""
    name: str
    cmd: list[str]
    env: dict
    ms: list[float]
    trains: bool = True


def ours_cmd(a: argparse.Namespace, c: Case, device: str, threads: int) -> list[str]:
    return mpirun_prefix(a.ranks) + [a.batchscope, "bench", "--model", c.model, "--batch", str(c.batch),
                                     "--steps", str(c.steps), "--warmup", str(c.warmup), "--data", a.data,
                                     "--device", device, "--threads", str(threads)]


def case_variants(a: argparse.Namespace, c: Case, i: int, device: str, threads: int, env: dict) -> list[Variant]:
    ours = ours_cmd(a, c, device, threads)
    base = mpirun_prefix(a.ranks) + [a.python, a.baseline, "--data", a.data, "--model", c.model,
                                     "--batch", str(c.batch), "--steps", str(c.steps), "--warmup",
                                     str(c.warmup), "--device", device, "--threads", str(threads)]
    # A fresh rendezvous port per case: gloo/NCCL sockets of the last process
    # may still be in TIME_WAIT.
    base_env = dict(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29600 + i))
    vs = [Variant("batchscope", ours, env, []), Variant("baseline", base, base_env, [])]
    if a.eager:
        vs.append(Variant("eager", ours + ["--graphs", "off"], env, []))
    if a.floor:
        floor = mpirun_prefix(a.ranks) + [a.python, FLOOR_PY, "--baseline", a.baseline, "--model", c.model,
                                          "--batch", str(c.batch), "--device", device, "--threads", str(threads)]
        vs.append(Variant("floor", floor, env, [], trains=False))
    return vs


def run_case(a: argparse.Namespace, c: Case, vs: list[Variant], failures: list[str], results: list[dict]) -> None:
    for _ in range(a.rounds):
        for v in vs:
            r, err = run_one(v.cmd, v.env, a.timeout, v.trains)
            if err:
                failures.append(f"{c.model} b{c.batch} {v.name}: {err}")
            if r:
                results.append(r)
            v.ms.append(r["step_ms"] if r else float("nan"))


PAIR_FIELDS = ("ratio_median", "ratio_min", "ratio_max", "ratio_ci_lo", "ratio_ci_hi", "ratio_ci_level")


def pair_error(r: dict) -> str:
    """Why a `bench --pair` JSON line is unusable, or "" when it is fine."""
    missing = [k for k in PAIR_FIELDS + ("ms_a", "ms_b") if not isinstance(r.get(k), (int, float))]
    if missing:
        return f"no {', '.join(missing)} in {r}"
    if not all(math.isfinite(r[k]) and r[k] > 0 for k in PAIR_FIELDS):
        return f"non-finite or non-positive ratio: {r}"
    return ""


def pair_cell(r: Optional[dict]) -> str:
    """A table cell: the median ratio and its order-statistic interval."""
    if not r:
        return "-"
    return f"{r['ratio_median']:.3f} [{r['ratio_ci_lo']:.3f}-{r['ratio_ci_hi']:.3f}]"


def run_pairs(a: argparse.Namespace, c: Case, ours: list[str], env: dict, trace_dir: str, failures: list[str],
              results: list[dict]) -> dict[str, Optional[dict]]:
    """One `bench --pair` process per switch: its JSON line, or None (a failure)."""
    out: dict[str, Optional[dict]] = {}
    switches: list[tuple[str, list[str]]] = [("stats", []), ("trace", ["--trace", trace_dir])]
    for pair, extra in switches:
        cmd = ours + ["--pair", pair, "--pair-rounds", str(a.pair_rounds)] + extra
        r, err = run_one(cmd, env, a.timeout)
        err = err or pair_error(r or {})
        if err:
            failures.append(f"{c.model} b{c.batch} pair {pair}: {err}")
        if r:
            results.append(r)
        out[pair] = None if err else r
    return out


Row = tuple[Case, list[Variant], str, str, dict[str, Optional[dict]]]


def variant(vs: list[Variant], name: str) -> Variant:
    return next(v for v in vs if v.name == name)


def print_table(a: argparse.Namespace, rows: list[Row]) -> None:
    med: Callable[[list[float]], float] = lambda xs: statistics.median(xs)  # noqa: E731
    extra = " stats on/off | trace on/off |" if a.instrumentation else ""
    extra += " eager ms/step | eager ratio (median) |" if a.eager else ""
    extra += " floor ms/step | floor / baseline |" if a.floor else ""
    print(f"\n| model | batch/rank | ranks | steps | rounds | batchscope ms/step | baseline ms/step | "
          f"ratio (median) | ratio min-max |{extra} comm | graphs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|---:|" * (a.instrumentation + a.eager + a.floor) +
          "---|---|")
    for c, vs, comm, graphs, pairs in rows:
        ours, base = variant(vs, "batchscope"), variant(vs, "baseline")
        r, lo, hi = median_ratio(ours.ms, base.ms)
        cells = (f"| {c.model} | {c.batch} | {a.ranks} | {c.steps} | {a.rounds} | {med(ours.ms):.2f} | "
                 f"{med(base.ms):.2f} | {r:.2f} | {lo:.2f}-{hi:.2f} |")
        if a.instrumentation:
            cells += f" {pair_cell(pairs.get('stats'))} | {pair_cell(pairs.get('trace'))} |"
        for name in [n for n, on in (("eager", a.eager), ("floor", a.floor)) if on]:
            v = variant(vs, name)
            cells += f" {med(v.ms):.2f} | {median_ratio(v.ms, base.ms)[0]:.2f} |"
        print(cells + f" {comm} | {graphs} |")
    print("\nratio = batchscope step time / baseline step time (below 1: batchscope faster), per round")
    if a.instrumentation:
        print(f"stats = with / without the noise statistics; trace = with / without the run file: one "
              f"process each, {a.pair_rounds} rounds A B B A ...; median [order-statistic interval]")
    if a.floor:
        print("floor = the step's convolutions and matrix products alone (tests/bench/floor.py, same library): "
              "no step is faster; floor / baseline is the lowest ratio its kernels allow")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batchscope", required=True, help="the batchscope binary")
    ap.add_argument("--baseline", required=True, help="torch_ddp_baseline.py (a copy of ../shared/baselines/)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch for the baseline")
    ap.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR", DEFAULT_DATA))
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--batches", default="32,128,1024,8192", help="per-rank batch sizes")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (0: by device and batch)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed steps (0: by device and batch)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per rank for both (0: cores / ranks)")
    ap.add_argument("--rounds", type=int, default=1, help="paired runs per case (median reported)")
    ap.add_argument("--instrumentation", action="store_true",
                    help="also time, in-process (bench --pair), the noise statistics and the run file")
    ap.add_argument("--pair-rounds", type=int, default=10,
                    help="rounds of each --instrumentation pair (the interval narrows as about 1/sqrt(rounds))")
    ap.add_argument("--eager", action="store_true", help="also time batchscope with CUDA graphs off")
    ap.add_argument("--floor", action="store_true",
                    help="also time the step's convolutions and matrix products alone (tests/bench/floor.py)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark process")
    ap.add_argument("--out", help="also write every JSON result here (one per line)")
    a = ap.parse_args(argv)

    gpu = a.device == "cuda"
    if a.device == "auto":
        probe = subprocess.run([a.python, "-c", "import torch; print(int(torch.cuda.is_available()))"],
                               capture_output=True, text=True)
        gpu = probe.stdout.strip() == "1"
    device = "cuda" if gpu else "cpu"
    threads = a.threads or max(1, (os.cpu_count() or 1) // a.ranks)
    cases = plan_cases(a.models.split(","), [int(b) for b in a.batches.split(",")], gpu, a.steps, a.warmup)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONUNBUFFERED="1")
    print(f"# {len(cases)} cases, {a.ranks} rank(s), device {device}, {threads} thread(s) per rank, "
          f"{a.rounds} round(s); data {a.data}", flush=True)

    rows: list[Row] = []
    failures: list[str] = []
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bs-bench-") as trace_dir:
        for i, c in enumerate(cases):
            t = time.time()
            vs = case_variants(a, c, i, device, threads, env)
            run_case(a, c, vs, failures, results)
            pairs = (run_pairs(a, c, ours_cmd(a, c, device, threads), env, trace_dir, failures, results)
                     if a.instrumentation else {})
            ours = [r for r in results if r.get("impl") == "batchscope" and r.get("model") == c.model and
                    r.get("batch_per_rank") == c.batch]
            comm = ours[0]["comm"] if ours else "-"
            graphs = "on" if ours and ours[0].get("graphs") else "off"
            rows.append((c, vs, comm, graphs, pairs))
            print(f"# {c.model} b{c.batch}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    print_table(a, rows)
    if a.out:
        with open(a.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    if failures:
        print(f"\n{len(failures)} benchmark(s) FAILED:", file=sys.stderr)
        for f_ in failures:
            print("  " + f_, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
