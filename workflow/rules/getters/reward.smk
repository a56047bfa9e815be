# Getters of reward.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

from rlhf_pipeline.models import model_ref
from rlhf_pipeline.reward.config import WORLD_GOLD

TRAINED_GOLD_RM = "results/gold_rm/model"


def gold_rm_input():
    """The gold RM as an input: the trained one, or a configured local directory; [] for a hub id or 'world'."""
    path = config["gold_rm"]["path"]
    if path is None:
        return [TRAINED_GOLD_RM]
    if path == WORLD_GOLD:
        return []
    ref = model_ref(path)
    return [ref.path] if ref.local else []


def gold_rm_arg(wildcards, input):
    """What the gold-RM CLI argument gets: the input directory, else the configured hub id."""
    gold = [input.gold] if isinstance(input.gold, str) else list(input.gold)
    return gold[0] if gold else config["gold_rm"]["path"]


def alpacafarm_flag():
    return "--is-alpacafarm-rm" if config["gold_rm"]["is_alpacafarm_rm"] else ""


def labels_from_policy():
    """True when preference pairs are SFT samples labelled by the gold RM (not the dataset's own)."""
    return CFG.preferences.source == "policy_samples"


def preference_labellers():
    """What labelling reads besides the data: the SFT policy and the gold RM, or nothing."""
    return ["results/sft/model", *gold_rm_input()] if labels_from_policy() else []


def labeller_args(wildcards, input):
    """--policy / --gold-rm of label-preferences (empty for preferences.source: dataset)."""
    if not labels_from_policy():
        return ""
    policy, *gold = input.labellers
    gold = gold[0] if gold else config["gold_rm"]["path"]  # a hub id is no input
    return f"--policy {policy} --gold-rm {gold} {alpacafarm_flag()}".strip()


def rm_member(wildcards):
    """The RMConfig member ``seed`` trains with (rm, updated by rm.members.<seed>)."""
    return CFG.rm.member(int(wildcards.seed))


def rm_member_config(wildcards):
    """The rm-train stage's --config for one member (a tracked param)."""
    cfg = rm_member(wildcards).to_dict()
    drop = ("members",) if cfg["data"] == "disjoint" else ("seeds", "members")  # disjoint: its partition
    return as_json({k: v for k, v in cfg.items() if k not in drop})


def rm_sft_input(wildcards):
    """The SFT policy, when the member starts from its backbone (init: sft)."""
    return ["results/sft/model"] if rm_member(wildcards).init == "sft" else []


def sft_model_arg(wildcards, input):
    return f"--sft-model {input.sft}" if input.sft else ""


def rm_dirs(seeds):
    """Model directories of the proxy RM members with these seeds."""
    return [f"results/rm/seed{s}/model" for s in seeds]
