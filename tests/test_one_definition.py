"""One value per setting (issue #23): no CLI flag, keyword argument or Snakemake rule repeats a configured
default as a literal. A setting's default lives in its config dataclass; code that needs it reads it with
:func:`rlhf_pipeline.config.default_of` or takes the configured value from its caller."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import rlhf_pipeline.workflow_config  # noqa: F401  (imports every config section)
from rlhf_pipeline.config import Section, default_of

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rlhf_pipeline"

# Parameters that share a setting's name but not its meaning: (file under src/rlhf_pipeline, function, name).
ALLOWED = {
    ("redteam/classifier.py", "accuracy", "threshold"): "the 0.5 decision boundary of a 2-class probability, "
    "not redteam.toxicity.threshold (the attack-success bar)",
    ("debate/rounds.py", "play_round", "threshold"): "a fuzzy-match score in [0, 100]; every caller passes "
    "debate.quote_fuzzy_threshold",
    ("debate/training.py", "write_sft_split", "val_fraction"): "share of SFT speeches held out, not "
    "debate.dataset.val_fraction (share of stories)",
    ("reward/config.py", "head_stack", "readout_stack"): "a config-check helper defaulting a member's "
    "override; reads rm.readout_stack's own choices",
    ("reward/config.py", "check_head", "readout_stack"): "as head_stack",
    ("ppo/losses.py", "per_token_rewards", "entropy_coef"): "0.0 means the term is off (the math's neutral "
    "value); the trainer passes ppo.hparams.entropy_coef",
    ("miniature/serve.py", "--seed", "seed"): "the stand-in vLLM server's own sampling seed, not a workflow setting",
    ("miniature/serve.py", "__init__", "seed"): "as --seed",
    ("miniature/serve.py", "make_server", "seed"): "as --seed",
    ("miniature/serve.py", "start", "seed"): "as --seed",
    ("miniature/serve.py", ".get", "n"): "the OpenAI API's default of a request field (one choice)",
    ("miniature/serve.py", ".get", "temperature"): "the OpenAI API's default of a request field (1.0)",
}

# Known repeats not removed yet: each must go, not grow.
PENDING: dict[tuple[str, str, str], str] = {}


def setting_defaults() -> dict[str, list]:
    """Every setting name -> the scalar defaults it has in some section (bools and None left out)."""
    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)

    out: dict[str, list] = {}
    for cls in subclasses(Section):
        for f in dataclasses.fields(cls):
            d = f.default
            if d is not dataclasses.MISSING and d is not None and not isinstance(d, bool) \
                    and isinstance(d, int | float | str):
                out.setdefault(f.name, []).append(d)
    return out


def _repeats(value, defaults: list) -> bool:
    """A literal repeats a setting when it is a number where the setting is a number (a drifted copy is
    still a copy), or the very string the setting defaults to."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return any(isinstance(d, int | float) for d in defaults)
    return isinstance(value, str) and value in defaults


def find_repeats(source: str, settings: dict[str, list]) -> list[tuple[str, str, int]]:
    """(function or flag, parameter, line) of every literal default that repeats a setting."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults)) + \
                [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, d in pairs:
                if isinstance(d, ast.Constant) and arg.arg in settings and _repeats(d.value, settings[arg.arg]):
                    hits.append((node.name, arg.arg, node.lineno))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "add_argument":
                flags = [x.value for x in node.args if isinstance(x, ast.Constant) and str(x.value).startswith("--")]
                dest = flags[0][2:].replace("-", "_") if flags else None
                for kw in node.keywords:
                    if kw.arg == "default" and isinstance(kw.value, ast.Constant) and dest in settings \
                            and _repeats(kw.value.value, settings[dest]):
                        hits.append((flags[0], dest, node.lineno))
            elif node.func.attr == "get" and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[1], ast.Constant) and node.args[0].value in settings \
                    and _repeats(node.args[1].value, settings[node.args[0].value]):
                hits.append((".get", node.args[0].value, node.lineno))
    return hits


def _exempt(rel: str, fn: str, name: str) -> bool:
    return any((f, g, p) in table for table in (ALLOWED, PENDING)
               for f, g, p in [(rel, fn, name), (rel, "*", name), (rel, "*", "*")])


def test_no_literal_repeats_a_setting_in_the_package():
    settings = setting_defaults()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for fn, name, line in find_repeats(path.read_text(), settings):
            if not _exempt(rel, fn, name):
                found.append(f"{rel}:{line} {fn}({name}=...) repeats the default of setting {name!r}; "
                             "use config.default_of or take the configured value")
    assert not found, "\n".join(found)


def test_rules_pass_no_literal_setting_values():
    settings = setting_defaults()
    flag = re.compile(r"--([a-z][a-z0-9-]*)[ =]+([0-9][0-9.e-]*)\b")
    found = [f"{p.name}: --{m.group(1)} {m.group(2)}" for p in sorted((ROOT / "workflow" / "rules").glob("*.smk"))
             for m in flag.finditer(p.read_text()) if m.group(1).replace("-", "_") in settings]
    assert not found, found


def test_planted_repeats_are_found():
    settings = {"batch_size": [64], "label": ["toxic"], "seed": [0]}
    src = '''
def score(texts, batch_size=32, label="toxic", split="train", greedy=True):
    return task.get("batch_size", 8), task.get("label", "other")

def cli(p):
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--root", default=".")
    p.add_argument("--seed", type=int, required=True)
'''
    assert sorted(find_repeats(src, settings)) == [("--batch-size", "batch_size", 6), (".get", "batch_size", 3),
                                                   ("score", "batch_size", 2), ("score", "label", 2)]
    clean = 'def score(texts, batch_size=default_of(C, "batch_size"), label=None):\n    return texts\n'
    assert find_repeats(clean, settings) == []


def test_exemptions_name_real_parameters_and_give_reasons():
    settings = setting_defaults()
    for (rel, fn, name), reason in ALLOWED.items():
        src = (PACKAGE / rel).read_text()
        assert reason and (fn, name) in {(f, n) for f, n, _ in find_repeats(src, settings)}, (rel, fn, name)
    for (rel, _, _), reason in PENDING.items():
        assert reason and (PACKAGE / rel).is_file(), rel


def test_default_of_reads_the_dataclass():
    from rlhf_pipeline.workflow_config import GoldEvalConfig, WorkflowConfig

    assert default_of(GoldEvalConfig, "batch_size") == GoldEvalConfig().batch_size
    assert default_of(WorkflowConfig, "gold_eval") == GoldEvalConfig()
