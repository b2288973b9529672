#!/usr/bin/env bash
# Bad input reaches the researcher as one clear message and a documented exit
# code, never a hang or a crash: each case runs under a timeout.
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
study="$root/configs/quickstart.yaml"

small=(--set "budget={steps: 3}" --set data.train_size=2048 --set eval.train_subset=100 --set "output=$out/run")
expect 2 "key 'optimizer.name'.*expected one of: sgd, adam" -- "$bin" check "$study" --set optimizer.name=lamb
expect 2 "key 'optimiser'.*valid keys" -- "$bin" check "$study" --set optimiser.lr=1
expect 2 "key 'data.root'.*dataset-fashion-mnist" -- "$bin" check "$study" --set data.root=/nonexistent
expect 2 "cannot read the study file" -- "$bin" check "$out/missing.yaml"
expect 2 "needs at least 8 ranks.*mpirun -np 8" -- "$bin" plan "$study" --ranks 4 --set sweep.ranks=8 --set sweep.split=equal
expect 2 "needs at least 8 ranks.*mpirun -np 8" -- mpirun -np 2 --oversubscribe "$bin" run "$study" --set sweep.ranks=8 --set sweep.split=equal
expect 2 "key 'data.root'" -- mpirun -np 2 --oversubscribe "$bin" run "$study" --set data.root=/nonexistent
expect 2 "exceeds the training set" -- "$bin" check "$study" --set data.train_size=100
# A key given twice is refused (yaml-cpp would read the first), naming both places.
n=$(wc -l <"$study")
{ cat "$study"; printf 'checkpoint:\n  every_steps: 5\n  every_steps: 6\n'; } >"$out/dup.yaml"
expect 2 "dup.yaml: key 'checkpoint.every_steps': given twice, at lines $((n + 2)) and $((n + 3))" -- \
  "$bin" check "$out/dup.yaml"
expect 2 "(--set optimizer={lr: 1, lr: 2}): key 'optimizer.lr': given twice, at line 1, columns 2 and 9" -- \
  mpirun -np 2 --oversubscribe "$bin" run "$study" --set 'optimizer={lr: 1, lr: 2}'
expect 0 "completed" -- mpirun -np 2 --oversubscribe "$bin" run "$study" "${small[@]}"
expect 5 "already exists.*--overwrite" -- mpirun -np 2 --oversubscribe "$bin" run "$study" "${small[@]}"
expect 0 "completed" -- mpirun -np 2 --oversubscribe "$bin" run "$study" "${small[@]}" --overwrite
expect 2 "study is required" -- "$bin" run
# The command line: a typo names the nearest command; --version is `version`;
# `check` counts samples (steps at different batch sizes are not comparable).
expect 2 "unknown command 'chek'; did you mean 'check'?" -- "$bin" chek "$study"
expect 2 "unknown command 'rnu'; did you mean 'run'?" -- "$bin" rnu "$study"
expect 2 "unknown command 'frobnicate' (commands: check, plan, run, version, bench)" -- "$bin" frobnicate
expect 0 "^batchscope [0-9].*LibTorch" -- "$bin" --version
expect 0 "9 runs, 539424 training samples in all" -- "$bin" check "$study"
# check --bench: the training time from bench step times; an unreadable file is exit 2
printf '%s\n' '{"impl": "batchscope", "model": "mlp", "world": 1, "batch_per_rank": 16, "step_ms": 0.5}' \
  '{"impl": "batchscope", "model": "mlp", "world": 1, "batch_per_rank": 1024, "step_ms": 8.0}' >"$out/bench.jsonl"
expect 0 "^estimate: 14s of training summed over 9 runs" -- "$bin" check "$study" --bench "$out/bench.jsonl"
expect 2 "key '--bench': cannot read the file" -- "$bin" check "$study" --bench "$out/missing.jsonl"
# "(CPU only)" exactly when this build's LibTorch has no CUDA (Debian's is CPU-only).
"$bin" version >"$out/version.txt"
check cpu_only_agrees grep -q -E '\(CPU only\).*|LibTorch sees [1-9]' "$out/version.txt"
if grep -q 'CPU only' "$out/version.txt"; then check cpu_only_sees_no_gpu grep -q 'LibTorch sees 0' "$out/version.txt"; fi
summary
