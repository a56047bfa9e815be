# Reward models: the gold RM that stands in for human judgement, the preference pairs it labels, and the proxy
# RM members trained on them (results/gold_rm/, results/preferences/, results/rm/seed{seed}/).


include: "getters/reward.smk"


wildcard_constraints:
    seed=r"\d+",


rule gold_rm_train:
    output:
        model=directory("results/gold_rm/model"),
        metrics="results/gold_rm/metrics.json",
        manifest="results/gold_rm/manifest.json",
    log:
        "results/logs/gold_rm_train.log",
    benchmark:
        "results/benchmarks/gold_rm_train.tsv"
    threads: threads("gold_rm_train")
    resources:
        **resources("gold_rm_train"),
    params:
        cfg=section("gold_rm"),
        code=code_hash("gold_rm_train"),
    shell:
        "python -m rlhf_pipeline gold-rm-train --config {params.cfg:q} --out-dir results/gold_rm "
        "--manifest {output.manifest} > {log} 2>&1"


rule label_preferences:
    input:
        labellers=preference_labellers(),
        train_prompts=data_file("train"),
        val_prompts=data_file("val"),
    output:
        train="results/preferences/train.jsonl",
        val="results/preferences/val.jsonl",
        manifest="results/preferences/manifest.json",
    log:
        "results/logs/label_preferences.log",
    benchmark:
        "results/benchmarks/label_preferences.tsv"
    threads: threads("label_preferences")
    resources:
        **resources("label_preferences"),
    params:
        cfg=section("preferences"),
        labellers=labeller_args,
        code=code_hash("label_preferences"),
    shell:
        "python -m rlhf_pipeline label-preferences --config {params.cfg:q} {params.labellers} "
        "--train-prompts {input.train_prompts} --val-prompts {input.val_prompts} "
        "--out-train {output.train} --out-val {output.val} --manifest {output.manifest} > {log} 2>&1"


rule rm_train:
    input:
        train="results/preferences/train.jsonl",
        val="results/preferences/val.jsonl",
        sft=rm_sft_input,
    output:
        model=directory("results/rm/seed{seed}/model"),
        metrics="results/rm/seed{seed}/metrics.json",
        manifest="results/rm/seed{seed}/manifest.json",
    log:
        "results/logs/rm_train/seed{seed}.log",
    benchmark:
        "results/benchmarks/rm_train/seed{seed}.tsv"
    threads: threads("rm_train")
    resources:
        **resources("rm_train"),
    params:
        # the member's own settings: adding a member, or changing another member, trains only that one
        cfg=rm_member_config,
        code=code_hash("rm_train"),
        ckpt=checkpoint_dir,
        sft=sft_model_arg,
    shell:
        "exec python -m rlhf_pipeline rm-train --config {params.cfg:q} --seed {wildcards.seed} "
        "--prefs-train {input.train} --prefs-val {input.val} {params.sft} "
        "--out-dir results/rm/seed{wildcards.seed} --ckpt-dir {params.ckpt:q} "
        "--manifest {output.manifest} > {log} 2>&1"


rule rm_summary:
    input:
        metrics=expand("results/rm/seed{seed}/metrics.json", seed=config["rm"]["seeds"]),
    output:
        csv=report("results/rm/summary.csv", category="Reward models", caption="../report/rm_summary.rst"),
        png=report("results/rm/summary.png", category="Reward models", caption="../report/rm_summary.rst"),
    log:
        "results/logs/rm_summary.log",
    localrule: True
    params:
        code=code_hash("rm_summary"),
    shell:
        "python -m rlhf_pipeline rm-summary --metrics {input.metrics} --out-csv {output.csv} --out-png {output.png} > {log} 2>&1"
