rule ppo:
    input:
        policy="results/sft/model",
        rms=ppo_rm_dirs,
        train_prompts=data_file("train"),
        eval_prompts=data_file("test"),
        image=image_input(),
    output:
        eval=directory("results/ppo/{run}/eval"),
        model=directory("results/ppo/{run}/model"),
        train_log="results/ppo/{run}/train_log.csv",
        manifest="results/ppo/{run}/manifest.json",
    params:
        cfg=ppo_settings,
        objective=lambda wc: PPO_RUNS[wc.run].objective,
        uwo_weight=lambda wc: PPO_RUNS[wc.run].uwo_weight,
        standardize="" if config["ppo"]["standardize"] else "--no-standardize",
        n_eval=config["ppo"]["n_eval_prompts"],
        reward_batch_size=config["ppo"]["reward_batch_size"],
        ckpt=ppo_checkpoint_dir,
        code=code_hash("ppo"),
    log:
        "results/logs/ppo/{run}.log",
    benchmark:
        "results/benchmarks/ppo/{run}.tsv"
    threads: threads("ppo")
    resources:
        **resources("ppo"),
    container:
        container_image()
    shell:
        "exec {CLI} ppo --config {params.cfg:q} --policy {input.policy} --rm-dirs {input.rms} "
        "--objective {params.objective} --uwo-weight {params.uwo_weight} {params.standardize} "
        "--reward-batch-size {params.reward_batch_size} "
        "--train-prompts {input.train_prompts} --eval-prompts {input.eval_prompts} "
        "--n-eval-prompts {params.n_eval} --out-dir results/ppo/{wildcards.run} "
        "--ckpt-dir {params.ckpt} --manifest {output.manifest} > {log} 2>&1"
