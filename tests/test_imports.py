"""The import graph keeps the research families apart (issue #25): no module uses a private (``_name``) of
another module, a family imports only the families it is allowed to (the arrows below), and the shared
helpers below the families import none of them. Reads the source with :mod:`ast`; imports nothing it checks.

Layers, bottom to top:

- shared helpers (:data:`SHARED`): one home each for what every family uses (CSV/JSON files, figures,
  statistics, text, seeds, API clients, config machinery, the stage skeleton), and the ``models`` package;
- the research families (:data:`ALLOWED`): each may use the shared layer and the families its arrows name;
- above them: the workflow level (``cli``, ``workflow_config``, ...), the RLHF-chain glue (``runs``,
  ``preferences``) and ``miniature`` (tiny end-to-end assets for tests), unconstrained here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rlhf_pipeline"
TOP = "rlhf_pipeline"

SHARED = frozenset({
    "errors", "io", "config", "stats", "plotting", "text", "seeding", "clients", "trainer_checkpoints", "trl_args",
    "runtime", "provenance", "codegraph", "stage", "models",
})
"""Top-level modules (and the ``models`` package) below the families: they import no family."""

ALLOWED: dict[str, dict[str, str]] = {
    "data": {},
    "sft": {},
    "reward": {
        "data": "the gold RM reads AlpacaFarm prompts (data.alpaca_farm); the RM stages label synthetic responses",
    },
    "ppo": {
        "reward": "PPO optimises a reward model's score (reward.ensemble)",
    },
    "evaluation": {
        "reward": "gold evaluation, best-of-n and diversity score with the gold and proxy RMs",
    },
    "debate": {
        "data": "debate datasets are read and split like every dataset (data.source, data.prepare)",
        "sft": "debaters are fine-tuned by the SFT stage's trainer and settings",
        "ppo": "a debater is trained by PPO with the judge's probability as the reward (debate.ppo)",
    },
    "redteam": {
        "data": "the red-team world is built on the synthetic world's topics and fillers",
        "sft": "the target is fine-tuned by the SFT stage",
        "reward": "the toxicity classifier batches like a reward model (reward.heads)",
        "ppo": "the attacker is trained by PPO with the red-team reward",
        "evaluation": "a red-team run's eval steps are read like a PPO run's (evaluation.gold_eval)",
    },
    "ad": {
        "sft": "the AD language model is a tiny Llama of the SFT stage's config",
        "reward": "AD's in-context task and gold score come from the RLHF chain's reward models",
        "ppo": "learning histories are PPO runs' trajectories and checkpoints",
    },
}
"""Family -> the other families it may import (public names only), each with its reason. ``debate`` and
``redteam`` share nothing but shared helpers: the API clients live in :mod:`rlhf_pipeline.clients`."""


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def module_of(rel: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(module, package)`` dotted parts (below ``rlhf_pipeline``) of a file path relative to the package."""
    parts = tuple(Path(rel).with_suffix("").parts)
    if parts[-1] == "__init__":
        return parts[:-1], parts[:-1]
    return parts, parts[:-1]


def imports_of(rel: str, source: str) -> list[tuple[tuple[str, ...], str | None, int]]:
    """``(module, name, line)`` of every intra-package import of a file, anywhere in it (lazy imports in
    functions and ``TYPE_CHECKING`` blocks included); ``name`` is None for ``import rlhf_pipeline.x``."""
    _, package = module_of(rel)
    out = []
    for node in ast.walk(ast.parse(source, filename=rel)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = base + tuple(node.module.split(".") if node.module else ())
            elif node.module and (node.module == TOP or node.module.startswith(TOP + ".")):
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            out += [(target, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(tuple(a.name.split(".")[1:]), None, node.lineno) for a in node.names
                    if a.name == TOP or a.name.startswith(TOP + ".")]
    return out


def _bound_names(rel: str, source: str) -> set[str]:
    """Names a file binds by importing from the package (``from .x import y [as z]``)."""
    names = set()
    for node in ast.walk(ast.parse(source, filename=rel)):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(TOP)):
            names |= {a.asname or a.name for a in node.names}
    return names


def private_uses(files: dict[str, str]) -> list[str]:
    """Every use of another module's private name: ``from .x import _y``, ``import rlhf_pipeline._x``, a
    private module on the way (``from ._x import y``), or ``y._z`` on a name imported from the package."""
    bad = []
    for rel, source in files.items():
        module, _ = module_of(rel)
        for target, name, line in imports_of(rel, source):
            private = [p for p in target if _is_private(p)] + ([name] if name and _is_private(name) else [])
            if private and target != module:
                bad.append(f"{rel}:{line}: imports private {'.'.join(private)} from {'.'.join(target) or TOP}")
        bound = _bound_names(rel, source)
        for node in ast.walk(ast.parse(source, filename=rel)):
            if (isinstance(node, ast.Attribute) and _is_private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in bound):
                bad.append(f"{rel}:{node.lineno}: uses private {node.value.id}.{node.attr} of another module")
    return bad


def family_arrows(files: dict[str, str]) -> list[str]:
    """Every import that breaks the layers: a family importing a family :data:`ALLOWED` does not name, or a
    shared helper (:data:`SHARED`) importing any family."""
    bad = []
    for rel, source in files.items():
        module, _ = module_of(rel)
        home = module[0] if module else ""
        for target, _name, line in imports_of(rel, source):
            dest = target[0] if target else ""
            if dest not in ALLOWED or dest == home:
                continue
            if home in SHARED:
                bad.append(f"{rel}:{line}: shared helper {home} imports the {dest} family ({'.'.join(target)})")
            elif home in ALLOWED and dest not in ALLOWED[home]:
                bad.append(f"{rel}:{line}: the {home} family imports the {dest} family ({'.'.join(target)}); "
                           f"allowed: {sorted(ALLOWED[home]) or 'none'}")
    return list(dict.fromkeys(bad))  # one line per import statement, not per imported name


def package_files() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


# ---- the package ---------------------------------------------------------------------------------------


def test_the_layers_name_real_modules():
    tops = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(ALLOWED) <= tops
    assert set(SHARED) <= tops
    assert all(set(arrows) <= set(ALLOWED) for arrows in ALLOWED.values())


def test_no_module_uses_another_modules_private_names():
    assert private_uses(package_files()) == []


def test_families_import_only_the_families_their_arrows_allow():
    assert family_arrows(package_files()) == []


# ---- the checker can fail ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "source", "expected"), [
    ("redteam/target.py", "from ..debate.backends.api import _chat_choice, read_key\n",
     "redteam/target.py:1: imports private _chat_choice from debate.backends.api"),
    ("ad/rl.py", "def plot():\n    from ..evaluation.plots import _save\n",
     "ad/rl.py:2: imports private _save from evaluation.plots"),
    ("debate/training.py", "from .ratings import _save\n", "imports private _save from debate.ratings"),
    ("debate/backends/api.py", "from . import _cache\n", "imports private _cache from debate.backends"),
    ("ppo/run.py", "from rlhf_pipeline.ppo._loop import step\n", "imports private _loop from ppo._loop"),
    ("ad/rl.py", "from ..ppo import checkpoint as ckpt\nckpt._latest('d')\n",
     "ad/rl.py:2: uses private ckpt._latest of another module"),
])
def test_a_planted_private_import_fails(rel, source, expected):
    found = private_uses({rel: source})
    assert len(found) == 1 and expected in found[0]


def test_public_and_own_names_pass():
    assert private_uses({"redteam/target.py": "from ..clients import ChatEndpoint\nChatEndpoint.__init__\n",
                         "io.py": "import os\nos._exit\n",
                         "ppo/trainer.py": "class _Run:\n    pass\n_Run()\n"}) == []


@pytest.mark.parametrize(("rel", "source", "expected"), [
    ("redteam/target.py", "from ..debate.backends.api import ChatEndpoint\n",
     "redteam/target.py:1: the redteam family imports the debate family (debate.backends.api)"),
    ("data/source.py", "def f():\n    from ..reward.gold import GoldScorer\n",
     "data/source.py:2: the data family imports the reward family (reward.gold); allowed: none"),
    ("reward/gold.py", "from rlhf_pipeline.evaluation import plots\n", "the reward family imports the evaluation"),
    ("stats.py", "from .debate.ratings import mean_se\n", "shared helper stats imports the debate family"),
    ("models/fingerprint.py", "from ..ppo import checkpoint\n", "shared helper models imports the ppo family"),
])
def test_a_planted_illegal_arrow_fails(rel, source, expected):
    found = family_arrows({rel: source})
    assert len(found) == 1 and expected in found[0]


def test_allowed_arrows_and_the_upper_layers_pass():
    assert family_arrows({"ad/rl.py": "from ..ppo import checkpoint as ckpt\nfrom ..stats import mean_se\n",
                          "debate/data.py": "from ..data.source import load_source\n",
                          "miniature/coste2023.py": "from ..debate import data\nfrom ..redteam import world\n",
                          "workflow_config.py": "from .ad.config import ADConfig\n"}) == []
