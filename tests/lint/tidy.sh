#!/usr/bin/env bash
# clang-tidy (.clang-tidy: bugprone, performance) over the sources that build
# without LibTorch (the bs_core and bs_comm libraries): a LibTorch translation
# unit takes ~30 s to parse, the rest take a second or two.
#   tests/lint/tidy.sh BUILD_DIR   (configured with CMAKE_EXPORT_COMPILE_COMMANDS, the default)
set -euo pipefail
build=${1:?usage: tidy.sh BUILD_DIR}
tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
[ -n "$tidy" ] || { echo "clang-tidy not found: apt-get install clang-tidy" >&2; exit 1; }
mapfile -t files < <(/usr/bin/python3 - "$build/compile_commands.json" <<'PY'
import json, sys
for e in json.load(open(sys.argv[1])):
    if "/bs_core.dir/" in e["command"] or "/bs_comm.dir/" in e["command"]:
        print(e["file"])
PY
)
[ ${#files[@]} -gt 0 ] || { echo "no bs_core/bs_comm sources in $build/compile_commands.json" >&2; exit 1; }
echo "clang-tidy: ${#files[@]} files"
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 "$tidy" -p "$build" --quiet
echo "tidy OK"
