#!/usr/bin/env bash
# Exit codes as the README's table gives them, on paths no other script takes:
# a checkpoint that cannot be written or renamed is an output problem (5), not
# a refused checkpoint (6); a checkpoint whose parameters do not fit the model
# is refused (6). Each case runs under a timeout (lib.sh's expect).
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
cat >"$out/s.yaml" <<'EOF'
study: codes
data: {name: synthetic, synthetic_train: 2048, synthetic_test: 128}
model: {name: mlp, hidden: [8]}
budget: {steps: 200}
eval: {train_subset: 64, every_steps: 50}
log: {every_steps: 10, flush_seconds: 0.1}
runs: [{name: r, batch: [16]}]
EOF
run=(mpirun -np 1 "$bin" run "$out/s.yaml" --threads 1)

# A file where the checkpoints folder should be: the checkpoint cannot be made.
mkdir -p "$out/file/runs" && touch "$out/file/checkpoints"
expect 5 "$out/file/checkpoints.*'output'" -- "${run[@]}" --set output="$out/file" --set checkpoint.every_steps=1
# A folder where the checkpoint should be: its temporary file cannot be renamed.
mkdir -p "$out/dir/runs" "$out/dir/checkpoints/r.ckpt/in_the_way"
expect 5 "cannot rename checkpoint $out/dir/checkpoints/r.ckpt.tmp to $out/dir/checkpoints/r.ckpt: Is a directory" \
  -- "${run[@]}" --set output="$out/dir" --set checkpoint.every_steps=1

# An output folder that exists but takes no file: refused before training on
# every rank. As root (CI), a read-only bind mount in a private mount
# namespace; as anyone else, a folder without write permission.
mkdir -p "$out/ro/runs" "$out/ro/checkpoints"
if [ "$(id -u)" -eq 0 ]; then
  ro=(unshare -m --propagation private sh -c 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
      "$out/ro")
else
  chmod a-w "$out/ro" "$out/ro/runs" "$out/ro/checkpoints"
  ro=()
fi
expect 5 "cannot write $out/ro/runs/.batchscope-write-test.*'output'" \
  -- "${ro[@]}" mpirun -np 2 --oversubscribe "$bin" run "$out/s.yaml" --threads 1 --set output="$out/ro" \
  --set 'runs=[{name: r, batch: [8, 8]}]'
[ "$(id -u)" -eq 0 ] || chmod u+w "$out/ro" "$out/ro/runs" "$out/ro/checkpoints"

# A stopped run: it holds at step 60 until SIGUSR1, and checkpoints.
stop_at_hold 60 r "$out/stop.log" "${run[@]}" --set output="$out/stopped"
check "the stopped run exits 75" test $? -eq 75

# Its checkpoint made to claim a wider model (hidden [16]) while it holds the
# parameters of hidden [8]: the fingerprint agrees, the parameters do not.
check "the checkpoint's fingerprint is rewritten" /usr/bin/python3 - "$out/stopped/checkpoints/r.ckpt" <<'PY'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
payload = data[20:]  # after the magic (8), the payload size (8) and its CRC-32 (4)
def text(pos):
    (n,) = struct.unpack_from("<Q", payload, pos)
    return payload[pos + 8 : pos + 8 + n].decode(), pos + 8 + n
(count,) = struct.unpack_from("<Q", payload, 0)
pos, out = 8, bytearray(payload[:8])
for _ in range(count):
    key, pos = text(pos)
    value, pos = text(pos)
    if key == "model":
        assert value == "mlp hidden [8]", value
        value = "mlp hidden [16]"
    for s in (key, value):
        out += struct.pack("<Q", len(s)) + s.encode()
out += payload[pos:]
open(path, "wb").write(data[:8] + struct.pack("<QI", len(out), zlib.crc32(out)) + bytes(out))
PY
expect 6 "checkpoint holds [0-9]* parameters, the model has [0-9]*" \
  -- "${run[@]}" --set output="$out/stopped" --set 'model.hidden=[16]' --resume
summary
