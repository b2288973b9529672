#!/usr/bin/env bash
# The gradient-noise study (configs/fashion_gns.yaml), shrunk: one-rank runs
# with 4 micro-batches measure B_simple, every run stops at its validation
# target, and the report answers with a noise scale and a B_crit fit.
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
timeout 600 mpirun -np 2 --oversubscribe "$bin" run "$root/configs/fashion_gns.yaml" --threads 1 \
  --set output="$out" --set data.train_size=8192 --set data.test_size=2000 --set eval.train_subset=1000 \
  --set budget.epochs=3 --set eval.every_epochs=0.1 --set target.value=0.3 \
  --set 'sweep={global_batch: [32, 64, 128, 256], seed: [1], ranks: 1}' --set gns.per_layer=true
/usr/bin/python3 -m batchscope_analysis check "$out"
/usr/bin/python3 -m batchscope_analysis report "$out"
/usr/bin/python3 - "$out" <<'PY'
import sys, glob, re, html
import h5py, numpy as np
out = sys.argv[1]
files = sorted(glob.glob(f"{out}/runs/*.h5"))
assert len(files) == 4, files
for path in files:
    with h5py.File(path, "r", swmr=True) as f:
        assert f.attrs["microbatches"] == 4 and f["gns/sqnorm_micro"].shape[1] == 4
        assert f["gns/sqnorm_layer_micro"].shape[1] == 4 * len(f["layout/layers"])
        t = int(f["target/step"][0])
        assert t > 0 and f["train/step"][-1] == t, (path, t)   # stopped at the target
        b = f["gns/b_simple"][:]
        assert np.all(np.isfinite(b)) and np.median(b[len(b) // 2:]) > 1, path
text = html.unescape(re.sub(r"<[^>]+>", " ", open(f"{out}/report.html").read()))
assert "Gradient noise scale" in text and "Critical batch size" in text
m = re.search(r"B_simple is ([0-9,.]+) samples overall", text)
assert m, "the report states the measured noise scale"
crit = re.search(r"B_crit ≈ [0-9,.]+ samples|could not[^.]*", text)
assert crit, "the report states B_crit or why it could not be fitted"
print("report: B_simple", m.group(1), "samples;", crit.group(0))
PY
