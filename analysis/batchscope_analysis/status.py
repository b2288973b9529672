"""Run status codes stored in /status/code."""

from __future__ import annotations

# Index = code; the order is fixed by the schema (docs/run-file.md).
STATUS_NAMES: tuple[str, ...] = ("running", "completed", "diverged", "failed", "preempted")


def status_name(code: int) -> str:
    """Name of a status code; unknown codes stay visible instead of raising."""
    if 0 <= code < len(STATUS_NAMES):
        return STATUS_NAMES[code]
    return f"unknown({code})"
