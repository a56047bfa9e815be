"""The documentation stays true to the workflow: the settings reference in config/README.md is the one
generated from the config dataclasses, every rule of the workflow is documented on exactly one docs page
(with what it reads, writes, its CLI stage, library function and test), the README stays a short map that
starts with the two commands, and every link and figure in README.md, config/README.md and docs/ resolves."""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from pathlib import Path

import pytest

from rlhf_pipeline.config import Section
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.settings_doc import (
    BEGIN,
    END,
    between_markers,
    render_settings_reference,
    update_settings_reference,
)
from rlhf_pipeline.workflow_config import WorkflowConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CONFIG_README = ROOT / "config" / "README.md"
DOCS = ROOT / "docs"
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
REGENERATE = "python -m rlhf_pipeline settings-reference --write config/README.md"

# The fields every rule's section on its family page gives, as `- **field**: ...` lines.
RULE_FIELDS = ("rule file", "reads", "writes", "CLI stage", "library", "test")


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def markdown_files() -> list[Path]:
    return [README, CONFIG_README, *pages()]


# --- the settings reference ------------------------------------------------------------------------------------

def test_settings_reference_in_config_readme_is_generated_from_the_dataclasses():
    assert between_markers(CONFIG_README.read_text()) == render_settings_reference(), (
        f"config/README.md's settings reference is stale: run `{REGENERATE}`")


def _leaf_settings(cls: type, prefix: str = "") -> list[str]:
    """Every plain setting of ``cls`` by walking the dataclasses (not the schema the reference is rendered
    from); a named collection (``dict[str, Section]``) is a setting and so is each field of its entries."""
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        if len(inner) == 1 and isinstance(inner[0], type) and issubclass(inner[0], Section):
            out += _leaf_settings(inner[0], f"{prefix}{f.name}.")
            continue
        out.append(prefix + f.name)
        if typing.get_origin(tp) is dict:
            entry = typing.get_args(tp)[1]
            if isinstance(entry, type) and issubclass(entry, Section):
                out += _leaf_settings(entry, f"{prefix}{f.name}.<name>.")
    return out


def test_settings_reference_has_one_row_per_setting_under_its_section():
    text = render_settings_reference()
    rows = []
    section = None
    for line in text.splitlines():
        if line.startswith("### "):
            section = line[4:].strip("`") if line != "### top level" else ""
        elif line.startswith("| `"):
            key = line.split("`")[1]
            rows.append(f"{section}.{key}" if section else key)
    assert sorted(rows) == sorted(_leaf_settings(WorkflowConfig))


def test_update_settings_reference_rewrites_only_between_the_markers(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(f"# title\n\nbefore\n{BEGIN}\nstale text\n{END}\nafter\n")
    assert update_settings_reference(path) is True
    text = path.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert between_markers(text) == render_settings_reference()
    assert update_settings_reference(path) is False
    assert path.read_text() == text


@pytest.mark.parametrize("text", ["no markers\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_update_settings_reference_refuses_a_file_without_one_marker_pair(tmp_path, text):
    path = tmp_path / "README.md"
    path.write_text(text)
    with pytest.raises(PipelineError, match="settings-reference:begin"):
        update_settings_reference(path)
    assert path.read_text() == text


# --- every rule on exactly one page ------------------------------------------------------------------------

RULE_RE = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
USE_RULE_RE = re.compile(r"^use\s+rule\s+(\w+)\s+(?:from\s+\w+\s+)?as\s+(\w+)", re.M)
STAGE_RE = re.compile(r"python -m rlhf_pipeline ([a-z][a-z0-9-]*)")
TOP_LEVEL_RE = re.compile(r"^\S", re.M)  # the first line after a rule's body (its body is indented)
HEADING_RE = re.compile(r"^(#{2,6}) `(\w+)`", re.M)


def rule_files() -> dict[str, str]:
    """Every rule of the workflow -> the file (relative to the repo root) that defines it."""
    out = {}
    for path in RULE_FILES:
        text = path.read_text()
        for name in [*RULE_RE.findall(text), *(m.group(2) for m in USE_RULE_RE.finditer(text))]:
            out[name] = str(path.relative_to(ROOT))
    return out


def workflow_rules() -> dict[str, str | None]:
    """Every rule of the workflow -> the CLI stage its shell command runs (None: it runs none), read from
    the rule files. A ``use rule A as B`` rule runs A's stage unless it gives its own shell command."""
    blocks: dict[str, str] = {}
    parents: dict[str, str] = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = sorted([(m.start(), m.group(1)) for m in RULE_RE.finditer(text)]
                        + [(m.start(), m.group(2)) for m in USE_RULE_RE.finditer(text)])
        for m in USE_RULE_RE.finditer(text):
            parents[m.group(2)] = m.group(1)
        for start, name in starts:
            assert name not in blocks, f"rule {name} defined twice"
            body = TOP_LEVEL_RE.search(text, text.index("\n", start) + 1 if "\n" in text[start:] else len(text))
            blocks[name] = text[start:body.start() if body else len(text)]
    stages = {}
    for name in blocks:
        own, found = name, STAGE_RE.findall(blocks[name])
        while not found and own in parents:
            own = parents[own]
            found = STAGE_RE.findall(blocks[own])
        assert len(set(found)) <= 1, f"rule {name} runs several CLI stages: {found}"
        stages[name] = found[0] if found else None
    return stages


def rule_sections() -> dict[str, list[tuple[Path, str]]]:
    """Rule name -> [(page, the text of its section)] for every ``## `name` `` heading on a docs page."""
    out: dict[str, list[tuple[Path, str]]] = {}
    for page in pages():
        text = _without_code_blocks(page.read_text())
        heads = list(HEADING_RE.finditer(text))
        for m in heads:
            level = len(m.group(1))
            end = next((h.start() for h in re.finditer(r"^(#{1,6}) ", text[m.end():], re.M)
                        if len(h.group(1)) <= level), len(text) - m.end())
            out.setdefault(m.group(2), []).append((page, text[m.start():m.end() + end]))
    return out


def test_the_rule_files_parse_to_the_workflow_rules():
    rules = workflow_rules()
    # a few fixed points, so a parser that finds nothing cannot pass the tests below
    assert {"prepare_data", "ppo", "gold_eval", "debate_chunk", "redteam", "ad_rl", "build_image", "all"} <= set(rules)
    assert rules["ppo"] == "ppo" and rules["ad_history"] == "ppo" and rules["redteam_target"] == "sft"
    assert rules["build_image"] is None and rules["all"] is None


def test_every_rule_is_documented_on_exactly_one_page():
    rules, sections = workflow_rules(), rule_sections()
    missing = sorted(set(rules) - set(sections))
    assert not missing, f"rules without a `### \\`name\\`` section on a docs/ page: {missing}"
    twice = {r: [str(p.relative_to(ROOT)) for p, _ in s] for r, s in sections.items() if r in rules and len(s) > 1}
    assert not twice, f"rules documented on more than one page (or twice on one): {twice}"


def test_every_documented_rule_exists():
    rules = workflow_rules()
    stale = sorted(name for name in rule_sections() if name not in rules and not _is_other_name(name))
    assert not stale, f"docs/ has rule sections for rules the workflow does not have: {stale}"


def _is_other_name(name: str) -> bool:
    """Headings in backticks that are not rule names: file names and config keys are written with a dot or
    a slash; every ``### `name` `` heading with neither must be a rule."""
    return "." in name or "/" in name


def _field(section: str, name: str) -> str | None:
    m = re.search(rf"^- \*\*{re.escape(name)}\*\*:(.*)$", section, re.M)
    return m.group(1).strip() if m else None


def test_every_rule_section_gives_reads_writes_stage_library_and_test():
    rules, sections = workflow_rules(), rule_sections()
    for name, stage in rules.items():
        for page, section in sections.get(name, []):
            where = f"{page.relative_to(ROOT)} rule `{name}`"
            for field in RULE_FIELDS:
                assert _field(section, field), f"{where}: no `- **{field}**: ...` line"
            assert _field(section, "rule file") == f"`{rule_files()[name]}`", (
                f"{where}: defined in {rule_files()[name]}; the page says {_field(section, 'rule file')}")
            documented = _field(section, "CLI stage")
            if stage is None:
                assert documented.startswith("none"), f"{where}: runs no CLI stage; the page says {documented}"
            else:
                assert documented.startswith(f"`{stage}`"), f"{where}: runs `{stage}`; the page says {documented}"
            assert re.search(r"\(\.\./(?:\.\./)?tests/test_\w+\.py\)", _field(section, "test")), (
                f"{where}: the test line links no tests/test_*.py file")


def test_every_library_function_a_rule_section_names_exists():
    names = set()
    for sections in rule_sections().values():
        for _, section in sections:
            names.update(re.findall(r"`(rlhf_pipeline(?:\.\w+)+)`", _field(section, "library") or ""))
    assert len(names) > 20, names
    for dotted in sorted(names):
        module, _, attr = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), f"docs name {dotted}, which does not exist"


# --- the README ----------------------------------------------------------------------------------------------

def test_readme_is_a_short_map_that_starts_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; keep it at most 150 (details go to docs/)"
    block = README.read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands[:2] == ["make demo", "make test"], f"README's first commands are {commands[:2]}"
    assert README.read_text().index("```bash") < README.read_text().index("\n## "), "the commands come first"


def test_no_docs_page_or_figure_is_git_ignored():
    """A page git ignores (``results/`` matches any folder of that name) would never reach the repo."""
    import subprocess

    files = [str(p.relative_to(ROOT)) for p in [*pages(), *DOCS.rglob("*.png")]]
    r = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True,
                       check=False)
    if r.returncode == 128:
        pytest.skip(f"not a git checkout: {r.stderr.strip()}")
    assert not r.stdout.strip(), f"git ignores {r.stdout.split()}"


def test_readme_map_names_every_rule_once():
    text = README.read_text().split("## Map", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    named = [name for row in rows for name in re.findall(r"`(\w+)`", row[2])]
    assert sorted(named) == sorted(workflow_rules()), "README's map: the rules column must list every rule once"


def test_readme_points_to_every_docs_page():
    text = README.read_text()
    linked = {(ROOT / t).resolve() for t in _links(text)}
    unlinked = [str(p.relative_to(ROOT)) for p in pages() if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


# --- links and figures ---------------------------------------------------------------------------------------

LINK_RE = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _links(text: str) -> list[str]:
    """Relative link targets (no URL, no pure anchor) of a markdown text, outside code blocks and spans."""
    text = re.sub(r"`[^`\n]*`", "", _without_code_blocks(text))
    return [t for t in LINK_RE.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file."""
    out, seen = set(), {}
    for m in re.finditer(r"^#{1,6} (.+)$", _without_code_blocks(path.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_figure_resolves(path):
    broken = []
    for target in _links(path.read_text()):
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve()
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_every_figure_in_docs_is_shown_on_a_page():
    shown = {(p.parent / t).resolve() for p in markdown_files() for t in _links(p.read_text())}
    unused = [str(f.relative_to(ROOT)) for f in sorted(DOCS.rglob("*.png")) if f.resolve() not in shown]
    assert not unused, f"figures no page shows: {unused}"


def test_every_figure_on_a_page_says_which_command_makes_it():
    """The paragraph after a figure is ``Reproduce: `<command>` ...``, the command that makes it."""
    figures = 0
    for page in [README, *pages()]:
        text = page.read_text()
        for m in re.finditer(r"^\s*!\[[^\]]*\]\(([^)]+)\)\n", text, re.M):
            figures += 1
            after = text[m.end():].lstrip().split("\n", 1)[0]
            assert re.match(r"Reproduce: `(snakemake|python|make) [^`]+`", after), (
                f"{page.relative_to(ROOT)}: figure {m.group(1)} is not followed by `Reproduce: \\`<command>\\``")
    assert figures >= len(list(DOCS.rglob("*.png")))


# --- the source map ---------------------------------------------------------------------------------------------

def test_development_source_map_names_every_top_level_module_and_package():
    text = (DOCS / "development.md").read_text()
    package = ROOT / "src" / "rlhf_pipeline"
    entries = [p.name + "/" if p.is_dir() else p.name for p in sorted(package.iterdir())
               if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")]
    missing = [e for e in entries if f"`{e}`" not in text]
    assert not missing, f"docs/development.md's source map does not name {missing}"
