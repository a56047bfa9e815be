"""The workflow's layout (Snakefile, workflow/rules/*.smk, workflow/report/): each family's rule file holds its
own getters and common.smk only what is shared; one function keys every checkpoint directory, from the rule
graph; every reported output has a caption and a category. Read through Snakemake's API on the real rules,
planned (never run) in a temporary working directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
# Every family's final outputs on the tiny config: the DAG holds every training rule.
TARGETS = ["results/plots/overoptimization.png", "results/rm/summary.csv", "results/redteam/summary.csv",
           "results/ad/lm/metrics.csv", "results/ad/rl/metrics.csv", "results/debate/strength/judge_accuracy.csv",
           "results/debate/tiny/rejudge/coin/judge.csv"]

# Parses the workflow with --configfile, plans TARGETS, and prints one JSON line: every rule (reported outputs,
# shell, whether it keys a checkpoint directory) and every planned job of such a rule with its checkpoint
# directory, the jobs the DAG puts upstream of it and the jobs the key covers (the workflow's upstream_jobs).
PLAN_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    snakefile, configfile, *targets = sys.argv[1:]
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        wf = api.workflow(resource_settings=ResourceSettings(), snakefile=Path(snakefile), workdir=Path.cwd(),
                          config_settings=ConfigSettings(configfiles=[Path(configfile)]))
        wf.dag(dag_settings=DAGSettings(targets=set(targets)))
        workflow = wf._workflow
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)  # as printdag() does
        workflow._build_dag()
        g, dag = workflow.globals, workflow.dag

        def keyed(rule):
            return any(p is g["checkpoint_dir"] for p in rule.params)

        def upstream(job):
            seen, todo = set(), [job]
            while todo:
                for dep in dag.dependencies[todo.pop()]:
                    if dep not in seen:
                        seen.add(dep)
                        todo.append(dep)
            return seen

        def name(rule_name, wildcards):
            return rule_name + "".join(f" {k}={v}" for k, v in sorted(wildcards.items()))

        rules = {r.name: {"keyed": keyed(r), "shell": r.shellcmd,
                          "reported": {str(f): {"caption": f.flags["report"].caption and
                                                str(f.flags["report"].caption.get_path_or_uri(secret_free=True)),
                                                "category": f.flags["report"].category}
                                       for f in r.output if "report" in getattr(f, "flags", {})}}
                 for r in workflow.rules}
        jobs = {}
        for job in dag.jobs:
            if keyed(job.rule):
                jobs[name(job.rule.name, job.wildcards_dict)] = {
                    "ckpt": g["checkpoint_dir"](job.wildcards, job.input, job.output),
                    "dag": sorted(name(j.rule.name, j.wildcards_dict) for j in upstream(job)
                                  if j.rule.name != "build_image"),
                    "key": sorted(name(r, w) for r, w, _ in g["upstream_jobs"](job.rule, job.wildcards_dict))}
    print("PLAN=" + json.dumps({"rules": rules, "jobs": jobs, "report_text": str(workflow.report_text)}))
""")


def plan(workdir: Path, configfile: Path) -> dict:
    run = subprocess.run([sys.executable, "-c", PLAN_SCRIPT, str(ROOT / "Snakefile"), str(configfile), *TARGETS],
                         cwd=workdir, capture_output=True, text=True, timeout=300)
    line = next((x for x in run.stdout.splitlines() if x.startswith("PLAN=")), None)
    assert line, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(line[len("PLAN="):])


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory) -> dict:
    return plan(tmp_path_factory.mktemp("plan"), TINY)


# --- the checkpoint key ------------------------------------------------------------------------------------


def test_every_training_rule_keys_its_checkpoints_with_the_one_function(tiny_plan):
    keyed = {name for name, r in tiny_plan["rules"].items() if r["keyed"]}
    assert keyed == {"sft", "rm_train", "ppo", "ad_history", "ad_lm", "ad_rl", "redteam_target", "redteam",
                     "debate_chunk", "debate_sft", "debate_dpo", "debate_ppo"}
    ckpt = [job["ckpt"] for job in tiny_plan["jobs"].values()]
    assert len(ckpt) == len(set(ckpt)) == len(tiny_plan["jobs"]) > 20  # one directory per job
    assert all(re.fullmatch(r"results/\.checkpoints/\w+(/[\w/]+)?/[0-9a-f]{12}", c) for c in ckpt), ckpt
    # no other function hashes a checkpoint key
    hashing = [f"{p.relative_to(RULES)}: {line.strip()}" for p in sorted(RULES.rglob("*.smk"))
               for line in p.read_text().splitlines() if "hashlib.sha256" in line]
    assert [h.split(":")[0] for h in hashing] == ["common.smk", "getters/container.smk"], hashing  # + the image's


def test_checkpoint_key_covers_every_job_upstream_in_the_rule_graph(tiny_plan):
    """What the key covers is what the real DAG puts upstream: nothing a job trains on is left out."""
    jobs = tiny_plan["jobs"]
    for name, job in jobs.items():
        missing = sorted(set(job["dag"]) - set(job["key"]))
        assert not missing, f"{name}: the checkpoint key leaves out upstream jobs {missing}"
        assert job["key"] == job["dag"], f"{name}: the key covers jobs that are not upstream"
    # the real graph, not a copy: what the old hand-kept table left out is in
    assert {"rm_train seed=1", "rm_train seed=2", "label_preferences", "sft", "prepare_data dataset=synthetic",
            "gold_rm_train"} == set(jobs["ppo run=ensemble_wco"]["key"])
    assert {"redteam_target", "redteam_classifier", "redteam_target_data"} <= set(
        jobs["redteam redteam_run=plain_s1"]["key"])
    assert {"debate_dpo iteration=1", "debate_dpo_pairs iteration=1", "debate_sft"} <= set(
        jobs["debate_dpo iteration=2"]["key"])
    assert {"ppo run=seed1", "ad_history i=0", "ad_data"} <= set(jobs["ad_lm admodel=lm"]["key"])
    assert jobs["sft"]["key"] == ["prepare_data dataset=synthetic"]


def test_checkpoint_key_changes_with_what_is_upstream_and_nothing_else(tiny_plan, tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["rm"]["learning_rate"] = 1e-3
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    before, after = tiny_plan["jobs"], plan(tmp_path, edited)["jobs"]
    assert before.keys() == after.keys()
    changed = {name for name in before if before[name]["ckpt"] != after[name]["ckpt"]}
    downstream_of_rms = {name for name, job in before.items()
                         if name.startswith("rm_train") or any(u.startswith("rm_train") for u in job["key"])}
    assert changed == downstream_of_rms
    assert {"rm_train seed=1", "ppo run=seed1", "ad_history i=0", "ad_lm admodel=ed", "ad_rl"} <= changed
    assert not changed & {"sft", "redteam_target", "debate_sft"}


# --- rules, getters, use rule ------------------------------------------------------------------------------


def defined_functions(path: Path) -> list[str]:
    return re.findall(r"^def (\w+)\(", path.read_text(), re.M)


def test_common_is_small_and_each_getter_has_one_home():
    common = RULES / "common.smk"
    assert len(common.read_text().splitlines()) < 150
    homes: dict[str, list[str]] = {}
    for path in sorted(RULES.rglob("*.smk")):
        for fn in defined_functions(path):
            homes.setdefault(fn, []).append(str(path.relative_to(RULES)))
    assert {fn: files for fn, files in homes.items() if len(files) > 1} == {}
    # what common keeps is shared: config, code hashes, JSON, resources, the checkpoint key
    assert set(defined_functions(common)) == {
        "deploys_with", "code_hash", "as_json", "section", "_configured_resources", "resources", "threads",
        "_producers", "_job", "upstream_jobs", "_checkpoint_dir", "checkpoint_dir"}
    # a family's getters sit beside its rules: getters/<family>.smk, included by <family>.smk and by no other
    getters = sorted(p.stem for p in (RULES / "getters").glob("*.smk"))
    assert len(getters) >= 8
    for family in getters:
        includers = [p.name for p in RULES.glob("*.smk") if f'include: "getters/{family}.smk"' in p.read_text()]
        assert includers == [f"{family}.smk"], (family, includers)
        assert not re.search(r"^(rule|use rule) ", (RULES / "getters" / f"{family}.smk").read_text(), re.M)


def test_ad_history_is_the_ppo_rule_with_its_own_paths(tiny_plan):
    rules = tiny_plan["rules"]
    assert rules["ad_history"]["shell"] == rules["ppo"]["shell"]
    assert "use rule ppo as ad_history with:" in (RULES / "ad.smk").read_text()


# --- the report ------------------------------------------------------------------------------------------------


def test_every_reported_output_has_a_caption_and_a_category(tiny_plan):
    reported = {(rule, path): r for rule, info in tiny_plan["rules"].items() for path, r in info["reported"].items()}
    assert len(reported) >= 25
    for (rule, path), r in reported.items():
        assert r["category"], f"{rule}: {path} is reported without a category"
        assert r["caption"] and Path(r["caption"]).is_file(), f"{rule}: {path} has no caption file ({r['caption']})"
    families = {r["category"] for r in reported.values()}
    assert {"Debate", "Red-teaming", "Algorithm distillation", "PPO", "Reward models"} <= families
    assert Path(tiny_plan["report_text"]) == ROOT / "workflow" / "report" / "workflow.rst"
    captions = {Path(r["caption"]).name for r in reported.values()} | {"workflow.rst"}
    assert captions == {p.name for p in (ROOT / "workflow" / "report").glob("*.rst")}  # no caption left unused
