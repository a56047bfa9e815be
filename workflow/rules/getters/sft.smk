# Getters of sft.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

WORLD_TOKENIZER = "results/tokenizer/world"


def policy_tokenizer_input(wildcards):
    """The world tokenizer's directory as an input of the SFT policy when `tokenizer: world`, else nothing."""
    return {"tokenizer": WORLD_TOKENIZER} if config["tokenizer"] == "world" else {}


def policy_tokenizer():
    """What the SFT policy's --tokenizer gets: the world tokenizer's directory, or the configured name."""
    return WORLD_TOKENIZER if config["tokenizer"] == "world" else config["tokenizer"]


def other_world_tokenizer():
    """The tokenizer of a from-scratch model of another world (the red-team target): the configured one,
    MiniLM's when `tokenizer: world` (the world tokenizer is made from the RLHF chain's train split)."""
    return "minilm" if config["tokenizer"] == "world" else config["tokenizer"]
