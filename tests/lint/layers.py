#!/usr/bin/env python3
"""Every #include in src/ points down the layers of docs/architecture.md:
util → config → {data, models, noise, gpu, placement} → comm → train → trace → app.
A folder may include its own layer or any layer below it, never one above.

    tests/lint/layers.py [REPO_ROOT]

Prints each include that points up (file:line, the two folders) and exits 1.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

LAYERS = {
    "util": 1,
    "hdf5": 1,
    "config": 2,
    "data": 3,
    "models": 3,
    "noise": 3,
    "gpu": 3,
    "placement": 3,
    "comm": 4,
    "train": 5,
    "trace": 6,
    "app": 7,
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"')


def violations(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "src").rglob("*")):
        if path.suffix not in {".h", ".cpp", ".in"}:
            continue
        folder = path.relative_to(root / "src").parts[0]
        if folder not in LAYERS:
            found.append(f"{path.relative_to(root)}: folder '{folder}' has no layer in tests/lint/layers.py")
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = m.group(1)
            if target not in LAYERS:
                found.append(f"{path.relative_to(root)}:{n}: includes unknown folder '{target}'")
            elif LAYERS[target] > LAYERS[folder]:
                found.append(
                    f"{path.relative_to(root)}:{n}: {folder} (layer {LAYERS[folder]}) includes "
                    f"{target} (layer {LAYERS[target]}): {line.strip()}"
                )
    return found


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    bad = violations(root)
    for b in bad:
        print(b)
    print(f"layers: {len(bad)} include(s) pointing up" if bad else "layers OK")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
