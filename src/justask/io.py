"""Write files so a crash never leaves a half-written output: temp file, fsync, rename; and
folders of ``.npy`` arrays (no pickle) that stages hand to each other."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def files_digest(path: str | Path) -> str:
    """SHA-256 of a file, or of every file under a folder (each one's relative name and SHA-256, in
    name order): what a dataset or a checkpoint's training data is identified by.
    ``FileNotFoundError`` when ``path`` does not exist."""
    path = Path(path)

    def sha256(f: Path) -> bytes:
        with f.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").digest()

    if path.is_file():
        return sha256(path).hex()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing")
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256(f))
    return h.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path`` (same directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path, rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:  # everything after mkstemp inside the try, so a signal at any point removes the temporary
        os.close(fd)
        tmp_path.chmod(0o644)  # mkstemp creates 0600; outputs are ordinary shared files
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as pretty, key-sorted JSON (stable bytes for DVC hashes)."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


@contextmanager
def atomic_dir(path: str | Path, create: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``path`` (the old folder
    survives until the new one is complete), on error it is removed and ``path`` is untouched.
    ``create=False`` yields the folder's path for the caller to create (a writer that insists on
    making its folder itself, like Minari's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover_dir(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:  # made inside the try, so a signal right after mkdir still removes it
        if create:
            tmp.mkdir()
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _remove_stale(path: Path, pattern: str) -> None:
    """Delete siblings of ``path`` named by ``pattern``: temporaries a killed writer (SIGKILL, power
    loss) left behind, which would otherwise change the hash of the output folder holding them.
    One writer per output at a time (DVC's lock), so none of them is in use."""
    for p in path.parent.iterdir():
        if not re.fullmatch(pattern, p.name):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def _recover_dir(path: Path) -> None:
    """Undo what a killed :func:`atomic_dir` left: put the previous folder back if the kill came
    between its two renames, then drop unfinished and superseded siblings."""
    name = re.escape(path.name)
    old = [p for p in path.parent.iterdir() if re.fullmatch(rf"\.{name}\.old-[0-9a-f]{{8}}", p.name)]
    if not path.exists() and len(old) == 1:
        os.replace(old[0], path)
    _remove_stale(path, rf"\.{name}\.(tmp|old)-[0-9a-f]{{8}}")


def save_arrays(path: str | Path, arrays: dict[str, Any], meta: dict) -> Path:
    """Write a folder of ``<name>.npy`` arrays (no pickle) and ``meta.json``, atomically."""
    import numpy as np

    with atomic_dir(path) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return Path(path)


def load_arrays(path: str | Path, names: tuple[str, ...], rerun: str) -> tuple[dict[str, Any], dict]:
    """Read what :func:`save_arrays` wrote; a missing piece raises FileNotFoundError naming it
    and the ``rerun`` command that rebuilds the folder."""
    import numpy as np

    path = Path(path)
    missing = [n for n in names if not (path / f"{n}.npy").exists()]
    if missing or not (path / "meta.json").exists():
        raise FileNotFoundError(f"{path}: relabeled data incomplete (missing {missing or ['meta.json']}); "
                                f"run `{rerun}`")
    arrays = {n: np.load(path / f"{n}.npy", allow_pickle=False) for n in names}
    return arrays, json.loads((path / "meta.json").read_text())


def rows_csv(rows: list[dict]) -> str:
    """Dict rows as CSV text (header from the first row; empty string for no rows)."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
