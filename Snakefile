# rlhf-pipeline: every stage is a rule that turns files into files by calling one CLI stage.
#   snakemake --cores 2 results/rm/summary.csv        (proxy RM ensemble on the embedded default)
#   snakemake -n <target>                             (show the plan)
#   snakemake --report report.html                    (the figures and tables of a finished run, one page)
# Settings: the embedded demo (config/config.yaml) when no --configfile is given; else the given files, each on
# the dataclass defaults or on the base it names. `python -m rlhf_pipeline config [--configfile F ...]` shows
# the resolved settings and where each came from (config/README.md).
# Rules by research family (workflow/rules/<family>.smk), each with its getters (workflow/rules/getters/<family>.smk,
# included by the family's file); a family comes after the families whose getters it uses.

from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/container.smk"


# Under --sdm apptainer every rule runs in the workflow's one image (but build_image, which makes it); without
# it, this is ignored. add_image_input() below makes a rule-built image an input of each rule that runs in it.
container: container_image()


report: "workflow/report/workflow.rst"


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


add_image_input(workflow.rules)
presign_rules(workflow.rules)  # planning speed: rlhf_pipeline/planning.py
