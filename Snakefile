# rlhf-pipeline: every stage is a rule that turns files into files by calling one CLI stage.
#   snakemake --cores 2 results/rm/summary.csv        (proxy RM ensemble on the embedded default)
#   snakemake -n <target>                             (show the plan)
# Settings: the embedded demo (config/config.yaml) when no --configfile is given; else the given files, each on
# the dataclass defaults or on the base it names. `python -m rlhf_pipeline config [--configfile F ...]` shows
# the resolved settings and where each came from (config/README.md).

from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/container.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/sft.smk"
include: "workflow/rules/reward.smk"
include: "workflow/rules/ppo.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/debate.smk"
include: "workflow/rules/redteam.smk"
include: "workflow/rules/ad.smk"


rule all:
    default_target: True
    input:
        config["targets"],
