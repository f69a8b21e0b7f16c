"""Where bit-for-bit reproducibility ends: the same training fit under different CPU kernel choices.

    python benchmarks/reproducibility.py [--steps 300] [--out benchmarks/results/reproducibility.json]

collect + relabel the return family's test-profile data once (byte-identical on any machine: the
env, the controllers and the seeds involve no floating-point library kernels that vary), then
fit RvS and the Decision Transformer with the one training loop, each in a fresh process, under:

* ``default``, twice: the same machine and settings (the expected result: bit for bit);
* ``1 thread``: ``torch.set_num_threads(1)`` (justask's evaluation workers run this way);
* ``AVX2 kernels``: ``ATEN_CPU_CAPABILITY=avx2`` and ``MKL_ENABLE_INSTRUCTIONS=AVX2``, the code
  paths of a CPU without AVX-512 (such as the AMD EPYC the committed default run was made on);
* ``AVX2 kernels, MKL_CBWR=COMPATIBLE``: MKL's conditional numerical reproducibility mode too.

For each it reports whether the validation curve and the trained weights equal the first default
run's, the first evaluation step whose loss differs, and the largest weight difference. Nothing
here reads an evaluation seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "default": {},
    "default (again)": {},
    "1 thread": {"JUSTASK_THREADS": "1"},
    "AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "AVX2 kernels, MKL_CBWR=COMPATIBLE": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                          "MKL_CBWR": "COMPATIBLE"},
}

FIT = r"""
import json, os, sys, time, hashlib
from functools import partial
import numpy as np, torch
from justask.config import load_params
from justask.models import candidate
from justask.paths import family_paths
from justask.policies import episodes_for
from justask.seeding import seed_everything
from justask.steps import StepTable, Steps, data_spec
from justask.training.loop import Loop, fit

root, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if os.environ.get("JUSTASK_THREADS"):
    torch.set_num_threads(int(os.environ["JUSTASK_THREADS"]))
params = load_params(os.path.join(root, "params.yaml"))
fam = params.family("return")
table, meta = StepTable.load(family_paths("return", root).relabeled("mixed"))
spec = data_spec(table, meta)
result = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
for kind, hp in (("rvs", dict(fam.train.models["rvs"].hp, hidden=128, layers=2)),
                 ("dt", dict(fam.train.models["dt"].hp, hidden=64, layers=2, context=10))):
    seed_everything(0)
    train = Steps(table, episodes_for(kind, table, 0, 0.1), torch.device("cpu"))
    val = Steps(table, episodes_for(kind, table, 1, 0.1), torch.device("cpu"))
    build, opt = candidate(kind, spec, hp, steps)
    t0 = time.perf_counter()
    loop = Loop(eval_every=max(1, steps // 10), patience=10**9, seed=0, device=torch.device("cpu"))
    r = fit(build, train, val, opt, loop)
    weights = {k: v.numpy().tolist() for k, v in r.model.state_dict().items() if v.dtype.is_floating_point}
    result[kind] = {"curve": [p["val_loss"] for p in r.curve], "steps": [p["step"] for p in r.curve],
                    "weights": weights, "seconds": time.perf_counter() - t0}
json.dump(result, open(out, "w"))
"""


def prepare(root: Path) -> None:
    """Collect and relabel the return family on the test profile into ``root`` (in this process)."""
    import shutil

    from justask.config import load_params
    from justask.families import get_family

    (root / "data").mkdir(parents=True)
    shutil.copyfile(ROOT / "profiles" / "test.yaml", root / "params.yaml")
    params = load_params(root / "params.yaml")
    fam = get_family("return")
    fam.stage("collect")(params, root)
    fam.stage("relabel")(params, root)


def compare(a: dict, b: dict) -> dict:
    """Curve and weights of ``b`` against ``a``."""
    import numpy as np

    first = next((s for s, x, y in zip(a["steps"], a["curve"], b["curve"], strict=True) if x != y), None)
    diffs = [float(np.abs(np.asarray(a["weights"][k]) - np.asarray(b["weights"][k])).max()) for k in a["weights"]]
    return {"curve_identical": a["curve"] == b["curve"], "first_differing_eval_step": first,
            "weights_identical": max(diffs) == 0.0, "max_weight_difference": max(diffs),
            "final_val_loss": b["curve"][-1], "seconds": round(b["seconds"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reproducibility.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="justask-repro-") as tmp:
        root = Path(tmp)
        prepare(root)
        data = hashlib.sha256(b"".join(p.read_bytes() for p in sorted((root / "artifacts").rglob("*.npy")))).hexdigest()
        runs = {}
        for name, env in SETTINGS.items():
            out = root / f"{len(runs)}.json"
            subprocess.run([sys.executable, "-c", FIT, str(root), str(args.steps), str(out)], check=True,
                           env=os.environ | env)
            runs[name] = json.loads(out.read_text())
    base = runs["default"]
    report = {"steps": args.steps, "relabeled_data_sha256": data[:16],
              "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name")), "?"),
              "settings": {name: {"env": SETTINGS[name], "cpu_capability": r["cpu_capability"], "threads": r["threads"],
                                  **{kind: compare(base[kind], r[kind]) for kind in ("rvs", "dt")}}
                           for name, r in runs.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['cpu']}; {args.steps} steps; relabeled data {report['relabeled_data_sha256']}")
    print("| setting | kernels | threads | model | curve identical | first differing eval step | weights identical | "
          "max weight diff |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in report["settings"].items():
        for kind in ("rvs", "dt"):
            c = s[kind]
            print(f"| {name} | {s['cpu_capability']} | {s['threads']} | {kind} | {c['curve_identical']} | "
                  f"{c['first_differing_eval_step']} | {c['weights_identical']} | {c['max_weight_difference']:.3g} |")


if __name__ == "__main__":
    main()
