"""Hashes of every stage output of a pipeline run, to show that a change leaves results unchanged.

    python benchmarks/output_hashes.py REPO > after.json            # after `dvc repro` in REPO
    python benchmarks/output_hashes.py --compare before.json after.json

Each file under ``artifacts/<family>/<stage>/`` and each ``metrics/*`` file gets its SHA-256, and two
normalised forms where a file's bytes carry run-specific content by design of an older version:
``model.pt`` hashed on its payload with ``meta.mlflow_run_id`` removed (tensors by value, keys in
order), and JSON files with the timing fields ``seconds``, ``steps_per_second`` and
``wall_seconds`` removed. GX Data Docs (``validate/docs/``, ``validate-docs/``) carry run times and
are left out. ``--compare`` prints, per stage output, whether every file that both runs wrote is
equal (byte for byte, or in its normalised form), and which files only one run wrote; files may
have moved (``--rename OLD=NEW``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

TIMING = {"seconds", "steps_per_second", "wall_seconds"}
STAGES = ("collect", "validate", "relabel", "train", "evaluate")


def _feed(h, x) -> None:
    import torch

    if isinstance(x, dict):
        for k, v in x.items():
            h.update(repr(k).encode())
            _feed(h, v)
    elif isinstance(x, list | tuple):
        for v in x:
            _feed(h, v)
    elif isinstance(x, torch.Tensor):
        h.update(f"{x.dtype}{tuple(x.shape)}".encode())
        h.update(x.detach().contiguous().numpy().tobytes())
    else:
        h.update(repr(x).encode())


def normalised(path: Path) -> str | None:
    """The hash of ``path`` without its run-specific content, or None when it has none."""
    if path.suffix == ".pt":
        import torch

        payload = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(payload, dict) and isinstance(payload.get("meta"), dict):
            payload["meta"] = {k: v for k, v in payload["meta"].items() if k != "mlflow_run_id"}
        h = hashlib.sha256()
        _feed(h, payload)
        return h.hexdigest()[:16]
    if path.suffix == ".json":
        def strip(x):
            if isinstance(x, dict):
                return {k: strip(v) for k, v in x.items() if k not in TIMING}
            return [strip(v) for v in x] if isinstance(x, list) else x

        return hashlib.sha256(json.dumps(strip(json.loads(path.read_text())), sort_keys=True).encode()).hexdigest()[:16]
    return None


def entry(path: Path) -> dict:
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16], "normalised": normalised(path)}


def hashes(repo: Path) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for family in sorted(p for p in (repo / "artifacts").iterdir() if (p / "collect").is_dir()):
        for stage in STAGES:
            folder = family / stage
            files = {}
            for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
                rel = p.relative_to(folder).as_posix()
                if p.is_file() and not rel.startswith("docs/"):
                    files[rel] = entry(p)
            out[f"{family.name}/{stage}"] = files
    out["metrics"] = {p.name: entry(p) for p in sorted((repo / "metrics").glob("*")) if p.is_file()}
    return out


def compare(before: dict, after: dict, renames: dict[str, str]) -> list[str]:
    lines = ["| output | files in both | byte-identical | identical once normalised | differ | only before | "
             "only after |", "|---|---|---|---|---|---|---|"]
    for key in before:
        b = before[key]
        back = {new: old for old, new in renames.items()}  # files that moved, by their new path
        a = {back.get(f"{key}/{f}", f"{key}/{f}").removeprefix(f"{key}/"): v for f, v in after.get(key, {}).items()}
        both = sorted(set(b) & set(a))
        same = [f for f in both if b[f]["sha256"] == a[f]["sha256"]]
        norm = [f for f in both if f not in same and b[f]["normalised"] and b[f]["normalised"] == a[f]["normalised"]]
        diff = [f for f in both if f not in same and f not in norm]
        only_b, only_a = sorted(set(b) - set(a)), sorted(set(a) - set(b))
        show = lambda fs: ", ".join(fs[:4]) + (f" (+{len(fs) - 4})" if len(fs) > 4 else "")  # noqa: E731
        lines.append(f"| {key} | {len(both)} | {len(same)} | {len(norm)}{' (' + show(norm) + ')' if norm else ''} | "
                     f"{len(diff)}{' (' + show(diff) + ')' if diff else ''} | {show(only_b)} | {show(only_a)} |")
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="REPO, or with --compare BEFORE.json AFTER.json")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--rename", action="append", default=[], help="OLD=NEW: a file that moved (metrics/a=b)")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.paths)
        renames = dict(r.split("=", 1) for r in args.rename)
        print("\n".join(compare(before, after, renames)))
    else:
        json.dump(hashes(Path(args.paths[0])), sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
