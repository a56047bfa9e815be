"""rlhf-pipeline: a reproducible, HPC-ready Snakemake workflow for RLHF research."""

__version__ = "0.1.0"
