#!/usr/bin/env bash
# End to end: the quickstart study, shrunk with --set, under mpirun -np 4, plus
# one single-rank run so groups of two sizes share the job; then the Python
# tests open every run file it wrote, and the analysis CLI plots them.
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
timeout 600 mpirun -np 4 --oversubscribe "$bin" run "$root/configs/quickstart.yaml" \
  --set output="$out" --set budget.epochs=0.25 --set data.train_size=20000 \
  --set eval.every_epochs=0.1 --set eval.train_subset=2000 --set log.every_steps=7 \
  --set 'runs=[{name: solo-b64, batch: [64], lr: 0.05, seed: 2}]' --set 'sweep.lr=[0.05]' --threads 1
BATCHSCOPE_E2E_DIR="$out" /usr/bin/python3 -m pytest -q -p no:cacheprovider "$here/test_run_files.py"
/usr/bin/python3 -m batchscope_analysis plot "$out"
test -s "$out/figures/loss_vs_samples.png"
test -s "$out/figures/final_vs_batch.png"
/usr/bin/python3 -m batchscope_analysis report "$out"
grep -q "Gradient noise scale" "$out/report.html"
test "$(grep -o 'data:image/png;base64' "$out/report.html" | wc -l)" -ge 5
