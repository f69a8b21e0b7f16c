"""Episode datasets in Minari's on-disk format (HDF5), written through Minari's storage API, and
the seeded train/validation split of their episodes every relabel stage makes.

Writing goes through ``MinariStorage`` directly (``minari[create]`` would pull in jax just to
build episode buffers). A dataset written here loads with ``minari.load_dataset`` or
``minari.MinariDataset(path)``; one a user brings in the same format enters the pipeline as is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage

from justask.errors import DatasetError
from justask.io import atomic_dir

if TYPE_CHECKING:
    from justask.rollout import Episode

__all__ = ["DatasetError", "check_shape", "load_storage", "read_episodes", "read_metadata", "split_episodes",
           "write_buffers", "write_dataset"]


def write_dataset(path: Path, episodes: Iterable[Episode], env, metadata: dict[str, Any]) -> Path:
    """Write vector-observation ``episodes`` as a Minari dataset at ``path``, atomically.

    ``env`` provides the spaces and spec. A previous dataset at ``path`` stays intact until
    the new one is complete.
    """
    buffers = [
        EpisodeBuffer(
            id=i, seed=e.seed, observations=e.observations.astype(np.float32),
            actions=e.actions, rewards=e.rewards, terminations=e.terminations,
            truncations=e.truncations, infos={},
        )
        for i, e in enumerate(episodes)
    ]
    return write_buffers(path, buffers, env.observation_space, env.action_space, env.spec, metadata)


def write_buffers(path: Path, buffers: list[EpisodeBuffer], observation_space, action_space, env_spec,
                  metadata: dict[str, Any]) -> Path:
    """Write Minari ``EpisodeBuffer``s (any observation space Minari serializes, e.g. ``Dict``;
    string infos as bytes) to a dataset folder at ``path``: temp dir, then rename."""
    path = Path(path).absolute()  # Minari joins relative paths twice
    metadata = dict(metadata)
    with atomic_dir(path, create=False) as tmp:  # MinariStorage.new creates the folder itself
        storage = MinariStorage.new(tmp, observation_space=observation_space, action_space=action_space,
                                    env_spec=env_spec, data_format="hdf5")
        storage.update_episodes(buffers)
        storage.update_metadata({"dataset_id": metadata.pop("dataset_id", path.name),
                                 "minari_version": _minari_version(), **metadata})
    return path


def _minari_version() -> str:
    import minari

    return str(minari.__version__)


def read_metadata(path: Path) -> dict[str, Any]:
    """The dataset's metadata.json as a dict (spaces left serialized)."""
    meta = Path(path) / "metadata.json"
    if not meta.exists():
        raise DatasetError(
            f"{path}: no Minari dataset here (metadata.json missing). Run {_collect_command(path)} "
            "or point the stage at a folder written by Minari."
        )
    try:
        return json.loads(meta.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{meta}: not valid JSON ({e}); re-run collect to rewrite it") from e


def _collect_command(path: Path) -> str:
    """The command that rewrites the dataset at ``path`` (``artifacts/<family>/collect/<name>``)."""
    parts = Path(path).parts
    if len(parts) >= 3 and parts[-2] == "collect" and parts[-4:-3] == ("artifacts",):
        return f"`dvc repro collect@{parts[-3]}`"
    return "its family's collect stage (`dvc repro collect@<family>`)"


def _damaged(path: Path) -> str:
    return ("The file is damaged or truncated: restore it with `dvc checkout`, or delete the folder and re-run "
            f"{_collect_command(path)}.")


def load_storage(path: Path) -> MinariStorage:
    """Open a Minari dataset folder for reading, with a clear error if it is not one."""
    read_metadata(path)
    try:
        return MinariStorage.read(path)
    except Exception as e:  # h5py/json errors on a damaged file
        raise DatasetError(f"{path}: cannot read the Minari dataset ({type(e).__name__}: {e}). {_damaged(path)}") from e


def iter_episodes(path: Path, ids: range | None = None) -> Iterator[dict[str, np.ndarray]]:
    """The episodes of :func:`read_episodes` (only ``ids``, when given), read and checked one at a
    time (memory does not grow with the dataset)."""
    storage = load_storage(path)
    n = storage.total_episodes
    if not n:
        raise DatasetError(f"{path}: the dataset holds no episodes; re-run collect (check the episode counts "
                           "in params.yaml) or point the stage at a non-empty dataset.")
    ids = range(n) if ids is None else ids
    if ids and (ids[0] < 0 or ids[-1] >= n):
        raise ValueError(f"{path}: episodes {ids.start}..{ids.stop - 1} asked of {n}")
    try:
        for ep, m in zip(storage.get_episodes(ids), storage.get_episode_metadata(ids), strict=True):
            ep["seed"] = m.get("seed")
            where = f"{path}: episode {ep.get('id')}"
            check_shape(ep["observations"], storage.observation_space, f"{where} observations")
            check_shape(ep["actions"], storage.action_space, f"{where} actions")
            yield ep
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{path}: reading episodes failed ({type(e).__name__}: {e}). {_damaged(path)}") from e


def read_episodes(path: Path) -> list[dict[str, np.ndarray]]:
    """All episodes as dicts with ``observations`` (T+1, d), ``actions`` (T, ...), ``rewards``,
    ``terminations``, ``truncations`` (T,), ``id`` and ``seed``."""
    return list(iter_episodes(path))


def check_shape(values: Any, space: Any, where: str) -> None:
    """:class:`DatasetError` unless ``values`` (one entry per step) has ``space``'s shape per entry.

    ``Dict`` spaces are checked key by key; spaces without a fixed shape (e.g. ``Text``) are skipped.
    Step counts are not compared here: the validate stage reports a missing step as a data check.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        if not isinstance(values, dict) or set(values) != set(space.spaces):
            found = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise DatasetError(f"{where}: holds {found}, but the dataset's space {space} has keys "
                               f"{sorted(space.spaces)}; re-run collect to rewrite the dataset.")
        for key, sub in space.spaces.items():
            check_shape(values[key], sub, f"{where}[{key!r}]")
        return
    if space.shape is None:
        return
    found = np.shape(values)[1:]
    if found != space.shape:
        raise DatasetError(f"{where}: each step has shape {found}, but the dataset's space {space} needs "
                           f"{space.shape}; the file was written with other data than its metadata declares. "
                           "Re-run collect to rewrite the dataset.")


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of episode indices into (train, validation), both sorted and non-empty
    when ``n_episodes >= 2``."""
    if n_episodes < 2:
        raise ValueError(f"need at least 2 episodes to split, got {n_episodes}")
    perm = np.random.default_rng([seed, 11]).permutation(n_episodes)
    n_val = min(n_episodes - 1, max(1, round(val_fraction * n_episodes)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def split_mask(n_episodes: int, val_fraction: float, seed: int) -> np.ndarray:
    """(E,) int8 split of :func:`split_episodes`: 0 train, 1 validation."""
    _, val = split_episodes(n_episodes, val_fraction, seed)
    split = np.zeros(n_episodes, np.int8)
    split[val] = 1
    return split
