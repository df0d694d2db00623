"""The layers of docs/ARCHITECTURE.md, enforced by reading every module's imports (``ast``: lazy imports
inside functions count too): a module may import only the layers its own layer is allowed to."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import privacam

SRC = Path(privacam.__file__).parent

FOUNDATION = {"errors", "utils", "config", "registry", "executors"}
BELOW_CLI = FOUNDATION | {"data", "models", "players", "game", "runs", "audits", "distributed", "builders", "train", "evaluate",
                          "deploy", "report", "card", "demo", "sweep", "reference", "configs"}
#: layer (top-level module or package of privacam) -> the layers it may import (itself always allowed)
ALLOWED = {
    "errors": set(),
    "utils": {"errors"},  # load_checkpoint and resolve_device raise the one-line errors
    "config": {"errors"},
    "registry": {"errors"},
    "executors": {"errors"},
    "configs": set(),
    "data": FOUNDATION,
    "models": FOUNDATION,
    "players": FOUNDATION | {"models"},
    "game": FOUNDATION | {"models"},
    "runs": FOUNDATION | {"models", "players"},
    "audits": FOUNDATION | {"runs"},
    "distributed": FOUNDATION | {"game"},
    "builders": FOUNDATION | {"models", "players", "game", "distributed"},
    "train": FOUNDATION | {"data", "models", "players", "game", "runs", "builders", "distributed"},
    "evaluate": FOUNDATION | {"data", "models", "players", "runs", "audits"},
    "deploy": FOUNDATION | {"data", "models", "players", "runs"},
    "report": FOUNDATION | {"runs", "audits"},
    "card": FOUNDATION | {"runs", "audits", "report"},
    "demo": BELOW_CLI,
    "sweep": BELOW_CLI,
    "reference": BELOW_CLI - {"demo", "sweep"},
    "cli": BELOW_CLI,
    "__init__": BELOW_CLI,  # the package fills every registry eagerly
}


def layer_of(path: Path) -> str:
    """``privacam/evaluate/runner.py`` -> ``evaluate``; ``privacam/train.py`` -> ``train``."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def privacam_imports(source: str, module: str) -> set[str]:
    """The privacam layers a module's source imports; ``module`` is its dotted name (for relative imports)."""
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        for n in names:
            parts = n.split(".")
            if parts[0] == "privacam" and len(parts) > 1:
                found.add(parts[1])
    return found


def violations(source: str, module: str, layer: str) -> list[str]:
    allowed = ALLOWED[layer] | {layer}
    return sorted(f"{module} imports privacam.{m}" for m in privacam_imports(source, module) - allowed)


MODULES = sorted(SRC.rglob("*.py"))


def _dotted(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) + (".__init__" if parts[-1] == "__init__" else "")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_imports_only_layers_below_it(path):
    layer = layer_of(path)
    assert layer in ALLOWED, f"{path} is in no layer of docs/ARCHITECTURE.md: add it there and to ALLOWED"
    assert violations(path.read_text(), _dotted(path), layer) == []


def test_every_layer_is_in_the_architecture_page():
    page = (SRC.parents[1] / "docs" / "ARCHITECTURE.md").read_text()
    for layer in ALLOWED:
        if layer not in ("__init__", "configs"):
            assert f"`{layer}" in page, layer


def test_the_check_catches_an_upward_import():
    """The audit importing the game, a model importing a dataset, anything importing the CLI."""
    assert violations("from ..game import AdversarialGame\n", "privacam.evaluate.runner", "evaluate") == [
        "privacam.evaluate.runner imports privacam.game"]
    assert violations("def f():\n    from ..train import train\n", "privacam.deploy.commands", "deploy") == [
        "privacam.deploy.commands imports privacam.train"]
    assert violations("import privacam.data.video\n", "privacam.models.encoders", "models") == [
        "privacam.models.encoders imports privacam.data"]
    assert violations("from . import cli\n", "privacam.report", "report") == ["privacam.report imports privacam.cli"]
    assert violations("from .errors import ConfigError\n", "privacam.registry", "registry") == []


# ---------------------------------------------------------------------------------------------- summary readers
#: the contract of the audit directory: the one module that reads summary.json by its keys
CONTRACT = SRC / "audits.py"
ROOT = SRC.parents[1]
#: the summary's blocks and the keys a reader asks them for (from the contract's own records)
from privacam import audits as _audits  # noqa: E402

BLOCK_KEYS = {block: cls._field_names() for block, cls in
              (("privacy", _audits.Privacy), ("utility", _audits.Utility), ("encoder", _audits.EncoderInfo),
               ("reconstruction", _audits.Reconstruction))}


def _key(node: ast.AST) -> str | None:
    """``"k"`` for ``X["k"]`` and ``X.get("k", ...)``; None otherwise."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def _inner(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Subscript):
        return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.value
    return None


def summary_reads(source: str) -> list[str]:
    """Where a module reads an audit summary by string keys instead of through :mod:`privacam.audits`:

    - the file name ``summary.json`` in a path (not in prose or docstrings): the contract names the files;
    - a block of the summary and one of its keys by strings, ``s["privacy"]["best"]``,
      ``s["utility"].get("value")`` (``(s.get("privacy") or {})["best"]`` too).
    """
    tree = ast.parse(source)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and "summary.json" in node.value and " " not in node.value):  # a path, not prose
            found.append(f"line {node.lineno}: the file name {node.value!r}")
        key = _key(node)
        inner = _inner(node)
        if isinstance(inner, ast.BoolOp) and inner.values:
            inner = inner.values[0]
        block = _key(inner) if inner is not None else None
        if block in BLOCK_KEYS and key in BLOCK_KEYS[block]:
            found.append(f"line {node.lineno}: [{block!r}][{key!r}]")
    return found


READERS = [p for p in sorted(SRC.rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
           if p != CONTRACT]


@pytest.mark.parametrize("path", READERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_summary_is_read_only_through_the_contract(path):
    """Every reader of summary.json goes through privacam.audits (AuditSummary), never by string keys."""
    assert summary_reads(path.read_text()) == [], f"{path}: read the summary through privacam.audits"


def test_the_summary_check_catches_string_reads():
    assert summary_reads('p = read_json(run / "eval" / "summary.json")\n') == [
        "line 1: the file name 'summary.json'"]
    assert summary_reads('best = s["privacy"]["best"]\n') == ["line 1: ['privacy']['best']"]
    assert summary_reads('v = s["utility"].get("value")\n') == ["line 1: ['utility']['value']"]
    assert summary_reads('r = (s.get("reconstruction") or {})["psnr"]\n') == ["line 1: ['reconstruction']['psnr']"]
    assert summary_reads('"""Reads eval/summary.json."""\nx = batch["utility"]\nh = "searched for summary.json"\n') == []
    assert summary_reads("best = s.privacy.best\n") == []
