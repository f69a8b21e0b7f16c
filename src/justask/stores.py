"""Append-only stores checked before a stage writes to them: Optuna's journal files.

A journal is one JSON record per line, each written with its newline. A process killed mid-write
(or a full disk) leaves a *torn* record: a last line without its newline, or not JSON. Optuna
then appends its next record to that line, and every later read fails with a ``JSONDecodeError``
that names no file. :func:`repair_journals` runs under the stage lock (no other writer on the
checkout), before the train stage opens any study. It cuts torn bytes: a torn last line, or a torn
prefix with a complete record appended after it (the record is kept). The cut bytes are appended to
``<name>.journal.torn`` and the repair is named. Every complete record, so every finished trial,
is kept. A line that is neither is damage, not a torn write: the stage stops with the file, the
line and the fix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from justask.errors import StageFailed
from justask.io import atomic_write

RECORD_START = b'{"op_code"'  # how Optuna writes every journal record


@dataclass(frozen=True)
class Repair:
    path: Path
    records: int  # complete records kept
    cut: int  # torn bytes cut out
    kept_at: Path  # where the cut bytes were saved

    def describe(self) -> str:
        return (f"{self.path}: held a torn record (a write cut short); cut its {self.cut} bytes and kept the "
                f"{self.records} complete records (every finished trial); the cut bytes are in {self.kept_at}")


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return False


def _split(path: Path, data: bytes) -> tuple[list[bytes], list[bytes]]:
    """(complete records, torn fragments) of a journal's bytes; :class:`StageFailed` on damage."""
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the file ends with a newline
    kept, cut = [], []
    for number, line in enumerate(lines, start=1):
        if _is_record(line):
            kept.append(line)
            continue
        start = line.rfind(RECORD_START)
        if start > 0 and _is_record(line[start:]):  # a torn write, then a whole record appended to it
            kept.append(line[start:])
            cut.append(line[:start])
        elif number == len(lines):  # the last line: a write cut short
            cut.append(line)
        else:
            raise StageFailed(
                f"{path}: line {number} of {len(lines)} is not an Optuna journal record ({line[:60]!r}), and "
                "records follow it: damage, not a write cut short. Delete the file (its study's trials run "
                "again) or restore it from a copy.")
    return kept, cut


def repair_journal(path: Path) -> Repair | None:
    """Cut torn bytes out of the journal at ``path`` (see the module's docstring); None if it is whole."""
    data = path.read_bytes()
    kept, cut = _split(path, data)
    repaired = b"".join(r + b"\n" for r in kept)
    if repaired == data:
        return None
    kept_at = path.with_name(path.name + ".torn")
    if cut:
        with open(kept_at, "ab") as f:
            f.write(b"".join(c + b"\n" for c in cut))
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, lambda p: p.write_bytes(repaired))
    return Repair(path, len(kept), sum(len(c) for c in cut), kept_at)


def repair_journals(folder: Path, prefix: str = "") -> list[Repair]:
    """Check every ``<prefix>*.journal`` under ``folder`` and cut any torn bytes; returns the repairs made."""
    if not folder.is_dir():
        return []
    return [r for p in sorted(folder.rglob(f"{prefix}*.journal")) if (r := repair_journal(p)) is not None]
