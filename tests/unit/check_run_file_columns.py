"""The run file has one source of truth, the C++ column table
(src/trace/run_file_columns.cpp). This check holds its two readers to it:
analysis/batchscope_analysis/schema.py (DATASETS, OPTIONAL_DATASETS) and
docs/run-file.md (the per-group tables). Every column must be in both, with
the same type and shape, and neither may list a dataset the C++ does not
write.

Usage: check_run_file_columns.py DUMP_BINARY SOURCE_DIR
DUMP_BINARY is tests/unit/dump_run_file_columns (prints the table as JSON).
Only the standard library: schema.py is read with `ast`, not imported, so the
check needs neither h5py nor pandas.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

# schema.py's value kinds, by C++ dtype.
KIND = {"int32": "int", "int64": "int", "float32": "float", "float64": "float", "str": "str"}
# The docs write the micro-batch count K as n*m.
DOC_SYMBOL = {"K": "n*m", "K*L": "n*m*L"}


def cpp_columns(dump: str) -> list[dict]:
    out = subprocess.run([dump], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["columns"]


def schema_tables(path: Path) -> dict[str, dict]:
    """DATASETS and OPTIONAL_DATASETS as literals, keyed by table name."""
    tables = {}
    for node in ast.parse(path.read_text()).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in ("DATASETS", "OPTIONAL_DATASETS"):
            tables[target.id] = ast.literal_eval(node.value)
    return tables


def doc_rows(path: Path) -> dict[str, tuple[str, str]]:
    """'/group/name' -> (shape and type cell, meaning) from the sections whose
    heading names a group, e.g. "## `/train`, one row per ...".
    """
    rows, group = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            m = re.match(r"#+ `/(\w+)`", line)
            group = m.group(1) if m else None
            continue
        if group is None or not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) < 3 or cells[0] == "dataset":
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[f"/{group}/{name}"] = (cells[1], cells[2])
    return rows


def schema_shape(col: dict) -> tuple:
    return tuple(int(s) if s.isdigit() else s for s in col["shape"])


def doc_shape_type(col: dict) -> str:
    if not col["shape"]:
        return f"scalar {col['dtype']}"
    return "[" + ", ".join(DOC_SYMBOL.get(s, s) for s in col["shape"]) + "] " + col["dtype"]


def check_schema(cols: list[dict], tables: dict[str, dict]) -> list[str]:
    problems = []
    for name in ("DATASETS", "OPTIONAL_DATASETS"):
        if name not in tables:
            problems.append(f"schema.py: no {name} literal found")
    ours = {}
    for col in cols:
        path = f"/{col['group']}/{col['name']}"
        table = "OPTIONAL_DATASETS" if col["per_layer"] else "DATASETS"
        ours[path] = table
        entry = tables.get(table, {}).get(col["group"], {}).get(col["name"])
        if entry is None:
            problems.append(f"column {path}: missing from schema.py {table}")
            continue
        want = (schema_shape(col), KIND[col["dtype"]])
        if tuple(entry) != want:
            problems.append(f"column {path}: schema.py {table} says {entry}, the C++ writes {want}")
    for table, groups in tables.items():
        for group, members in groups.items():
            for name in members:
                path = f"/{group}/{name}"
                if ours.get(path) != table:
                    where = f"the C++ has it in {ours[path]}" if path in ours else "the C++ writes no such column"
                    problems.append(f"column {path}: schema.py {table} lists it, {where}")
    return problems


def check_docs(cols: list[dict], docs: dict[str, tuple[str, str]]) -> list[str]:
    problems = []
    ours = set()
    for col in cols:
        path = f"/{col['group']}/{col['name']}"
        ours.add(path)
        if path not in docs:
            problems.append(f"column {path}: missing from docs/run-file.md")
            continue
        shape_type, meaning = docs[path]
        if shape_type != doc_shape_type(col):
            problems.append(f"column {path}: docs/run-file.md says '{shape_type}', the C++ writes "
                            f"'{doc_shape_type(col)}'")
        if col["per_layer"] != ("only with `gns.per_layer`" in meaning):
            problems.append(f"column {path}: docs/run-file.md and the C++ disagree on whether it is per-layer only")
    for path in sorted(set(docs) - ours):
        problems.append(f"column {path}: docs/run-file.md lists it, the C++ writes no such column")
    return problems


def main() -> int:
    dump, root = sys.argv[1], Path(sys.argv[2])
    cols = cpp_columns(dump)
    problems = check_schema(cols, schema_tables(root / "analysis/batchscope_analysis/schema.py"))
    problems += check_docs(cols, doc_rows(root / "docs/run-file.md"))
    for p in problems:
        print(f"MISMATCH {p}", file=sys.stderr)
    print(f"{len(cols)} run-file columns checked against schema.py and docs/run-file.md: "
          f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
