# Getters of data.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

DATASET = config["dataset"]["name"]


def data_file(split):
    """A split of the configured dataset, as the rules downstream read it."""
    return f"results/data/{DATASET}/{split}.jsonl"


def dataset_section(wildcards):
    """The dataset section for the dataset named by the output path."""
    return as_json({**config["dataset"], "name": wildcards.dataset})
