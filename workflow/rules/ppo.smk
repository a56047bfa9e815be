# PPO against the proxy RMs: one job per configured run and replicate (results/ppo/{run}/).

import re


include: "getters/ppo.smk"


wildcard_constraints:
    run="|".join(map(re.escape, PPO_RUNS)) or "^$",


rule ppo:
    input:
        policy="results/sft/model",
        rms=ppo_rm_dirs,
        train_prompts=data_file("train"),
        eval_prompts=data_file("test"),
    output:
        eval=directory("results/ppo/{run}/eval"),
        model=directory("results/ppo/{run}/model"),
        train_log="results/ppo/{run}/train_log.csv",
        trajectories=directory("results/ppo/{run}/trajectories"),
        manifest="results/ppo/{run}/manifest.json",
    log:
        "results/logs/ppo/{run}.log",
    benchmark:
        "results/benchmarks/ppo/{run}.tsv"
    threads: threads("ppo")
    resources:
        **resources("ppo"),
    params:
        cfg=ppo_run_config,
        ckpt=checkpoint_dir,
        code=code_hash("ppo"),
        out_dir=run_dir,
    shell:
        "exec python -m rlhf_pipeline ppo --config {params.cfg:q} --policy {input.policy} --rm-dirs {input.rms} "
        "--train-prompts {input.train_prompts} --eval-prompts {input.eval_prompts} "
        "--out-dir {params.out_dir} --ckpt-dir {params.ckpt} --manifest {output.manifest} > {log} 2>&1"
