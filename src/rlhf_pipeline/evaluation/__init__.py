"""Offline evaluation: gold-RM scoring of PPO eval samples, best-of-n, overoptimization plots."""

from .bon import BON_COLUMNS, BestOfNConfig, best_of_n, bon_expected, bon_weights, kl_bon
from .gold_eval import GOLD_EVAL_COLUMNS, gold_eval, load_eval_dir, summarize_steps
from .plots import plot_gold_vs_kl, plot_overoptimization

__all__ = [
    "BON_COLUMNS",
    "GOLD_EVAL_COLUMNS",
    "BestOfNConfig",
    "best_of_n",
    "bon_expected",
    "bon_weights",
    "gold_eval",
    "kl_bon",
    "load_eval_dir",
    "plot_gold_vs_kl",
    "plot_overoptimization",
    "summarize_steps",
]
