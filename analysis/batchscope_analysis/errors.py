"""Errors about input paths, reported by the CLI as one line and exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Union


class RunFileError(Exception):
    """A path that cannot be used as run input (missing, unreadable, malformed).

    Carries the path so every message can name the file the user must look at.
    """

    def __init__(self, path: Union[str, Path], reason: str) -> None:
        self.path: Path = Path(path)
        self.reason: str = reason
        super().__init__(f"{self.path}: {reason}")
