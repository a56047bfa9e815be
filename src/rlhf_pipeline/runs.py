"""PPO runs as named in the config: which proxy RMs a run optimises, and how they are combined.

    ppo:
      hparams: {...}            # PPOConfig keys shared by every run
      n_eval_prompts: 64        # run settings shared by every run
      standardize: true
      reward_batch_size: 64
      runs:
        seed1: {rm_seeds: [1]}                                   # single proxy RM; PPO seed = 1
        ensemble_uwo: {rm_seeds: [1, 2, 3], objective: UWO, uwo_weight: 0.1}
        small_kl: {rm_seeds: [1, 2, 3], objective: WCO, hparams: {kl_coef: 0.01}}
        uwo3: {rm_seeds: [1, 2, 3], objective: UWO, replicates: 3}   # jobs uwo3, uwo3_r2, uwo3_r3

Each run resolves to one :class:`PPORunConfig` (:meth:`PPOSection.run_config`), the whole typed
config the ``ppo`` stage gets as its ``--config``: the members, the objective, the run settings and
the run's :class:`~rlhf_pipeline.ppo.config.PPOConfig` (``ppo.hparams`` updated by the run's own
``hparams``; its seed is the run's ``seed``, else its single RM's seed, else ``ppo.hparams.seed``).

**Replicates.** A run with ``replicates: N`` is N jobs that differ only in the PPO seed: replicate 1
is the run itself (its name, its seed, its paths ``results/ppo/{run}/``), replicate k >= 2 is named
``{run}_r{k}`` (``results/ppo/{run}_r{k}/``) and has PPO seed ``seed + REPLICATE_SEED_STRIDE * (k - 1)``
(:meth:`PPOSection.run_names`, :meth:`PPOSection.replicate_of`). Their aggregate (mean and 95%
interval per eval step) is ``results/ppo/{run}/aggregate.csv`` (:mod:`rlhf_pipeline.evaluation.replicates`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .config import Section, bad, check_keys, deep_merge, join, setting
from .ppo.config import OPTIMIZERS, PPOConfig, check_settings
from .reward.config import OBJECTIVES

REPLICATE_SEED_STRIDE = 1000
"""Replicate k of a run has PPO seed ``seed + REPLICATE_SEED_STRIDE * (k - 1)`` (distinct for every k)."""


def replicate_names(name: str, replicates: int) -> list[str]:
    """Job names of a run's replicates: ``[name, name_r2, ..., name_rN]`` (PPO and red-team runs alike)."""
    return [name] + [f"{name}_r{k}" for k in range(2, replicates + 1)]


def replicate_of(name: str, replicates: dict[str, int]) -> tuple[str, int]:
    """``(run, k)`` of job ``name`` among runs with these replicate counts (run -> N): ``(name, 1)`` for a
    run, ``(run, k)`` for ``{run}_r{k}`` with 2 <= k <= N; KeyError for any other name."""
    if name in replicates:
        return name, 1
    base, sep, k = name.rpartition("_r")
    if sep and k.isdigit() and base in replicates and 2 <= int(k) <= replicates[base] and name == f"{base}_r{int(k)}":
        return base, int(k)
    raise KeyError(name)


@dataclass
class Ensemble(Section):
    """Which proxy RM members a run optimises, and how their scores combine."""

    section = "ensemble"

    rm_seeds: list[int] = setting(min_items=1, unique=True, help="Proxy RM members (their rm.seeds values) whose "
                                  "scores are combined.")
    objective: str = setting("mean", choices=OBJECTIVES, help="How members combine (case-insensitive): mean, "
                             "worst case (WCO) or uncertainty-weighted (UWO); with one member all equal its score.")
    uwo_weight: float = setting(0.1, ge=0, help="UWO's lambda: mean - uwo_weight * variance over members "
                                "(variance divides by K).")


@dataclass
class Optimizer(Section):
    """Which algorithm optimises a run's policy against its reward."""

    section = "optimizer"

    optimizer: str = setting("ppo", choices=OPTIMIZERS, help="ppo: the project's PPO; grpo, rloo, online_dpo: "
                             "TRL's trainers, with the same reward, prompts, SFT policy, reference, eval and "
                             "outputs, and the shared hyperparameters where they mean the same thing "
                             "(docs/rlhf.md, Optimisers); each one's own settings in ppo.hparams.<optimizer>.")


@dataclass
class PPORun(Optimizer, Ensemble):
    """One entry of ``ppo.runs``: what the YAML says about a run."""

    section = "ppo.runs.<run>"

    seed: int | None = setting(None, help="PPO seed; null: the RM's seed for single-RM runs, else ppo.hparams.seed.")
    hparams: dict[str, Any] = setting(default_factory=dict, help="PPOConfig overrides for this run only "
                                      "(same keys as ppo.hparams).")
    replicates: int = setting(1, ge=1, help="PPO seeds to run: replicate 1 is this run, replicate k >= 2 is "
                              "run {run}_r{k} with PPO seed + 1000 (k - 1); mean and 95% interval: "
                              "results/ppo/{run}/aggregate.csv.")
    compare_with: list[str] | None = setting(None, unique=True, help="Runs this run is compared with at equal "
                                             "KL (results/plots/equal_kl.csv), e.g. [single, mean] for a "
                                             "conservative objective; [] = none (the baseline of its own group of "
                                             "runs); null: [ppo.baseline_run].")


@dataclass
class RunSettings(Section):
    """Settings of the ppo stage besides the ensemble and the PPO hyperparameters."""

    standardize: bool = setting(True, help="z-score each proxy RM member with the mean/std saved at RM training time.")
    reward_batch_size: int = setting(64, ge=1, help="Texts per reward-model forward pass.")
    n_eval_prompts: int = setting(64, ge=1, help="Held-out prompts PPO evaluates on (the first N of the test split).")


@dataclass
class PPORunConfig(Optimizer, RunSettings, Ensemble):
    """Everything the ``ppo`` stage needs to know about one run: its one ``--config``."""

    section = "ppo run"

    hparams: PPOConfig = setting(default_factory=PPOConfig, help="The run's PPO hyperparameters.")

    def job_config(self) -> dict[str, Any]:
        """The run's config as its job gets it (``--config``, tracked by Snakemake): without the sections of the
        optimisers it does not use, so changing GRPO's settings reruns only the GRPO runs."""
        out = self.to_dict()
        unused = [name for name in OPTIMIZERS if name not in ("ppo", self.optimizer)]
        if self.optimizer == "ppo":
            unused.append("vllm")
        out["hparams"] = {k: v for k, v in out["hparams"].items() if k not in unused}
        return out

    def check(self, where: str) -> None:
        if self.optimizer != "ppo":
            check_settings(self.optimizer, self.hparams, join(where, "hparams"))


@dataclass
class PPOSection(RunSettings):
    """The ``ppo`` config section: shared hyperparameters and run settings, and the named runs."""

    section = "ppo"

    hparams: PPOConfig = setting(default_factory=PPOConfig, help="PPOConfig settings shared by every run.")
    runs: dict[str, PPORun] = setting(default_factory=dict, help="Named runs: results/ppo/{run}/...")
    baseline_run: str | None = setting(None, help="The run every run is compared with at equal KL "
                                       "(results/plots/equal_kl.csv); null: the first single-RM run, else the "
                                       "first run.")

    def check(self, where: str) -> None:
        if self.baseline_run is not None and self.baseline_run not in self.runs:
            bad(join(where, "baseline_run"), self.baseline_run, f"one of the configured runs {list(self.runs)}")
        for name, run in self.runs.items():
            others = [b for b in run.compare_with or [] if b not in self.runs or b == name]
            if others:
                bad(join(where, f"runs.{name}.compare_with"), others, f"other configured runs {list(self.runs)}")
            clash = [r for r in self.replicate_names(name)[1:] if r in self.runs]
            if clash:
                bad(join(where, f"runs.{name}.replicates"), run.replicates, f"a count whose replicate names "
                    f"do not name other runs ({clash} are configured runs)")
        for name in self.run_names():
            self.run_config(name, where)  # every run and replicate resolves to a valid PPORunConfig

    def baseline(self) -> str | None:
        """The run others are compared with at equal KL: ``baseline_run``, else the first single-RM run,
        else the first run (None without runs)."""
        if self.baseline_run is not None:
            return self.baseline_run
        singles = [name for name, run in self.runs.items() if len(run.rm_seeds) == 1]
        return (singles or list(self.runs) or [None])[0]

    def comparisons(self) -> dict[str, list[str]]:
        """The runs each run is compared with at equal KL: its ``compare_with``, else the baseline run
        (the baseline itself: none)."""
        return {name: list(run.compare_with) if run.compare_with is not None
                else [] if name == self.baseline() else [self.baseline()]
                for name, run in self.runs.items()}

    def comparison_groups(self) -> list[list[str]]:
        """Runs linked by equal-KL comparisons (:meth:`comparisons`), each group in run order, groups in
        the order of their first run: e.g. one group per ensemble regime when each regime's runs are
        compared with its own single RM. The figure draws each group in its own row."""
        parent = {name: name for name in self.runs}

        def root(name: str) -> str:
            while parent[name] != name:
                name = parent[name]
            return name

        for name, baselines in self.comparisons().items():
            for b in baselines:
                if b in parent:
                    parent[root(name)] = root(b)
        groups: dict[str, list[str]] = {}
        for name in self.runs:
            groups.setdefault(root(name), []).append(name)
        return list(groups.values())

    def replicate_names(self, name: str) -> list[str]:
        """Job names of run ``name``'s replicates: ``[name, name_r2, ..., name_rN]``."""
        return replicate_names(name, self.runs[name].replicates)

    def run_names(self) -> list[str]:
        """Every PPO job: each run's replicates, run by run (``results/ppo/{name}/``)."""
        return [r for name in self.runs for r in self.replicate_names(name)]

    def replicate_of(self, name: str) -> tuple[str, int]:
        """``(run, k)`` of a job name: ``(name, 1)`` for a configured run, ``(run, k)`` for ``{run}_r{k}``."""
        return replicate_of(name, {run: r.replicates for run, r in self.runs.items()})

    def run_config(self, name: str, where: str = "ppo") -> PPORunConfig:
        """The resolved, validated config of run or replicate ``name`` (errors name ``ppo.runs.<run>...``).
        Resolved once per section: a section is not changed once built, and a plan asks for every run's
        config several times (the check, the path check, each job's getters). Shared: read it, never change it."""
        resolved = self.__dict__.setdefault("_resolved", {})
        if name not in resolved:
            base, k = self.replicate_of(name)
            resolved[name] = self.resolve(self.runs[base], join(where, f"runs.{base}"), replicate=k)
        return resolved[name]

    def resolve(self, run: PPORun, at: str, replicate: int = 1) -> PPORunConfig:
        """``run`` (a ``ppo.runs`` entry, or one made elsewhere, e.g. a learning-history sweep's) with these
        shared settings, as its replicate ``replicate``: its whole :class:`PPORunConfig` (errors name ``at``)."""
        check_keys(PPOConfig, run.hparams, f"{at}.hparams")
        hparams = deep_merge(self.hparams.to_dict(), run.hparams)  # a run's grpo: {...} keeps the shared others
        if run.seed is not None:
            hparams["seed"] = run.seed
        elif len(run.rm_seeds) == 1:
            hparams["seed"] = run.rm_seeds[0]
        hparams["seed"] += REPLICATE_SEED_STRIDE * (replicate - 1)
        shared = {f.name: getattr(self, f.name) for f in fields(RunSettings)}
        own = {f.name: getattr(run, f.name) for cls in (Ensemble, Optimizer) for f in fields(cls)}
        return PPORunConfig.from_dict({**own, **shared, "hparams": PPOConfig.from_dict(hparams, f"{at}.hparams")},
                                      at)

    def check_members(self, trained_seeds: list[int], where: str = "ppo") -> None:
        """Every run's members are trained RM seeds."""
        for name, run in self.runs.items():
            missing = [s for s in run.rm_seeds if s not in trained_seeds]
            if missing:
                bad(join(where, f"runs.{name}.rm_seeds"), run.rm_seeds, f"seeds from rm.seeds {trained_seeds} "
                    f"(RM seed(s) {missing} are not trained)")
