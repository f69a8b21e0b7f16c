"""Security hygiene, checked on the source: no unpickling of files the user did not write, safe YAML,
no shell commands built from strings, servers bound to localhost, no secrets in the repository.
Each scanner is also run on a snippet that breaks its rule, so a scanner that finds nothing fails."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT

CODE_DIRS = ("src", "flows", "tests", "benchmarks")

UNPICKLING_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "shelve", "marshal", "joblib"}
UNSAFE_YAML = {"load", "load_all", "full_load", "full_load_all", "unsafe_load", "unsafe_load_all",
               "Loader", "FullLoader", "UnsafeLoader"}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}


def _name(node: ast.AST) -> str:
    """Dotted name of a call target or attribute (``np.load``, ``subprocess.run``), else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan_python(source: str, filename: str = "<snippet>") -> list[str]:
    """Rule violations in one Python source, as ``file:line: what``."""
    problems = []

    def bad(node: ast.AST, what: str) -> None:
        problems.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for mod in names:
                if mod.split(".")[0] in UNPICKLING_MODULES:
                    bad(node, f"imports {mod} (unpickles arbitrary objects)")
            if isinstance(node, ast.ImportFrom) and node.module == "yaml":
                for a in node.names:
                    if a.name in UNSAFE_YAML:
                        bad(node, f"imports yaml.{a.name} (use yaml.safe_load)")
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                for a in node.names:
                    if a.name in ("system", "popen"):
                        bad(node, f"imports os.{a.name} (runs a shell)")
        elif isinstance(node, ast.Attribute) and _name(node.value) == "yaml" and node.attr in UNSAFE_YAML:
            bad(node, f"yaml.{node.attr} (use yaml.safe_load / SafeLoader)")
        elif isinstance(node, ast.Call):
            target = _name(node.func)
            last = target.rsplit(".", 1)[-1]
            if target == "torch.load" and not _is_true(_keyword(node, "weights_only")):
                bad(node, "torch.load without weights_only=True")
            if last in ("load", "loadtxt", "fromfile") and target.startswith(("np.", "numpy.")) and \
                    _is_true(_keyword(node, "allow_pickle")):
                bad(node, f"{target}(allow_pickle=True)")
            if target.endswith("read_pickle"):
                bad(node, f"{target} (unpickles)")
            if _is_true(_keyword(node, "shell")):
                bad(node, f"{target}(shell=True): pass an argument list")
            if target in ("os.system", "os.popen"):
                bad(node, f"{target} runs a shell: use subprocess with an argument list")
            if target.startswith("subprocess.") and last in SUBPROCESS_CALLS and node.args and \
                    isinstance(node.args[0], ast.Constant | ast.JoinedStr | ast.BinOp):
                bad(node, f"{target} with a command string: pass an argument list")
    return problems


def _project_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.split("\0") if p and (ROOT / p).is_file()]


def test_python_sources_follow_the_rules():
    sources = [p for p in _project_files() if p.suffix == ".py" and p.relative_to(ROOT).parts[0] in CODE_DIRS]
    assert any(p.name == "pipeline.py" for p in sources) and len(sources) > 20
    problems = [msg for p in sources for msg in scan_python(p.read_text(), str(p.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("snippet", [
    "import pickle\npickle.loads(b'')",
    "from cloudpickle import loads",
    "import joblib\njoblib.load('m.pkl')",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "import torch\ntorch.load('model.pt')",
    "import torch\ntorch.load('model.pt', weights_only=False)",
    "import yaml\nyaml.load(open('p.yaml'), Loader=yaml.Loader)",
    "import yaml\nyaml.full_load('a: 1')",
    "from yaml import unsafe_load",
    "import subprocess\nsubprocess.run(f'dvc repro {stage}', shell=True)",
    "import subprocess\nsubprocess.check_output('git ' + args)",
    "import os\nos.system('make run')",
    "import os\nos.popen('ls')",
    "import pandas as pd\npd.read_pickle('x.pkl')",
])
def test_python_scanner_catches_each_rule(snippet):
    assert scan_python(snippet), snippet


def test_python_scanner_accepts_the_safe_forms():
    ok = ("import torch, yaml, subprocess, numpy as np\n"
          "torch.load('m.pt', map_location='cpu', weights_only=True)\n"
          "yaml.safe_load('a: 1')\nyaml.safe_dump({})\n"
          "np.load('a.npy', allow_pickle=False)\n"
          "subprocess.run(['dvc', 'repro', stage], check=True)\n")
    assert scan_python(ok) == []


# `<tool> ... --host <address>` in the docs, Makefile, deployments and CI.
SERVER_COMMAND = re.compile(r"\b(mlflow\s+(?:server|ui)|prefect\s+server\s+start)\b([^\n`]*)")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def scan_server_commands(text: str, filename: str = "<snippet>") -> list[str]:
    """Server commands that bind an address other than the loopback one."""
    problems = []
    for m in SERVER_COMMAND.finditer(text):
        host = re.search(r"(?:--host|-h)[=\s]+(\S+)", m.group(2))
        if host and host.group(1).strip("'\"") not in LOOPBACK:
            problems.append(f"{filename}: `{m.group(0).strip()}` binds {host.group(1)}")
    return problems


def _server_docs() -> list[Path]:
    return [p for p in _project_files()
            if p.suffix in (".md", ".yaml", ".yml", ".toml", ".sh") or p.name == "Makefile"]


def test_servers_are_bound_to_localhost():
    files = _server_docs()
    problems = [msg for p in files for msg in scan_server_commands(p.read_text(errors="replace"), p.name)]
    assert not problems, "\n".join(problems)
    # Commands given without --host rely on the tools' defaults: check those are loopback too.
    # (`mlflow ui` is an alias of `mlflow server`.)
    from mlflow.cli import server
    from prefect.settings import get_current_settings

    host = next(p for p in server.params if p.name == "host").default
    assert host in LOOPBACK, f"mlflow server now defaults to {host}: add --host 127.0.0.1 where it is documented"
    assert get_current_settings().server.api.host in LOOPBACK


def test_server_scanner_flags_a_public_bind():
    assert scan_server_commands("run `mlflow server --host 0.0.0.0 --port 5000`")
    assert scan_server_commands("prefect server start --host=0.0.0.0")
    assert not scan_server_commands("mlflow ui --backend-store-uri sqlite:///a.db --host 127.0.0.1")


# Kept in parts so that this file does not match its own patterns.
SECRETS = {
    "AWS access key id": "AKIA" + r"[0-9A-Z]{16}",
    "private key": "-----BEGIN " + r"(?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY",
    "GitHub token": r"\bgh[pousr]_" + r"[A-Za-z0-9]{36,}",
    "Slack token": r"\bxox[abprs]-" + r"[A-Za-z0-9-]{10,}",
    "Prefect API key": r"\bpnu_" + r"[A-Za-z0-9]{36}",
    "OpenAI/Anthropic key": r"\bsk-(?:ant-)?" + r"[A-Za-z0-9_-]{32,}",
    "assigned secret": r"(?i)\b(?:api[_-]?key|secret[_-]?key|password|access[_-]?token)\s*[:=]\s*"
                       + r"['\"][^'\"\s]{12,}['\"]",
}


def scan_secrets(text: str, filename: str = "<snippet>") -> list[str]:
    return [f"{filename}: {kind}" for kind, pattern in SECRETS.items() if re.search(pattern, text)]


def test_no_secrets_in_the_repository():
    problems = []
    for p in _project_files():
        data = p.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        problems += scan_secrets(data.decode(errors="replace"), str(p.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


def test_secret_scanner_finds_planted_secrets():
    planted = ["aws_key = '" + "AKIA" + "ABCDEFGHIJKLMNOP'",
               "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
               "token: gh" + "p_" + "a1" * 18,
               "PASSWORD = '" + "hunter2hunter2" + "'"]
    for text in planted:
        assert scan_secrets(text), text
    assert not scan_secrets("password = os.environ['DB_PASSWORD']  # read from the environment")
