"""The layers of docs/ARCHITECTURE.md, enforced by reading every module's imports (``ast``: lazy imports
inside functions count too): a module may import only the layers its own layer is allowed to."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import privacam

SRC = Path(privacam.__file__).parent

FOUNDATION = {"errors", "utils", "config", "registry"}
BELOW_CLI = FOUNDATION | {"data", "models", "players", "game", "runs", "distributed", "builders", "train", "evaluate",
                          "deploy", "report", "card", "demo", "sweep", "reference", "configs"}
#: layer (top-level module or package of privacam) -> the layers it may import (itself always allowed)
ALLOWED = {
    "errors": set(),
    "utils": {"errors"},  # load_checkpoint and resolve_device raise the one-line errors
    "config": {"errors"},
    "registry": {"errors"},
    "configs": set(),
    "data": FOUNDATION,
    "models": FOUNDATION,
    "players": FOUNDATION | {"models"},
    "game": FOUNDATION | {"models"},
    "runs": FOUNDATION | {"models", "players"},
    "distributed": FOUNDATION | {"game"},
    "builders": FOUNDATION | {"models", "players", "game", "distributed"},
    "train": FOUNDATION | {"data", "models", "players", "game", "runs", "builders", "distributed"},
    "evaluate": FOUNDATION | {"data", "models", "players", "runs"},
    "deploy": FOUNDATION | {"data", "models", "players", "runs"},
    "report": FOUNDATION | {"runs"},
    "card": FOUNDATION | {"runs", "report"},
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
