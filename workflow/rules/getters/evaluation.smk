# Getters of evaluation.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

import shlex


def replicate_gold_evals(run):
    """gold_eval.csv of every replicate of a configured run."""
    return [f"results/ppo/{r}/gold_eval.csv" for r in CFG.ppo.replicate_names(run)]


def replicate_gold_evals_of(wildcards):
    return replicate_gold_evals(wildcards.base)


def run_ensemble(wildcards):
    """The run's members and objective (the bon stage's --ensemble): rm_seeds, objective, uwo_weight."""
    run = run_config(wildcards.run)
    return as_json({k: run[k] for k in ("rm_seeds", "objective", "uwo_weight")})


def ensemble_runs():
    """The configured runs with two or more members (their PPO samples feed the diversity diagnostics)."""
    return [r for r in PPO_BASE_RUNS if len(CFG.ppo.runs[r].rm_seeds) > 1]


def diversity_runs():
    """RUN=EVAL_DIR,... of every ensemble run's replicates (rm-diversity --runs)."""
    return [
        f"{run}={','.join(f'results/ppo/{r}/eval' for r in CFG.ppo.replicate_names(run))}" for run in ensemble_runs()
    ]


def diversity_gold_flag(wildcards, input):
    """rm-diversity's --gold-rm: only when ensemble runs' PPO samples are scored (no gold RM is needed, or
    trained, for the members' error correlations alone)."""
    if not ensemble_runs():
        return ""
    return f"--gold-rm {shlex.quote(gold_rm_arg(wildcards, input))}"


def diversity_groups():
    """Member groups rm-diversity averages over: each ensemble run's members (named by their seeds,
    e.g. 4-5-6), and the members no ensemble run uses when there are two or more (e.g. 1-2-3)."""
    sets = list(dict.fromkeys(tuple(CFG.ppo.runs[r].rm_seeds) for r in ensemble_runs()))
    used = {s for seeds in sets for s in seeds}
    rest = tuple(s for s in config["rm"]["seeds"] if s not in used)
    if len(rest) >= 2:
        sets.append(rest)
    return [f"{'-'.join(map(str, seeds))}={','.join(map(str, seeds))}" for seeds in sets]
