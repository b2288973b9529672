#!/usr/bin/env bash
# Every C++ file under src/ and tests/ is as .clang-format writes it.
#   tests/lint/format.sh [REPO_ROOT]
# Fix with: clang-format -i $(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
command -v clang-format >/dev/null || { echo "clang-format not found: apt-get install clang-format" >&2; exit 1; }
mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')
echo "clang-format $(clang-format --version | grep -o '[0-9][0-9.]*' | head -1): ${#files[@]} files"
clang-format --dry-run --Werror "${files[@]}"
echo "format OK"
