"""The package's shape, checked from the code's own imports (``ast``, nothing is run):

* no import cycle among module-level imports;
* shared code never imports a family, and no family imports another (the registry finds them);
* params schemas import no runtime library, the training loop knows no tracking or registry, and no
  stage module is imported by other code (library code lives in library modules);
* every stage's dependencies in dvc.yaml are its family's folder plus exactly the shared modules
  that some family's version of the stage imports: nothing missing, nothing listed for show.
"""

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from justask.families import families
from justask.settings import STAGES

SRC = ROOT / "src"
PKG = SRC / "justask"
# Entry points: they parse params and dispatch to a stage; DVC tracks the params themselves.
ENTRY = {"justask", "justask.cli", "justask.console", "justask.config", "justask.families", "justask.family"}
RUNTIME = {"torch", "gymnasium", "minigrid", "mlflow", "optuna", "great_expectations", "prefect", "dvc", "minari",
           "pandas", "scipy", "rliable", "sentence_transformers", "transformers", "stable_baselines3"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


@cache
def imports(module: str, top_level_only: bool = False) -> tuple[frozenset[str], frozenset[str]]:
    """(justask modules, external top-level packages) that ``module`` imports. ``top_level_only``:
    statements at module level only (what runs on import; ``if TYPE_CHECKING:`` blocks excluded)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    own, external = set(), set()

    def add(target: str, names=()) -> None:
        parts = target.split(".")
        if parts[0] != "justask":
            external.add(parts[0])
            return
        # Importing a.b.c runs a/__init__ and a/b/__init__ too, except the packages holding ``module``
        # itself: Python has those in hand already (a submodule may import its own package).
        prefixes = (".".join(parts[:i]) for i in range(1, len(parts) + 1))
        own.update(p for p in prefixes if p in MODULES and not module.startswith(p + "."))
        own.update(f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES)

    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            add(target, [a.name for a in node.names])
    own.discard(module)
    return frozenset(own), frozenset(external)


def closure(start: str, top_level_only: bool = False) -> set[str]:
    """Every justask module importing ``start`` loads (its own packages' ``__init__`` included)."""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            parts = m.split(".")
            todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in MODULES]
            todo += imports(m, top_level_only)[0]
    return seen


def family_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "families" else None


def test_the_registry_finds_every_family_folder():
    folders = {p.name for p in (PKG / "families").iterdir() if (p / "__init__.py").exists()}
    assert set(families()) == folders


def test_no_import_cycles():
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(imports(m, top_level_only=True)[0]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


def test_shared_code_never_imports_a_family_and_families_not_each_other():
    bad = []
    for m in MODULES:
        for n in imports(m)[0]:
            target = family_of(n)
            if target is not None and family_of(m) != target:
                bad.append(f"{m} imports {n}")
    assert not bad, "\n".join(bad)


def test_params_schemas_import_no_runtime_code():
    schemas = ["justask.settings", "justask.config", "justask.lunar.config"]
    schemas += [f"justask.families.{f}.config" for f in families()]
    for schema in schemas:
        loaded = closure(schema, top_level_only=True)
        heavy = {ext for m in loaded for ext in imports(m, top_level_only=True)[1]} & RUNTIME
        assert not heavy, f"importing {schema} imports {sorted(heavy)} (through {sorted(loaded)})"


def test_the_training_loop_knows_no_tracking_registry_or_family():
    for module in ("justask.training.loop", "justask.training.resume", "justask.training.checkpoints"):
        used = closure(module)
        assert not used & {"justask.tracking", "justask.registry", "justask.training.runs", "justask.families"}, used
        assert not any(family_of(m) for m in used), used


def test_no_module_imports_a_stage_module():
    stage_modules = {f"justask.families.{f}.{s}" for f in families() for s in STAGES}
    bad = [f"{m} imports {n}" for m in MODULES for n in imports(m)[0] if n in stage_modules]
    assert not bad, "library code belongs in library modules, not in a stage:\n" + "\n".join(bad)


def shared_deps(stage: str) -> list[str]:
    """What dvc.yaml must list for ``stage`` besides the family folder: the shared modules any family's
    version of it imports, a package as its folder when the stage uses all of the package."""
    used = set()
    for f in families():
        used |= {m for m in closure(f"justask.families.{f}.{stage}") if family_of(m) is None and m not in ENTRY}
    files = {MODULES[m].relative_to(ROOT).as_posix() for m in used}
    deps = set(files)
    for folder in {str(Path(f).parent) for f in files} - {"src/justask"}:
        members = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob("*.py")}
        if members <= files:
            deps = (deps - members) | {folder}
    return sorted(deps)


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_deps_are_what_the_stage_imports(stage):
    do = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["do"]
    code = [d for d in do["deps"] if d.startswith("src/")]
    assert code[0] == "src/justask/families/${key}", "the family's folder comes first"
    listed = code[1:]
    assert listed == sorted(listed), f"{stage}: keep the shared modules sorted"
    want = shared_deps(stage)
    missing, filler = sorted(set(want) - set(listed)), sorted(set(listed) - set(want))
    assert not missing and not filler, (
        f"dvc.yaml stage {stage}: missing dependencies {missing} (code the stage imports); listed but not "
        f"imported by any family's {stage} {filler}. Set its shared deps to:\n" + "\n".join(f"- {d}" for d in want))
