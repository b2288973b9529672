#!/usr/bin/env bash
# Every model, optimizer and data path trains a few steps and writes a valid
# run file: cnn + adam on synthetic data, mlp + nesterov/cosine on the mnist
# loader (pointed at the Fashion-MNIST IDX files, which share the format).
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
cat >"$out/models.yaml" <<YAML
study: models
output: $out/a
data: {name: synthetic, synthetic_train: 1024, synthetic_test: 256}
model: {name: cnn}
optimizer: {name: adam, lr: 0.001, betas: [0.9, 0.99], weight_decay: 0.0001, warmup_steps: 2}
budget: {steps: 6}
eval: {every_steps: 3, train_subset: 128, batch: 100}
log: {every_steps: 4}
runs:
  - {name: cnn-adam-1rank, batch: [32]}
  - {name: cnn-adam-2rank, batch: [8, 24]}
YAML
mpirun -np 3 --oversubscribe "$bin" run "$out/models.yaml" --threads 1
mpirun -np 3 --oversubscribe "$bin" run "$out/models.yaml" --threads 1 --set output="$out/b" \
  --set 'data={name: mnist, root: /usr/share/datasets/fashion-mnist, train_size: 2048, test_size: 500}' \
  --set 'model={name: mlp, hidden: [32]}' \
  --set 'optimizer={name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, schedule: cosine}'
/usr/bin/python3 -m batchscope_analysis check "$out/a" "$out/b"
/usr/bin/python3 - "$out" <<'PY'
import sys, h5py, numpy as np
out = sys.argv[1]
for sub, model, opt, data in [("a", "cnn", "adam", "synthetic"), ("b", "mlp", "sgd", "mnist")]:
    for run in ["cnn-adam-1rank", "cnn-adam-2rank"]:
        with h5py.File(f"{out}/{sub}/runs/{run}.h5", "r", swmr=True) as f:
            assert (f.attrs["model"], f.attrs["optimizer"], f.attrs["dataset"]) == (model, opt, data)
            assert f["status/code"][0] == 1 and f["train/step"].shape == (6,)
            lr = f["train/lr"][:]
            if opt == "adam":
                assert np.allclose(lr[:3], [0.0005, 0.001, 0.001]), lr   # 2 warmup steps
            else:
                assert lr[0] == 0.1 and np.all(np.diff(lr) < 0), lr        # cosine decay
print("models OK")
PY
