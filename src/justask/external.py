"""Datasets a user brings: a Minari dataset named in params (``{minari: <path or id>}``) in place of a
family's own behaviours, checked against the family's env and copied into its collect folder.

The user's folder is only read. Every check runs before the collect stage writes anything, so a
refused dataset leaves all earlier outputs as they were; the copy is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from justask.errors import DatasetError
from justask.io import atomic_dir, files_digest
from justask.validation import check_env, shown_path

_WRITER = "minari's DataCollector (or minari.create_dataset_from_buffers)"


@dataclass(frozen=True)
class Imported:
    """A checked Minari dataset: its folder (the one holding metadata.json), the sha256 of its files,
    its metadata and each episode's return and length."""

    path: Path
    sha256: str
    metadata: dict[str, Any]
    returns: np.ndarray
    lengths: np.ndarray

    @property
    def ref_scores(self) -> tuple[float, float] | None:
        """(ref_min_score, ref_max_score) from the dataset's metadata, if it records both."""
        refs = (self.metadata.get("ref_min_score"), self.metadata.get("ref_max_score"))
        if all(isinstance(r, int | float) and np.isfinite(r) for r in refs):
            return float(refs[0]), float(refs[1])
        return None


def minari_root() -> Path:
    """Minari's local data root, where ``minari.load_dataset`` looks (not created here, unlike Minari)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def locate(source: str, field: str, root: Path = Path(".")) -> Path:
    """The folder holding the metadata.json of the dataset ``source`` names: a path (relative to
    ``root``) to that folder or to the dataset folder above its ``data/``; else a dataset id in
    :func:`minari_root`."""
    path = root / Path(source).expanduser()
    if not path.exists():
        data_root = minari_root()
        path = data_root / source / "data"
        if not path.is_dir():
            local = sorted(p.parent.parent.relative_to(data_root).as_posix()
                           for p in data_root.glob("**/data/metadata.json"))
            raise DatasetError(
                f"{field}: found no file or folder {source!r} (relative to {root.absolute()}) and no dataset with that "
                f"id in the Minari data root {data_root} (MINARI_DATASETS_PATH), which holds: "
                f"{', '.join(local) or 'no datasets'}. Give the dataset folder's path, or one of those ids.")
    for folder in (path, path / "data"):
        if (folder / "metadata.json").is_file():
            return folder
    found = sorted(p.name for p in path.iterdir()) if path.is_dir() else f"a file, {path.name}"
    raise DatasetError(
        f"{path} ({field}): not a Minari dataset: no metadata.json in it or in its data/ (found: "
        f"{found or 'nothing'}). Point {field} at the folder minari wrote (holding metadata.json and the episodes).")


def check_minari(source: str, field: str, env_id: str, spaces: tuple, settings: str = "",
                 root: Path = Path(".")) -> Imported:
    """The Minari dataset ``source`` (params ``field``) after checking that it records the env spec of
    ``env_id``, the family's (observation, action) ``spaces`` (what its env ``settings`` give) and,
    for every episode, terminations and truncations ending it; :class:`DatasetError` naming the
    file, what was found and the fix otherwise."""
    from minari.dataset.minari_storage import MinariStorage

    path = locate(source, field, root)
    where = f"{path / 'metadata.json'} ({field})"
    try:
        metadata = json.loads((path / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{where}: not readable JSON ({e}); re-create the dataset with {_WRITER}.") from e
    if not metadata.get("env_spec"):
        raise DatasetError(f"{where}: no env_spec (found keys {sorted(metadata)}); the dataset was written without "
                           f"the spec of the env it was recorded in, so it cannot be checked against {env_id}. "
                           f"Re-create it with {_WRITER} around an env made with gymnasium.make({env_id!r}, ...).")
    fix = (f"point {field} at a dataset recorded in {env_id}" + (f" ({settings})" if settings else "")
           + ", or set the family's env to the one the dataset was recorded in")
    check_env(metadata, env_id, *spaces, where, fix, settings)

    shown = f"{shown_path(path)} ({field})"
    try:
        storage = MinariStorage.read(path)
        total = storage.total_episodes
    except (KeyError, OSError, ValueError, AssertionError) as e:  # Minari's errors on a folder it did not write
        raise DatasetError(f"{shown}: not readable as a Minari dataset ({type(e).__name__}: {e}); re-create it "
                           f"with {_WRITER}.") from e
    returns, lengths = [], []
    try:
        for i, ep in enumerate(storage.get_episodes(range(total))):
            n, ends = len(ep["rewards"]), [len(ep["terminations"]), len(ep["truncations"])]
            if ends != [n, n] or not n or not (ep["terminations"][-1] or ep["truncations"][-1]):
                found = (f"{ends[0]} terminations and {ends[1]} truncations for {n} steps" if ends != [n, n] else
                         f"terminations {ep['terminations'][-3:]} and truncations {ep['truncations'][-3:]} on its "
                         "last steps")
                raise DatasetError(
                    f"{shown}: episode {i} does not end with a termination or truncation on its last step (found "
                    f"{found}); where an episode ends must be known. Re-create it with {_WRITER}, which flags each "
                    "episode's end.")
            returns.append(float(np.sum(ep["rewards"])))
            lengths.append(n)
    except KeyError as e:  # the episode's group lacks an array
        raise DatasetError(f"{shown}: episode {len(returns)} lacks an array every Minari episode holds ({e}); each "
                           "needs observations, actions, rewards, terminations and truncations. Re-create it with "
                           f"{_WRITER}, which records them all.") from e
    except OSError as e:  # h5py on a damaged episode file
        raise DatasetError(f"{shown}: episode {len(returns)} is not readable ({e}); re-create the dataset with "
                           f"{_WRITER}.") from e
    if len(returns) < 2:
        raise DatasetError(f"{shown}: holds {len(returns)} episode(s); relabel splits episodes into "
                           "training and validation, so bring a dataset of 2 or more.")
    return Imported(path, files_digest(path), metadata, np.array(returns), np.array(lengths))


def copy_minari(imported: Imported, dest: Path, metadata: dict[str, Any]) -> Path:
    """Copy the dataset to ``dest`` (atomically) with ``metadata`` added to its metadata.json."""
    with atomic_dir(dest, create=False) as tmp:
        shutil.copytree(imported.path, tmp)
        (tmp / "metadata.json").write_text(json.dumps({**imported.metadata, **metadata}))
    return Path(dest)
