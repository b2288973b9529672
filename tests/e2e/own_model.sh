#!/usr/bin/env bash
# Your own model and data: TorchScript modules and HDF5 data sets made here
# by tests/e2e/own_model.py (Debian's python3-torch), then
#  - a TorchScript model follows a plain PyTorch loop of the same module on
#    the same (full) batches, on 1 rank and split [16, 48] over 2 ranks;
#  - split invisibility: [16, 48] over 2 ranks matches [64] on one rank;
#  - Fashion-MNIST as HDF5 trains bit for bit like its IDX files;
#  - a regression (mse) study trains and its report has no accuracy columns;
#  - --resume with a changed model or data file is refused (exit 6);
#  - bad models and data are refused by `check` and `run` with the file, the
#    key and the documented exit code.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
m="$out/models"
/usr/bin/python3 "$here/own_model.py" make "$m" || exit 1

cat >"$out/own.yaml" <<YAML
study: own
output: $out/unused
seed: 3
data: {name: hdf5, path: $m/classes.h5, train_size: 64, test_size: 64}
model: {name: torchscript, path: $m/mlp.pt}
optimizer: {name: sgd, lr: 0.05, ref_batch: 64, scaling: none, momentum: 0.9}
budget: {steps: 15}
eval: {every_steps: 5, train_subset: 32}
log: {every_steps: 5}
runs:
  - {name: full, batch: [64]}
YAML
expect 0 "OK: study 'own'" -- "$bin" check "$out/own.yaml"
expect 0 "completed" -- mpirun -np 1 "$bin" run "$out/own.yaml" --set output="$out/np1" --threads 1
expect 0 "completed" -- mpirun -np 2 --oversubscribe "$bin" run "$out/own.yaml" --set output="$out/np2" --threads 1 \
  --set 'runs=[{name: full, batch: [16, 48]}]'
check "1 rank follows plain PyTorch" /usr/bin/python3 "$here/own_model.py" reference "$m" "$out/np1/runs/full.h5"
check "[16, 48] follows plain PyTorch" /usr/bin/python3 "$here/own_model.py" reference "$m" "$out/np2/runs/full.h5"
# Summation order only (the tolerance of tests/mpi/test_equivalence.cpp).
check "[16, 48] matches [64]" /usr/bin/python3 "$here/own_model.py" same "$out/np1/runs/full.h5" \
  "$out/np2/runs/full.h5" --rtol 1e-5
check "run file records the model" /usr/bin/python3 -c "
import h5py, sys
a = h5py.File('$out/np1/runs/full.h5', 'r').attrs
sys.exit(0 if (a['model'], a['model_init'], a['model_loss'], a['model_buffers']) ==
         ('torchscript', 'file', 'cross_entropy', '') else 1)"

# The built-in mlp on Fashion-MNIST from its IDX files and from an HDF5
# export of them (standardized with the IDX path's constants): bit for bit.
/usr/bin/python3 "$root/configs/own_model/idx_to_hdf5.py" /usr/share/datasets/fashion-mnist "$out/fm.h5" >/dev/null
cat >"$out/fm.yaml" <<YAML
study: fm
output: $out/unused
seed: 4
data: {name: fashion-mnist, train_size: 4096, test_size: 1000}
model: {name: mlp, hidden: [64]}
optimizer: {name: sgd, lr: 0.05, ref_batch: 64, scaling: none, momentum: 0.9}
budget: {steps: 30}
eval: {every_steps: 15, train_subset: 500}
log: {every_steps: 10}
runs:
  - {name: fm, batch: [32, 32]}
YAML
expect 0 "completed" -- mpirun -np 2 --oversubscribe "$bin" run "$out/fm.yaml" --set output="$out/fm-idx" --threads 1
expect 0 "completed" -- mpirun -np 2 --oversubscribe "$bin" run "$out/fm.yaml" --set output="$out/fm-h5" --threads 1 \
  --set "data={name: hdf5, path: $out/fm.h5, mean: 0.2860, stdev: 0.3530, train_size: 4096, test_size: 1000}"
check "HDF5 export trains bit for bit like the IDX files" /usr/bin/python3 "$here/own_model.py" same \
  "$out/fm-idx/runs/fm.h5" "$out/fm-h5/runs/fm.h5"

# BatchNorm and dropout: the warning, and the model trains.
expect 0 "warning: the model keeps 3 buffers" -- mpirun -np 2 --oversubscribe "$bin" run "$out/own.yaml" \
  --set output="$out/bn" --threads 1 --set model.path="$m/bn.pt" --set 'runs=[{name: bn, batch: [16, 48]}]'

# Regression: mse on float targets [N, 3]; no accuracy anywhere in the report.
cat >"$out/reg.yaml" <<YAML
study: regress
output: $out/reg
seed: 5
data: {name: hdf5, path: $m/regress.h5}
model: {name: torchscript, path: $m/regress.pt, loss: mse, init: seeded}
optimizer: {name: sgd, lr: 0.05, ref_batch: 32, scaling: linear, momentum: 0.9}
budget: {epochs: 4}
eval: {every_epochs: 1, train_subset: 128}
log: {every_steps: 4}
sweep: {global_batch: [16, 64], ranks: 1}
YAML
expect 0 "completed" -- mpirun -np 2 --oversubscribe "$bin" run "$out/reg.yaml" --threads 1
check "mse runs learn and have no accuracy" /usr/bin/python3 -c "
import glob, h5py, math, sys
for p in glob.glob('$out/reg/runs/*.h5'):
    f = h5py.File(p, 'r')
    loss, acc = f['eval/val_loss'][:], f['eval/val_acc'][:]
    print(p, 'val_loss', loss[0], '->', loss[-1])
    if not (loss[-1] < 0.7 * loss[0]) or not all(math.isnan(a) for a in acc) or f.attrs['model_loss'] != 'mse':
        sys.exit(1)"
check "mse report" /usr/bin/python3 -m batchscope_analysis report "$out/reg"
check "mse report has no accuracy column" /usr/bin/python3 -c "
import sys
t = open('$out/reg/report.html').read().lower()
sys.exit(1 if ('val_acc' in t or 'accuracy' in t) else 0)"

# A checkpoint remembers the model and data files: --resume with either
# changed is refused (exit 6), naming it. The run is preempted (SIGUSR1:
# checkpoint, exit 75) once its first checkpoint is complete (a marker, not
# a clock); it has a million steps to go.
cp "$m/mlp.pt" "$out/ck.pt"; cp "$m/classes.h5" "$out/ck.h5"
ck=(--set output="$out/ck" --set model.path="$out/ck.pt" --set data.path="$out/ck.h5" --set 'budget={steps: 1000000}'
    --set 'checkpoint={every_steps: 5}' --threads 1)
mpirun -np 1 "$bin" run "$out/own.yaml" "${ck[@]}" >"$out/ck.log" 2>&1 &
job=$!
for _ in $(seq 600); do [ -e "$out/ck/checkpoints/full.ckpt.done" ] && break; sleep 0.2; done
kill -USR1 $job 2>/dev/null; wait $job; rc=$?
check "preempted with a checkpoint (exit $rc)" test $rc -eq 75 -a -e "$out/ck/checkpoints/full.ckpt.done"
cp "$out/ck.h5" "$out/ck.h5.orig"
/usr/bin/python3 -c "
import h5py
with h5py.File('$out/ck.h5', 'r+') as f:
    f['train/x'][0, 0] += 1"
expect 6 "data.file.*ck.h5" -- mpirun -np 1 "$bin" run "$out/own.yaml" "${ck[@]}" --resume
mv "$out/ck.h5.orig" "$out/ck.h5"
/usr/bin/python3 -c "
import torch
m = torch.jit.load('$out/ck.pt')
with torch.no_grad():
    next(m.parameters()).add_(0.5)
m.save('$out/ck.pt')"
expect 6 "model.file.*ck.pt" -- mpirun -np 1 "$bin" run "$out/own.yaml" "${ck[@]}" --resume

# Bad input: each names the file and the key, with the documented exit code.
cs=(--set output="$out/bad")
expect 3 "not_a_model.pt.*model.path" -- "$bin" check "$out/own.yaml" "${cs[@]}" --set model.path="$m/not_a_model.pt"
expect 3 "classes.h5.*model.path" -- "$bin" check "$out/own.yaml" "${cs[@]}" --set model.path="$m/classes.h5"
expect 2 "model.path.*does not exist" -- "$bin" check "$out/own.yaml" --set model.path="$m/missing.pt"
expect 3 "throws.pt (model.path.*\[2, 64\]" -- "$bin" check "$out/own.yaml" --set model.path="$m/throws.pt"
expect 3 "wants 7 features" -- "$bin" check "$out/own.yaml" --set model.path="$m/throws.pt"
expect 3 "narrow.pt.*\[2, 3\].*C >= 5" -- "$bin" check "$out/own.yaml" --set model.path="$m/narrow.pt"
expect 3 "flat.pt.*\[2\].*logits \[B, C\]" -- "$bin" check "$out/own.yaml" --set model.path="$m/flat.pt"
expect 2 "model.loss" -- "$bin" check "$out/own.yaml" --set model.loss=mse
expect 2 "model.loss" -- "$bin" check "$out/reg.yaml" --set model.loss=cross_entropy
expect 3 "regress.pt.*\[2, 3\].*\[2, 5\]\|regress.pt.*C >= 5" -- "$bin" check "$out/own.yaml" --set model.path="$m/regress.pt" --set model.init=file
expect 3 "data.train_x.*/train/x" -- "$bin" check "$out/own.yaml" --set data.train_x=/nope
expect 3 "not_a_model.pt.*model.path" -- mpirun -np 2 --oversubscribe "$bin" run "$out/own.yaml" "${cs[@]}" \
  --set model.path="$m/not_a_model.pt"
check "nothing written for refused runs" test ! -e "$out/bad/runs"
summary
