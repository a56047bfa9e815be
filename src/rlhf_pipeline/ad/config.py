"""Settings of algorithm distillation (the ``ad`` config section): the learning-history sweep, which
histories train and which are held out, the context format, the models and the in-context test."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import Section, bad, join, setting
from ..sft import TinyLlamaConfig


@dataclass
class Range(Section):
    """A hyperparameter range of the random search."""

    section = "ad.histories.<range>"

    low: float = setting(help="Smallest value.", gt=0)
    high: float = setting(help="Largest value.", gt=0)
    log: bool = setting(True, help="Sample log-uniformly (else uniformly).")

    def check(self, where: str) -> None:
        if self.high < self.low:
            bad(f"{where}.high", self.high, f"a value >= low={self.low}")

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))


@dataclass
class HistorySweep(Section):
    """A seeded random search over PPO hyperparameters (as in the algorithm-distillation seed work): history
    ``i`` is a PPO run against proxy RM ``rm_seeds[i % len]`` with a sampled learning rate and KL coefficient
    and its own PPO seed; everything else comes from ``ppo.hparams``."""

    section = "ad.histories"

    n: int = setting(3, ge=0, help="Histories to sample: results/ad/histories/{0..n-1}/.")
    seed: int = setting(0, help="Seed of the random search (history i's values depend only on seed and i).")
    learning_rate: Range = setting(default_factory=lambda: Range(low=3.0e-5, high=3.0e-4),
                                   help="PPO learning rate range.")
    kl_coef: Range = setting(default_factory=lambda: Range(low=0.005, high=0.1), help="KL coefficient range.")
    rm_seeds: list[int] = setting(default_factory=lambda: [1, 2, 3], min_items=1,
                                  help="Proxy RM seeds the histories cycle through (each must be in rm.seeds).")
    total_episodes: int | None = setting(None, ge=1, help="Episodes per history (null = ppo.hparams').")

    def hparams(self, i: int) -> dict:
        """The sampled PPOConfig overrides of history ``i`` (learning_rate, kl_coef, seed)."""
        rng = np.random.default_rng([self.seed, i])
        out = {"learning_rate": self.learning_rate.sample(rng), "kl_coef": self.kl_coef.sample(rng),
               "seed": int(rng.integers(1, 2**31 - 1))}
        if self.total_episodes is not None:
            out["total_episodes"] = self.total_episodes
        return out

    def rm_seed(self, i: int) -> int:
        return self.rm_seeds[i % len(self.rm_seeds)]

    def run_config(self, i: int, ppo):
        """History ``i``'s whole ppo-stage config: ``ppo``'s shared settings (a PPOSection) with the sampled
        hyperparameters, against proxy RM ``rm_seed(i)``."""
        from ..runs import PPORun

        hp = self.hparams(i)
        run = PPORun(rm_seeds=[self.rm_seed(i)], seed=hp.pop("seed"), hparams=hp)
        return ppo.resolve(run, f"ad.histories[{i}]")


@dataclass
class ContextFormat(Section):
    """How a learning history becomes training contexts (both formats share the windows)."""

    section = "ad.format"

    template: str = setting("Prompt: {prompt}\nCompletion: {response}\nReward: {reward:.2f}\n\n",
                            help="One episode of the language format; placeholders {prompt}, {response}, {reward} "
                                 "(required) and {step}.")
    reward: str = setting("score", choices=("score", "penalized_score"),
                          help="The reward shown: the raw task score (default) or the score after the missing-EOS "
                               "penalty; never the KL-shaped reward.")
    step_stride: int = setting(1, ge=1, help="Use every this-many-th PPO step of a history (subsampling across steps).")
    episodes_per_step: int = setting(2, ge=1, help="Episodes taken from each used step into one context stream; a "
                                     "history gives batch_size / episodes_per_step streams (disjoint episodes).")
    context_length: int = setting(512, ge=8, help="Tokens per context; contexts are filled with whole episodes in "
                                  "step order (never split); an episode longer than this is counted and reported.")

    def check(self, where: str) -> None:
        for name in ("prompt", "response", "reward"):
            if "{" + name not in self.template:
                bad(f"{where}.template", self.template, f"a template with the {{{name}}} placeholder")
        try:
            self.template.format(prompt="p", response="r", reward=0.5, step=1)
        except (KeyError, IndexError, ValueError) as e:
            bad(f"{where}.template", self.template, f"a format string with only {{prompt}}, {{response}}, "
                f"{{reward}} and {{step}} ({type(e).__name__}: {e})")


@dataclass
class ADModelConfig(Section):
    """The language-format model: a from-scratch tiny Llama on the tokenizer ad-data wrote (the policy's, or
    with ``tokenizer: world`` one made from the histories' episodes), trained with TRL's SFTTrainer on the
    contexts (the expert-distillation control is the same model on final-policy episodes)."""

    section = "ad.lm"

    tiny: TinyLlamaConfig = setting(default_factory=lambda: TinyLlamaConfig(max_position_embeddings=512),
                                    help="Model sizes; max_position_embeddings must cover ad.format.context_length.")
    epochs: float = setting(3, gt=0, help="Passes over the training contexts.")
    learning_rate: float = setting(1.0e-3, gt=0, help="Peak learning rate (linear decay).")
    batch_size: int = setting(8, ge=1, help="Contexts per batch.")
    seed: int = setting(0, help="Seed of init and data order.")


@dataclass
class ADRLConfig(ADModelConfig):
    """The RL-format model (``rlhf_pipeline.ad.rl``): the same sizes and training settings, with an action head
    and a reward head, trained on the RL-format contexts (``results/ad/rl/``)."""

    section = "ad.rl"

    reward_loss_weight: float = setting(1.0, ge=0, help="Weight of the reward MSE (on standardised rewards) "
                                        "against the action cross-entropy.")


@dataclass
class InContextEval(Section):
    """The in-context improvement test (Laskin et al. 2022): generate, score, append, repeat."""

    section = "ad.eval"

    episodes: int = setting(8, ge=2, help="Episodes K the model plays in context.")
    trials: int = setting(4, ge=1, help="Independent repetitions (different held-out prompts and seeds).")
    max_new_tokens: int = setting(24, ge=1, help="Completion length limit.")
    temperature: float = setting(1.0, gt=0, help="Sampling temperature.")
    n_episodes_heldout: int = setting(64, ge=1, help="Held-out episodes scored for reward prediction and action "
                                      "log-likelihood (with their history, and without: the baseline).")
    seed: int = setting(0, help="Seed of prompts and sampling.")


@dataclass
class ADSection(Section):
    """Algorithm distillation on the PPO runs' trajectories: results/ad/..."""

    section = "ad"

    histories: HistorySweep = setting(default_factory=HistorySweep, help="The learning-history sweep.")
    runs: list[str] | None = setting(None, unique=True, help="ppo.runs whose trajectories are histories too "
                                     "(null = every ppo run).")
    heldout: list[str] | None = setting(None, unique=True, help="Held-out histories (evaluation only): names of "
                                        "runs or sweep histories 'h{i}' (null = the last history).")
    format: ContextFormat = setting(default_factory=ContextFormat, help="Context format.")
    expert_steps: int = setting(4, ge=1, help="The expert-distillation control trains on the episodes of each "
                                "training history's last this-many PPO steps (the final policy's).")
    lm: ADModelConfig = setting(default_factory=ADModelConfig, help="The language-format model.")
    rl: ADRLConfig = setting(default_factory=ADRLConfig, help="The RL-format model.")
    eval: InContextEval = setting(default_factory=InContextEval, help="Evaluation.")

    def history_names(self, ppo_runs: list[str]) -> list[str]:
        """Every history: the PPO runs used (``runs``, or all), then the sweep's ``h0 .. h{n-1}``."""
        return [*(ppo_runs if self.runs is None else self.runs), *(f"h{i}" for i in range(self.histories.n))]

    def heldout_names(self, ppo_runs: list[str]) -> list[str]:
        names = self.history_names(ppo_runs)
        return list(self.heldout) if self.heldout is not None else names[-1:]

    def check(self, where: str) -> None:
        if self.lm.tiny.max_position_embeddings < self.format.context_length:
            bad(join(where, "lm.tiny.max_position_embeddings"), self.lm.tiny.max_position_embeddings,
                f">= ad.format.context_length={self.format.context_length}")
        if self.rl.tiny.max_position_embeddings < self.format.context_length:
            bad(join(where, "rl.tiny.max_position_embeddings"), self.rl.tiny.max_position_embeddings,
                f">= ad.format.context_length={self.format.context_length}")

    def check_runs(self, ppo_runs: list[str], rm_seeds: list[int], where: str) -> None:
        """The cross-section rules: runs are ppo runs, held-out names are histories, one history trains."""
        for run in self.runs or []:
            if run not in ppo_runs:
                bad(join(where, "runs"), run, f"names of ppo.runs {sorted(ppo_runs)}")
        for seed in self.histories.rm_seeds:
            if seed not in rm_seeds:
                bad(join(where, "histories.rm_seeds"), seed, f"seeds of rm.seeds {rm_seeds}")
        names = self.history_names(ppo_runs)
        for h in self.heldout or []:
            if h not in names:
                bad(join(where, "heldout"), h, f"one of the histories {names}")
        if not set(names) - set(self.heldout_names(ppo_runs)):
            bad(join(where, "heldout"), self.heldout_names(ppo_runs), "a list that leaves a history for training")
