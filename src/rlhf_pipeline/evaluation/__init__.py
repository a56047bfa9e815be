"""Offline evaluation: gold-RM scoring of PPO eval samples, best-of-n, overoptimization plots.

Names are imported from their modules on first use, so ``evaluation.config`` loads without pandas
or matplotlib at plan time. The function ``gold_eval`` lives in (and is imported from) the module of
the same name, ``rlhf_pipeline.evaluation.gold_eval``.
"""

from importlib import import_module

_WHERE = {
    "BON_COLUMNS": "bon", "best_of_n": "bon", "bon_expected": "bon", "bon_weights": "bon", "kl_bon": "bon",
    "BestOfNConfig": "config",
    "GOLD_EVAL_COLUMNS": "gold_eval", "load_eval_dir": "gold_eval",
    "summarize_steps": "gold_eval",
    "plot_gold_vs_kl": "plots", "plot_overoptimization": "plots",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
