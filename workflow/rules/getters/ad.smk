# Getters of ad.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

AD_HISTORIES = CFG.ad.history_names(PPO_RUNS)  # the named PPO runs, then the sweep's h0 .. h{n-1}
AD_HELDOUT = CFG.ad.heldout_names(PPO_RUNS)
AD_TRAIN = [h for h in AD_HISTORIES if h not in AD_HELDOUT]
AD_SWEEP = [str(i) for i in range(CFG.ad.histories.n)]
# The AD models' tokenizer (ad_data writes it to results/ad/data/tokenizer): made from the training histories'
# episodes with `tokenizer: world`, else the policy's.
AD_TOKENIZER = "world" if config["tokenizer"] == "world" else "results/sft/model"


def ad_history_dir(name):
    """A history's run directory: a PPO run's, or results/ad/histories/{i}/ for sweep history h{i}."""
    return f"results/ad/histories/{name[1:]}" if name in [f"h{i}" for i in AD_SWEEP] else f"results/ppo/{name}"


def ad_trajectories(names):
    return [f"{ad_history_dir(name)}/trajectories" for name in names]


def ad_named_trajectories(names):
    """NAME=DIR arguments of the ad stages."""
    return [f"{name}={ad_history_dir(name)}/trajectories" for name in names]


def ad_history_run(wildcards):
    """Sweep history i's resolved PPORunConfig (sampled hyperparameters) as a dict."""
    return CFG.ad.histories.run_config(int(wildcards.i), CFG.ppo).job_config()


def ad_history_config(wildcards):
    return as_json(ad_history_run(wildcards))


def ad_history_rm_dirs(wildcards):
    return rm_dirs(ad_history_run(wildcards)["rm_seeds"])


def ad_contexts(wildcards):
    """The contexts an AD language model trains on: lm (the histories), ed (expert distillation)."""
    return {"lm": "results/ad/data/train.jsonl", "ed": "results/ad/data/expert.jsonl"}[wildcards.admodel]


def ad_rm_args():
    return [f"{s}=results/rm/seed{s}/model" for s in CFG.rm.seeds]


def ad_config(wildcards):
    """The ad section as JSON (a function: its template's {placeholders} are not Snakemake wildcards)."""
    return section("ad")


def ad_rl_config(wildcards):
    """The ad section the ad-rl stage reads (its format, rl and eval settings; a function for the template's
    {placeholders})."""
    return section("ad", exclude=("histories", "runs", "heldout"))
