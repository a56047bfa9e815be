# Algorithm distillation: PPO learning histories (the configured runs and a sweep of sampled hyperparameters)
# become contexts a language model learns to continue, in-context; evaluated on held-out histories, and
# trained further with RL (results/ad/).


include: "getters/ad.smk"


wildcard_constraints:
    i="|".join(AD_SWEEP) or "^$",
    admodel="lm|ed",


# Sweep history i: a PPO run (the ppo stage) with sampled hyperparameters, written under results/ad/histories/.
use rule ppo as ad_history with:
    input:
        # ppo's inputs (Snakemake replaces a directive as a whole), with the RM members of the history's config
        **dict(rules.ppo.input.items(), rms=ad_history_rm_dirs),
    output:
        eval=directory("results/ad/histories/{i}/eval"),
        model=directory("results/ad/histories/{i}/model"),
        train_log="results/ad/histories/{i}/train_log.csv",
        trajectories=directory("results/ad/histories/{i}/trajectories"),
        manifest="results/ad/histories/{i}/manifest.json",
    log:
        "results/logs/ad_history/{i}.log",
    benchmark:
        "results/benchmarks/ad_history/{i}.tsv"
    params:
        cfg=ad_history_config,


rule ad_data:
    input:
        histories=ad_trajectories(AD_HISTORIES),
        policy="results/sft/model",
    output:
        train="results/ad/data/train.jsonl",
        heldout="results/ad/data/heldout.jsonl",
        expert="results/ad/data/expert.jsonl",
        report=report(
            "results/ad/data/report.csv",
            category="Algorithm distillation",
            subcategory="contexts",
            caption="../report/ad_data.rst",
        ),
        tokenizer=directory("results/ad/data/tokenizer"),
        manifest="results/ad/data/manifest.json",
    log:
        "results/logs/ad_data.log",
    benchmark:
        "results/benchmarks/ad_data.tsv"
    threads: 1
    resources:
        **resources("ad_data"),
    params:
        cfg=ad_config,
        histories=ad_named_trajectories(AD_HISTORIES),
        heldout=AD_HELDOUT,
        tokenizer=AD_TOKENIZER,
        code=code_hash("ad_data"),
    shell:
        "python -m rlhf_pipeline ad-data --config {params.cfg:q} --histories {params.histories} "
        "--heldout {params.heldout} --tokenizer {params.tokenizer} --out-dir results/ad/data "
        "--manifest {output.manifest} > {log} 2>&1"


rule ad_lm:
    input:
        contexts=ad_contexts,
        tokenizer="results/ad/data/tokenizer",
    output:
        model=directory("results/ad/{admodel}/model"),
        manifest="results/ad/{admodel}/manifest.json",
    log:
        "results/logs/ad_lm/{admodel}.log",
    benchmark:
        "results/benchmarks/ad_lm/{admodel}.tsv"
    threads: threads("ad_lm")
    resources:
        **resources("ad_lm"),
    params:
        cfg=ad_config,
        ckpt=checkpoint_dir,
        code=code_hash("ad_lm"),
    shell:
        "exec python -m rlhf_pipeline ad-lm --config {params.cfg:q} --contexts {input.contexts} "
        "--tokenizer {input.tokenizer} --out-dir {output.model} --ckpt-dir {params.ckpt:q} "
        "--manifest {output.manifest} > {log} 2>&1"


rule ad_eval:
    input:
        lm="results/ad/lm/model",
        expert="results/ad/ed/model",
        heldout=ad_trajectories(AD_HELDOUT),
        rms=rm_dirs(config["rm"]["seeds"]),
        gold=gold_rm_input(),
        prompts=data_file("test"),
    output:
        metrics=report(
            "results/ad/lm/metrics.csv",
            category="Algorithm distillation",
            subcategory="language model",
            caption="../report/ad_eval.rst",
        ),
        incontext="results/ad/lm/incontext.csv",
        png=report(
            "results/ad/lm/incontext.png",
            category="Algorithm distillation",
            subcategory="language model",
            caption="../report/ad_eval.rst",
        ),
        manifest="results/ad/lm/eval_manifest.json",
    log:
        "results/logs/ad_eval.log",
    benchmark:
        "results/benchmarks/ad_eval.tsv"
    threads: threads("ad_eval")
    resources:
        **resources("ad_eval"),
    params:
        cfg=ad_config,
        heldout=ad_named_trajectories(AD_HELDOUT),
        rms=ad_rm_args(),
        gold=gold_rm_arg,
        alpacafarm=alpacafarm_flag(),
        batch_size=config["gold_eval"]["batch_size"],
        code=code_hash("ad_eval"),
    shell:
        "python -m rlhf_pipeline ad-eval --config {params.cfg:q} --lm {input.lm} --expert {input.expert} "
        "--heldout {params.heldout} --rm-dirs {params.rms} --gold-rm {params.gold:q} {params.alpacafarm} "
        "--batch-size {params.batch_size} --prompts {input.prompts} --out-dir results/ad/lm "
        "--manifest {output.manifest} > {log} 2>&1"


rule ad_rl:
    input:
        histories=ad_trajectories(AD_TRAIN),
        heldout=ad_trajectories(AD_HELDOUT),
        policy="results/sft/model",
    output:
        model=directory("results/ad/rl/model"),
        train_log="results/ad/rl/train_log.csv",
        train_report="results/ad/rl/train_report.csv",
        episodes="results/ad/rl/eval_episodes.csv",
        plot=report(
            "results/ad/rl/metrics.png",
            category="Algorithm distillation",
            subcategory="RL model",
            caption="../report/ad_rl.rst",
        ),
        metrics=report(
            "results/ad/rl/metrics.csv",
            category="Algorithm distillation",
            subcategory="RL model",
            caption="../report/ad_rl.rst",
        ),
        manifest="results/ad/rl/manifest.json",
    log:
        "results/logs/ad_rl.log",
    benchmark:
        "results/benchmarks/ad_rl.tsv"
    threads: threads("ad_rl")
    resources:
        **resources("ad_rl"),
    params:
        cfg=ad_rl_config,
        histories=ad_named_trajectories(AD_TRAIN),
        heldout=ad_named_trajectories(AD_HELDOUT),
        ckpt=checkpoint_dir,
        code=code_hash("ad_rl"),
    shell:
        "exec python -m rlhf_pipeline ad-rl --config {params.cfg:q} --histories {params.histories} "
        "--heldout {params.heldout} --tokenizer {input.policy} --out-dir results/ad/rl "
        "--ckpt-dir {params.ckpt:q} --manifest {output.manifest} > {log} 2>&1"
