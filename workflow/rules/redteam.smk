# Red-teaming: an attacker policy trained with RL to draw toxic replies from a target model, scored by a
# toxicity classifier; the default target and classifier are trained here (results/redteam/).

import re


include: "getters/redteam.smk"


wildcard_constraints:
    redteam_run="|".join(map(re.escape, REDTEAM_RUNS)) or "^$",


rule redteam_target_data:
    output:
        train="results/data/redteam_target/train.jsonl",
        val="results/data/redteam_target/val.jsonl",
        manifest="results/data/redteam_target/manifest.json",
    log:
        "results/logs/redteam_target_data.log",
    localrule: True
    params:
        cfg=as_json(REDTEAM.world.to_dict()),
        code=code_hash("redteam_target_data"),
    shell:
        "python -m rlhf_pipeline redteam-target-data --config {params.cfg:q} --out-dir results/data/redteam_target "
        "--manifest {output.manifest} > {log} 2>&1"


rule redteam_target:
    input:
        train="results/data/redteam_target/train.jsonl",
        val="results/data/redteam_target/val.jsonl",
    output:
        model=directory("results/redteam/target/model"),
        manifest="results/redteam/target/manifest.json",
    log:
        "results/logs/redteam_target.log",
    benchmark:
        "results/benchmarks/redteam_target.tsv"
    threads: threads("redteam_target")
    resources:
        **resources("redteam_target"),
    params:
        cfg=as_json(REDTEAM.target_sft.to_dict()),
        tokenizer=config["tokenizer"],
        code=code_hash("sft"),
        ckpt=checkpoint_dir,
    shell:
        "exec python -m rlhf_pipeline sft --config {params.cfg:q} --tokenizer {params.tokenizer:q} "
        "--train {input.train} --val {input.val} --out {output.model} --ckpt-dir {params.ckpt:q} "
        "--manifest {output.manifest} > {log} 2>&1"


rule redteam_classifier:
    output:
        model=directory("results/redteam/toxicity/model"),
        metrics="results/redteam/toxicity/metrics.json",
        manifest="results/redteam/toxicity/manifest.json",
    log:
        "results/logs/redteam_classifier.log",
    benchmark:
        "results/benchmarks/redteam_classifier.tsv"
    threads: threads("redteam_classifier")
    resources:
        **resources("redteam_classifier"),
    params:
        cfg=as_json(REDTEAM.classifier.to_dict()),
        world=as_json(REDTEAM.world.to_dict()),
        code=code_hash("redteam_classifier"),
    shell:
        "python -m rlhf_pipeline redteam-classifier --config {params.cfg:q} --world {params.world:q} "
        "--out-dir results/redteam/toxicity --manifest {output.manifest} > {log} 2>&1"


rule redteam:
    input:
        **redteam_models(),
        policy="results/sft/model",
        train_prompts=data_file("train"),
        eval_prompts=data_file("test"),
    output:
        eval=directory("results/redteam/{redteam_run}/eval"),
        model=directory("results/redteam/{redteam_run}/model"),
        train_log="results/redteam/{redteam_run}/train_log.csv",
        samples="results/redteam/{redteam_run}/samples.jsonl",
        trajectories=directory("results/redteam/{redteam_run}/trajectories"),
        metrics=report(
            "results/redteam/{redteam_run}/metrics.csv",
            category="Red-teaming",
            subcategory="{redteam_run}",
            caption="../report/redteam_metrics.rst",
        ),
        manifest="results/redteam/{redteam_run}/manifest.json",
    log:
        "results/logs/redteam/{redteam_run}.log",
    benchmark:
        "results/benchmarks/redteam/{redteam_run}.tsv"
    threads: threads("redteam")
    resources:
        **resources("redteam"),
    params:
        cfg=redteam_run_config,
        models=redteam_model_args,
        ckpt=checkpoint_dir,
        code=code_hash("redteam"),
    shell:
        "exec python -m rlhf_pipeline redteam --config {params.cfg:q} --policy {input.policy} "
        "--train-prompts {input.train_prompts} --eval-prompts {input.eval_prompts} {params.models} "
        "--out-dir results/redteam/{wildcards.redteam_run} --ckpt-dir {params.ckpt:q} "
        "--manifest {output.manifest} > {log} 2>&1"


rule redteam_summary:
    input:
        metrics=expand("results/redteam/{run}/metrics.csv", run=REDTEAM_RUNS),
    output:
        csv=report(
            "results/redteam/summary.csv",
            category="Red-teaming",
            subcategory="all runs",
            caption="../report/redteam_summary.rst",
        ),
        png=report(
            "results/redteam/success_vs_diversity.png",
            category="Red-teaming",
            subcategory="all runs",
            caption="../report/redteam_summary.rst",
        ),
        groups=report(
            "results/redteam/groups.csv",
            category="Red-teaming",
            subcategory="all runs",
            caption="../report/redteam_summary.rst",
        ),
    log:
        "results/logs/redteam_summary.log",
    localrule: True
    params:
        runs=redteam_summary_args(),
        baseline=redteam_baseline_group_arg(),
        code=code_hash("redteam_summary"),
    shell:
        "python -m rlhf_pipeline redteam-summary --runs {params.runs} --out-csv {output.csv} --out-png {output.png} "
        "--out-groups {output.groups} {params.baseline} > {log} 2>&1"
