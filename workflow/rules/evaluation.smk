# What the RLHF chain measures: gold-RM scores of PPO's samples, best-of-n, replicate aggregates, the
# overoptimization fits and figure, and the proxy RMs' diversity (results/ppo/{run}/gold_eval.csv, results/bon/,
# results/plots/, results/rm/diversity.csv).

import re


include: "getters/evaluation.smk"


rule gold_eval:
    input:
        eval="results/ppo/{run}/eval",
        gold=gold_rm_input(),
    output:
        csv=report(
            "results/ppo/{run}/gold_eval.csv", category="PPO", subcategory="{run}", caption="../report/gold_eval.rst"
        ),
        png=report(
            "results/ppo/{run}/gold_vs_kl.png", category="PPO", subcategory="{run}", caption="../report/gold_eval.rst"
        ),
        manifest="results/ppo/{run}/gold_eval_manifest.json",
    log:
        "results/logs/gold_eval/{run}.log",
    benchmark:
        "results/benchmarks/gold_eval/{run}.tsv"
    threads: threads("gold_eval")
    resources:
        **resources("gold_eval"),
    params:
        gold=gold_rm_arg,
        alpacafarm=alpacafarm_flag(),
        batch_size=config["gold_eval"]["batch_size"],
        code=code_hash("gold_eval"),
    shell:
        "python -m rlhf_pipeline gold-eval {input.eval} {params.gold:q} --batch-size {params.batch_size} {params.alpacafarm} "
        "--out {output.csv} --plot {output.png} --manifest {output.manifest} > {log} 2>&1"


rule bon_sample:
    input:
        policy="results/sft/model",
        rms=rm_dirs(config["rm"]["seeds"]),
        gold=gold_rm_input(),
        prompts=data_file("test"),
    output:
        samples="results/bon/samples.jsonl",
        manifest="results/bon/manifest.json",
    log:
        "results/logs/bon_sample.log",
    benchmark:
        "results/benchmarks/bon_sample.tsv"
    threads: threads("bon_sample")
    resources:
        **resources("bon_sample"),
    params:
        cfg=section("bon"),
        seeds=config["rm"]["seeds"],
        gold=gold_rm_arg,
        alpacafarm=alpacafarm_flag(),
        code=code_hash("bon_sample"),
    shell:
        "python -m rlhf_pipeline bon-sample --config {params.cfg:q} --policy {input.policy} --rm-dirs {input.rms} "
        "--member-ids {params.seeds} --gold-rm {params.gold:q} {params.alpacafarm} "
        "--prompts {input.prompts} --out {output.samples} --manifest {output.manifest} > {log} 2>&1"


rule bon:
    input:
        samples="results/bon/samples.jsonl",
    output:
        csv=report("results/bon/{run}/bon.csv", category="Best-of-n", caption="../report/bon.rst"),
    log:
        "results/logs/bon/{run}.log",
    localrule: True
    params:
        ensemble=run_ensemble,
        ns=config["bon"]["ns"],
        standardize="" if config["bon"]["standardize"] else "--no-standardize",
        code=code_hash("bon"),
    shell:
        "python -m rlhf_pipeline bon --samples {input.samples} --ensemble {params.ensemble:q} --ns {params.ns} "
        "{params.standardize} --out {output.csv} > {log} 2>&1"


rule aggregate_replicates:
    input:
        gold=replicate_gold_evals_of,
    output:
        csv=report(
            "results/ppo/{base}/aggregate.csv", category="PPO", subcategory="{base}", caption="../report/aggregate.rst"
        ),
    log:
        "results/logs/aggregate_replicates/{base}.log",
    wildcard_constraints:
        base="|".join(map(re.escape, PPO_BASE_RUNS)) or "^$",
    localrule: True
    params:
        code=code_hash("aggregate_replicates"),
    shell:
        "python -m rlhf_pipeline aggregate-replicates --gold-evals {input.gold} --out {output.csv} > {log} 2>&1"


rule fit_curves:
    input:
        gold=[replicate_gold_evals(run) for run in PPO_BASE_RUNS],
        bon=expand("results/bon/{run}/bon.csv", run=PPO_BASE_RUNS),
    output:
        fits=report("results/plots/fits.csv", category="Overoptimization", caption="../report/fits.rst"),
        equal_kl=report("results/plots/equal_kl.csv", category="Overoptimization", caption="../report/equal_kl.rst"),
    log:
        "results/logs/fit_curves.log",
    localrule: True
    params:
        runs=[f"{run}={','.join(replicate_gold_evals(run))}" for run in PPO_BASE_RUNS],
        bon=[f"{run}=results/bon/{run}/bon.csv" for run in PPO_BASE_RUNS],
        baseline=CFG.ppo.baseline(),
        compare=[f"{run}={','.join(bs)}" for run, bs in CFG.ppo.comparisons().items() if bs],
        code=code_hash("fit_curves"),
    shell:
        "python -m rlhf_pipeline fit-curves --runs {params.runs} --bons {params.bon} --out {output.fits} "
        "--baseline {params.baseline} --compare {params.compare} --equal-kl {output.equal_kl} > {log} 2>&1"


rule rm_diversity:
    input:
        rms=rm_dirs(config["rm"]["seeds"]),
        pairs="results/preferences/val.jsonl",
        evals=[f"results/ppo/{r}/eval" for run in ensemble_runs() for r in CFG.ppo.replicate_names(run)],
        gold=gold_rm_input() if ensemble_runs() else [],
    output:
        report("results/rm/diversity.csv", category="Reward models", caption="../report/diversity.rst"),
    log:
        "results/logs/rm_diversity.log",
    benchmark:
        "results/benchmarks/rm_diversity.tsv"
    threads: threads("rm_diversity")
    resources:
        **resources("rm_diversity"),
    params:
        seeds=config["rm"]["seeds"],
        groups=diversity_groups(),
        runs=diversity_runs(),
        gold=diversity_gold_flag,
        alpacafarm=alpacafarm_flag(),
        batch_size=config["gold_eval"]["batch_size"],
        code=code_hash("rm_diversity"),
    shell:
        "python -m rlhf_pipeline rm-diversity --rm-dirs {input.rms} --member-ids {params.seeds} --pairs {input.pairs} "
        "--groups {params.groups} --runs {params.runs} {params.gold} {params.alpacafarm} "
        "--batch-size {params.batch_size} --out {output} > {log} 2>&1"


rule plot_overoptimization:
    input:
        gold=expand("results/ppo/{run}/aggregate.csv", run=PPO_BASE_RUNS),
        bon=expand("results/bon/{run}/bon.csv", run=PPO_BASE_RUNS),
        fits="results/plots/fits.csv",
        diversity="results/rm/diversity.csv",
    output:
        report(
            "results/plots/overoptimization.png", category="Overoptimization", caption="../report/overoptimization.rst"
        ),
    log:
        "results/logs/plot_overoptimization.log",
    localrule: True
    params:
        gold=[f"{run}=results/ppo/{run}/aggregate.csv" for run in PPO_BASE_RUNS],
        bon=[f"{run}=results/bon/{run}/bon.csv" for run in PPO_BASE_RUNS],
        groups=[",".join(group) for group in CFG.ppo.comparison_groups()],
        optimizers=[f"{run}={CFG.ppo.runs[run].optimizer}" for run in PPO_BASE_RUNS],
        code=code_hash("plot_overoptimization"),
    shell:
        "python -m rlhf_pipeline plot-overoptimization --gold-evals {params.gold} --bons {params.bon} "
        "--fits {input.fits} --diversity {input.diversity} --groups {params.groups} --optimizers {params.optimizers} "
        "--out {output} > {log} 2>&1"
