#!/usr/bin/env bash
# `batchscope bench` on the CPU: the JSON line is complete and sane (finite
# loss, positive step time, the communicator and device it reports), and the
# GPU choices fail cleanly on a machine without one (exit 2, message naming
# the key). compare.py's table itself is timed, so it is not asserted here.
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
mpirun -np 2 --oversubscribe "$bin" bench --model mlp --batch 16 --steps 4 --warmup 2 --threads 1 >"$out/mlp.txt"
mpirun -np 1 "$bin" bench --model cnn --batch 8 --steps 2 --warmup 1 --threads 1 >"$out/cnn.txt"
/usr/bin/python3 - "$out" <<'PY'
import json, math, sys
out = sys.argv[1]
for name, world, batch, steps in (("mlp", 2, 16, 4), ("cnn", 1, 8, 2)):
    lines = [l for l in open(f"{out}/{name}.txt") if l.startswith("{")]
    assert len(lines) == 1, f"{name}: expected one JSON line (rank 0 only), got {len(lines)}"
    r = json.loads(lines[0])
    assert r["impl"] == "batchscope" and r["model"] == name, r
    assert r["world"] == world and r["batch_per_rank"] == batch and r["steps"] == steps, r
    assert r["device"] == "cpu" and r["comm"] == "mpi" and r["status"] == "completed", r
    assert r["step_ms"] > 0 and math.isfinite(r["final_loss"]) and 0 < r["final_loss"] < 5, r
    assert abs(r["samples_per_s"] - world * batch * 1e3 / r["step_ms"]) < 1e-3 * r["samples_per_s"] + 1, r
print("bench JSON OK")
PY
# The instrumentation switches: --trace writes the run file as `run` does;
# --no-noise-stats leaves the squared norms at 0 (and only those).
mpirun -np 2 --oversubscribe "$bin" bench --model mlp --batch 16 --steps 4 --warmup 2 --threads 1 \
  --trace "$out/on" >/dev/null
mpirun -np 2 --oversubscribe "$bin" bench --model mlp --batch 16 --steps 4 --warmup 2 --threads 1 \
  --trace "$out/off" --no-noise-stats >/dev/null
/usr/bin/python3 - "$out" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
with h5py.File(f"{out}/on/runs/bench.h5", "r") as on, h5py.File(f"{out}/off/runs/bench.h5", "r") as off:
    for f in (on, off):
        assert np.array_equal(f["train/step"][:], np.arange(1, 7)), f["train/step"][:]
        assert f["status/code"][0] == 1, f["status/code"][0]
    assert np.all(on["gns/sqnorm_global"][:] > 0) and np.all(on["gns/sqnorm_local"][:] > 0)
    assert np.all(off["gns/sqnorm_global"][:] == 0) and np.all(off["gns/sqnorm_local"][:] == 0)
    assert np.array_equal(on["train/loss"][:], off["train/loss"][:]), "the statistics must not change training"
print("bench --trace / --no-noise-stats OK")
PY
# In-process pairs (bench --pair): every rank runs both sides in turn; the
# JSON line carries finite, positive ratios, one per round, and
# tests/bench/compare.py accepts it. No timing is asserted.
mpirun -np 2 --oversubscribe "$bin" bench --model mlp --batch 16 --steps 4 --warmup 2 --threads 1 \
  --pair stats --pair-rounds 2 >"$out/pair_stats.txt"
mpirun -np 1 "$bin" bench --model mlp --batch 16 --steps 2 --warmup 1 --threads 1 \
  --pair trace --pair-rounds 3 --trace "$out/pair" >"$out/pair_trace.txt"
/usr/bin/python3 - "$out" "$root/tests/bench" <<'PY'
import json, math, sys
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import compare
for pair, world, rounds in (("stats", 2, 2), ("trace", 1, 3)):
    lines = [l for l in open(f"{out}/pair_{pair}.txt") if l.startswith("{")]
    assert len(lines) == 1, f"{pair}: expected one JSON line (rank 0 only), got {len(lines)}"
    r = json.loads(lines[0])
    assert r["pair"] == pair and r["pair_rounds"] == rounds and r["world"] == world, r
    assert r["status"] == "completed" and math.isfinite(r["final_loss"]), r
    assert len(r["ratios"]) == rounds and all(math.isfinite(x) and x > 0 for x in r["ratios"]), r
    assert r["ms_a"] > 0 and r["ms_b"] > 0 and abs(r["step_ms"] - r["ms_a"]) < 2e-4, r
    assert r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"], r
    assert r["ratio_min"] <= r["ratio_ci_lo"] <= r["ratio_ci_hi"] <= r["ratio_max"], r
    assert 0 < r["ratio_ci_level"] < 1, r
    assert compare.pair_error(r) == "", compare.pair_error(r)
    assert compare.pair_cell(r).startswith(f"{r['ratio_median']:.3f} ["), compare.pair_cell(r)
assert compare.pair_error({"ratio_median": float("nan")}) != ""
print("bench --pair OK")
PY
test -f "$out/pair/runs/bench.h5" || { echo "bench --pair trace --trace wrote no run file"; exit 1; }
expect_fail() {  # expect_fail CODE NEEDLE ARGS...
  local code=$1 needle=$2; shift 2
  set +e; "$@" >"$out/fail.txt" 2>&1; local rc=$?; set -e
  [ $rc -eq "$code" ] || { cat "$out/fail.txt"; echo "expected exit $code, got $rc: $*"; exit 1; }
  grep -q -- "$needle" "$out/fail.txt" || { cat "$out/fail.txt"; echo "missing '$needle': $*"; exit 1; }
}
expect_fail 2 "key 'device': 'cuda', but world rank 0" mpirun -np 1 "$bin" bench --device cuda --steps 2 --warmup 1
expect_fail 2 "key 'comm': 'nccl' reduces GPU buffers" mpirun -np 1 "$bin" bench --comm nccl --steps 2 --warmup 1
expect_fail 2 "--model: " "$bin" bench --model resnet
expect_fail 2 "--pair: " "$bin" bench --pair gpu
echo "bench e2e OK"
