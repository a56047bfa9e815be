"""Typed views of the ``debate:`` config section: the dataset, named model configs (debaters and
judges, one schema with a ``type`` that picks the backend), prompts, and named tournaments.

    debate:
      dataset: {name: synthetic, split: test}
      prompts: config/debate/prompts.yaml
      debaters:
        weak:   {type: extractive, quotes: 1, retrieval: lexical}
        strong: {type: extractive, quotes: 3, retrieval: embedding}
      judges:
        minilm: {type: quote_similarity}
      tournaments:
        default: {kind: round_robin, debaters: [weak, strong], judge: minilm, n_chunks: 2}

Backends (``type``): debaters ``hf``, ``openai_compatible``, ``anthropic``, ``extractive``,
``offline``, ``random``, ``deterministic``; judges ``hf``, ``openai_compatible``, ``anthropic``,
``quote_similarity``, ``offline``, ``random``, ``deterministic``. API keys are never in a config:
``api_key_env`` names the environment variable that holds one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..config import Section, bad, check_keys, default_of, join, setting
from ..models.lora import LoraSettings
from ..ppo.config import PPOConfig
from ..sft import SFTConfig

DEBATER_TYPES = ("hf", "openai_compatible", "anthropic", "extractive", "offline", "random", "deterministic")
JUDGE_TYPES = ("hf", "openai_compatible", "anthropic", "quote_similarity", "offline", "random", "deterministic")
LM_TYPES = ("hf", "openai_compatible", "anthropic")
"""Backends that run a language model (and need ``model``)."""
FORMATS = ("debate", "consultancy", "double_consultancy", "empty")
"""Round formats: two debaters; one consultant per side in separate rounds; both consultancies shown
to one judge; the judge alone with the question (a baseline)."""
BRANCHINGS = ("none", "full", "half", "single_random")
"""How a round branches: :func:`rlhf_pipeline.debate.rounds.branch_slots`."""
TOURNAMENT_KINDS = ("self_play", "round_robin", "capped_round_robin")
DEBATE_DATASETS = ("synthetic", "quality")
HUMAN = "human"
"""The tournament (results/debate/human/) of the published human debates (``debate.human``)."""
HUMAN_DEBATER, AI_DEBATER, HUMAN_JUDGE = "human", "gpt4", "human_judge"
"""Who speaks and judges in tournament ``human``: the human debaters, the research's GPT-4 debater, the judge."""
HUMAN_SETTINGS = ("human_debate", "human_consultancy", "ai_debate", "ai_consultancy")


@dataclass
class SyntheticDebateConfig(Section):
    """Size of the embedded synthetic passages (``debate.dataset.synthetic``)."""

    section = "debate.dataset.synthetic"

    n_stories: int = setting(60, ge=1, help="Passages (stories) in all splits together.")
    questions_per_story: int = setting(4, ge=1, help="Questions asked about each passage.")
    facts_per_story: int = setting(8, ge=2, help="Facts (sentences) per passage.")
    two_fact_fraction: float = setting(0.25, ge=0, le=1, help="Share of questions that need two facts combined.")
    val_fraction: float = setting(0.2, ge=0, lt=1, help="Share of stories in the val split.")
    test_fraction: float = setting(0.4, ge=0, lt=1, help="Share of stories in the test split (the rest: train).")


@dataclass
class DebateDatasetConfig(Section):
    """Which passages and questions tournaments debate (``debate.dataset``)."""

    section = "debate.dataset"

    name: str = setting("synthetic", choices=DEBATE_DATASETS, help="synthetic (the project's seeded generator) or "
                        "quality (QuALITY JSONL by local path, or a hub copy by name).")
    path: str | None = setting(None, help="quality: a local JSONL file / folder of {split}.jsonl, or a hub name.")
    difficult_only: bool = setting(True, help="quality: keep only questions annotated as difficult (the research "
                                   "setup).")
    exclude_stories: list[str] = setting(default_factory=list, help="quality: story ids to leave out.")
    split: str = setting("test", choices=("train", "val", "test"), help="The split tournaments debate on.")
    seed: int = setting(0, help="Seed of the generator and of the story-level split.")
    synthetic: SyntheticDebateConfig = setting(default_factory=SyntheticDebateConfig,
                                               help="Size of the synthetic passages (only for name: synthetic).")

    def check(self, where: str) -> None:
        if self.name == "quality" and not self.path:
            bad(join(where, "path"), self.path, "a QuALITY JSONL path or hub name for name: quality")
        s = self.synthetic
        if s.val_fraction + s.test_fraction >= 1:
            bad(join(where, "synthetic.test_fraction"), s.test_fraction, f"< 1 - val_fraction={s.val_fraction}")


@dataclass
class BestOfNSettings(Section):
    """Best-of-N speech selection (``...best_of_n``)."""

    section = "debate.tournaments.<t>.best_of_n"

    n: int = setting(1, ge=1, help="Candidate speeches per turn (1 = off).")
    opponent_n: int = setting(1, ge=1, help="Opponent speeches each candidate is judged against.")
    opponent: str = setting("real", choices=("real", "self"), help="Whose speeches the opponents are: the real "
                            "opponent's model, or the debater's own model arguing the other side.")
    aggregate: str = setting("min", choices=("min", "mean"), help="How a candidate's scores against the opponent "
                             "speeches combine.")


@dataclass
class ModelConfig(Section):
    """One debater or judge: a backend (``type``) and its settings; settings a backend does not use
    are ignored by it, settings it needs are checked at plan time."""

    section = "debate.<model>"

    type: str = setting(help="Backend (see the module docstring).")
    model: str | None = setting(None, help="hf: hub id or local model directory; openai_compatible / anthropic: "
                                "the served model's name.")
    revision: str | None = setting(None, help="hf: hub revision (commit, tag or branch); recorded in transcripts.")
    base_url: str | None = setting(None, help="openai_compatible: the server's base URL (e.g. http://host:8000/v1).")
    api_key_env: str | None = setting(None, help="Name of the environment variable holding the API key (never the "
                                      "key itself); checked at plan time.")
    timeout_s: float = setting(60.0, gt=0, help="API backends: seconds per request before it is retried.")
    max_retries: int = setting(3, ge=0, help="API backends: retries with exponential backoff after a timeout, a "
                               "connection error or a 5xx/429 answer.")
    concurrency: int = setting(4, ge=1, help="API backends: requests in flight at once.")
    max_new_tokens: int = setting(200, ge=1, help="LM backends: longest speech (tokens).")
    temperature: float = setting(0.7, ge=0, help="LM backends: sampling temperature (0 = greedy).")
    prompt: str = setting("default", help="Name of the prompt set in the prompts file (debate.prompts).")
    quotes: int = setting(2, ge=0, help="extractive: passage sentences quoted per speech.")
    retrieval: str = setting("embedding", choices=("embedding", "lexical", "random"),
                             help="extractive: how supporting sentences are ranked: MiniLM similarity to the "
                             "question and the defended answer, word overlap, or at random.")
    misquote_rate: float = setting(0.0, ge=0, le=1, help="extractive: probability that a quote is garbled (it then "
                                   "fails verification), to model careless debaters.")
    answer_prefix: str = setting("The correct answer is (", help="hf judges: text after which the logits of the "
                                 "answer letters are compared (teacher forcing).")
    sharpness: float = setting(10.0, gt=0, help="quote_similarity judge: inverse temperature of the softmax over the "
                               "two answers' support scores.")
    transcripts: str | None = setting(None, help="offline: a tournament directory (or transcript JSONL) whose "
                                      "saved speeches / verdicts are replayed.")
    seed: int = setting(0, help="Seed of sampling (LM backends, extractive misquotes, random).")
    best_of_n: BestOfNSettings | None = setting(None, help="Debaters: best-of-N speech selection for this debater "
                                                "(a 'best-of-4' variant of a model is a debater of its own); null: "
                                                "the tournament's best_of_n.")

    def check(self, where: str) -> None:
        if self.type in LM_TYPES and not self.model:
            bad(join(where, "model"), self.model, f"a model name for type: {self.type}")
        if self.type == "openai_compatible" and not self.base_url:
            bad(join(where, "base_url"), self.base_url, "the server's base URL for type: openai_compatible")
        if self.type == "anthropic" and not self.api_key_env:
            bad(join(where, "api_key_env"), self.api_key_env, "the name of the variable holding the API key")
        if self.type == "offline" and not self.transcripts:
            bad(join(where, "transcripts"), self.transcripts, "a transcript file or tournament directory to replay")

    def check_environment(self, where: str) -> None:
        """Plan-time: the API-key variable this backend names is set (its value is never read here)."""
        if self.api_key_env and not os.environ.get(self.api_key_env):
            bad(join(where, "api_key_env"), self.api_key_env, f"the name of a set environment variable "
                f"(${self.api_key_env} is not set)")


@dataclass
class TournamentConfig(Section):
    """One named tournament (``debate.tournaments.<name>``): results/debate/<name>/."""

    section = "debate.tournaments.<t>"

    debaters: list[str] = setting(min_items=1, unique=True, help="Names from debate.debaters.")
    judge: str = setting(help="Name from debate.judges.")
    kind: str = setting("round_robin", choices=TOURNAMENT_KINDS, help="self_play: each debater against itself; "
                        "round_robin: every pair of debaters (and each against itself); capped_round_robin: every "
                        "pair gets its own slice of questions_per_pair questions.")
    formats: list[str] = setting(default_factory=lambda: list(FORMATS), choices=FORMATS, min_items=1, unique=True,
                                 help="Round formats played on every question.")
    rounds: int = setting(3, ge=1, help="Speeches per debater (debate) or consultant (consultancy).")
    simultaneous: bool = setting(True, help="Debate: both debaters speak at once each round (neither sees the "
                                 "other's speech of the current round); false: debater A speaks first.")
    questions: int | None = setting(None, ge=1, help="Questions per pairing (null = all of the dataset split).")
    questions_per_pair: int = setting(8, ge=1, help="capped_round_robin: questions per pair.")
    balanced_slots: bool = setting(True, help="Round robins: two different debaters play each of their questions "
                                   "in both slot orders (x-vs-y and y-vs-x), so each is read first by the judge (slot "
                                   "a) as often as second; false: the one earlier in debaters is always slot a (half "
                                   "the cross-play rounds; a judge's slot-a bias, judge.csv slot_a_bias, then adds to "
                                   "its strength).")
    best_of_n: BestOfNSettings = setting(default_factory=BestOfNSettings, help="Best-of-N speech selection of "
                                         "debaters that set none of their own.")
    branching: str = setting("none", choices=BRANCHINGS, help="Branched rounds (the debate research code's): speech "
                             "slots that are sampled twice, each branch played on to the verdict: full: every slot "
                             "(2^slots transcripts); half: every slot of one speaker, drawn per round; single_random: "
                             "one slot, drawn per round. The main transcript is the unbranched round's; DPO pairs "
                             "come from every branched slot (a speech scored by the mean judge probability over the "
                             "transcripts that contain it).")
    n_chunks: int = setting(1, ge=1, help="Jobs the tournament is split into (rounds are assigned to chunks by a "
                            "pure function of the config and seed).")
    bootstrap: int = setting(200, ge=0, help="Bootstrap resamples (over questions) for rating intervals.")
    max_failed_share: float = setting(0.0, ge=0, le=1, help="A chunk (or a re-judging) whose failed rounds exceed "
                                      "this share of its rounds fails, naming the first error; a rerun retries "
                                      "only the failed rounds, reusing their finished speeches. 0: any failure "
                                      "fails the job; 1: failed rounds are kept in the transcripts and counted.")
    seed: int = setting(0, help="Seed of question assignment, answer order and sampling.")



@dataclass
class CheckpointDebater(Section):
    """How a trained debater checkpoint speaks (``debate.training.debater``): an ``hf`` debater whose
    ``model`` is the checkpoint's results/ directory."""

    section = "debate.training.debater"

    prompt: str = setting("default", help="Prompt set (debate.prompts) the checkpoints are trained on and speak "
                          "with.")
    max_new_tokens: int = setting(200, ge=1, help="Longest speech (tokens).")
    temperature: float = setting(0.7, ge=0, help="Sampling temperature (0 = greedy); best-of-N needs > 0.")
    seed: int = setting(0, help="Seed of sampling.")

    def model_config(self, model: str, best_of_n: BestOfNSettings | None = None) -> ModelConfig:
        return ModelConfig(type="hf", model=model, prompt=self.prompt, max_new_tokens=self.max_new_tokens,
                           temperature=self.temperature, seed=self.seed, best_of_n=best_of_n)


@dataclass
class PairSettings(Section):
    """DPO preference pairs from best-of-N alternatives (``debate.training.pairs``)."""

    section = "debate.training.pairs"

    threshold: float = setting(0.05, ge=0, lt=1, help="Keep a pair when the judge probability of the chosen "
                               "(selected) speech exceeds the rejected (lowest-scoring) one's by more than this.")
    soft_label_power: float | None = setting(None, gt=0, help="m of the soft label l = p^m / (p^m + q^m) that DPO "
                                             "trains each pair on (p, q: the chosen and rejected speeches' judge "
                                             "probabilities; loss -(l log sigmoid(beta h) + (1 - l) log sigmoid(-beta "
                                             "h)), h the DPO logit); null = hard labels (l = 1, plain DPO).")
    unverified_penalty: float = setting(0.0, ge=0, help="Best-of-N pairs: subtracted from a candidate's judge "
                                        "probability for each of its quotes that failed verification; chosen = the "
                                        "best candidate by that score, rejected = the worst (0: chosen = the selected "
                                        "candidate, as the judge picked it). The judge ignores an unverified quote "
                                        "beside a verified one, so without it DPO learns to quote more, garbled or "
                                        "not.")


@dataclass
class DPOSettings(Section):
    """One DPO iteration's training (``debate.training.dpo``; TRL's DPOTrainer)."""

    section = "debate.training.dpo"

    beta: float = setting(0.1, gt=0, help="DPO beta (deviation from the reference, the iteration's start model).")
    nll_weight: float = setting(0.2, ge=0, help="Weight of an NLL term on the chosen speeches, added to the DPO "
                                "loss (TRL's 'sft' loss type; 0 = none).")
    lora: LoraSettings = setting(default_factory=LoraSettings, help="LoRA adapters (merged into the saved model).")
    epochs: float = setting(2, gt=0, help="Passes over the pairs.")
    learning_rate: float = setting(5.0e-5, gt=0, help="Peak learning rate (linear decay).")
    batch_size: int = setting(8, ge=1, help="Pairs per device batch.")
    grad_accum: int = setting(1, ge=1, help="Gradient accumulation steps.")
    max_length: int = setting(512, ge=1, help="Truncate prompt + speech to this many tokens (TRL keeps the "
                              "start).")
    bf16: bool = setting(False, help="bf16 mixed precision (GPU only).")
    seed: int = setting(0, help="Seed of data order.")


@dataclass
class TrainingTournament(Section):
    """A tournament the training plays (``debate.training.selfplay`` / ``.strength``)."""

    section = "debate.training.<tournament>"

    questions: int | None = setting(None, ge=1, help="Questions (null = all of the dataset split).")
    rounds: int = setting(1, ge=1, help="Speeches per debater.")
    formats: list[str] = setting(default_factory=lambda: ["debate"], choices=FORMATS, min_items=1, unique=True,
                                 help="Round formats.")
    best_of_n: BestOfNSettings = setting(default_factory=lambda: BestOfNSettings(n=4),
                                         help="selfplay: the best-of-N that makes the DPO pairs; strength: the "
                                         "best-of-N variant of every checkpoint (n = 1: no variants).")
    branching: str = setting("none", choices=BRANCHINGS, help="selfplay: branched rounds, whose branched slots "
                             "add DPO pairs (the tournaments' branching).")
    n_chunks: int = setting(1, ge=1, help="Jobs the tournament is split into.")
    bootstrap: int = setting(200, ge=0, help="Bootstrap resamples for rating intervals.")
    seed: int = setting(0, help="Seed of answer order and sampling.")
    anchors: list[str] = setting(default_factory=list, unique=True, help="strength: debaters of debate.debaters "
                                 "that play in it beside the checkpoints, fixed reference points of the strength "
                                 "scale (e.g. the extractive weak and strong); selfplay: none.")


@dataclass
class HumanDebatesConfig(Section):
    """The published human debates of Michael et al. 2023 as tournament ``human`` (``debate.human``):
    results/debate/human/ (:mod:`rlhf_pipeline.debate.human`)."""

    section = "debate.human"

    path: str | None = setting(None, help="The published debates-readable.jsonl (julianmichael/debate, pub/); "
                               "null: no human debates.")
    settings: list[str] = setting(default_factory=lambda: ["human_debate", "human_consultancy"],
                                  choices=HUMAN_SETTINGS, min_items=1, unique=True,
                                  help="Which of the research's settings to keep: human or AI (a GPT-4 debater) "
                                  "debaters, in debate (two debaters) or consultancy (one).")
    judged_only: bool = setting(True, help="Keep only debates with the judge's final probabilities; false: an "
                                "unjudged debate with a correctAnswer is kept as a round whose verdict failed "
                                "(debate_rejudge judges it).")
    deduplicate: bool = setting(False, help="One debate per question (story and question text): the first in "
                                "file order.")
    max_debates: int | None = setting(None, ge=1, help="Keep at most this many debates (the first selected, in "
                                      "file order; null = all).")
    bootstrap: int = setting(200, ge=0, help="debate_summary: bootstrap resamples (over questions) for rating "
                             "intervals.")
    seed: int = setting(0, help="debate_summary: the bootstrap's seed.")

    def as_tournament(self) -> TournamentConfig:
        """The human debates as a tournament, for the rules that read one (debate_summary, debate_rejudge,
        debate_sft): one chunk, speeches shown to SFT debaters as in a simultaneous debate (each sees the
        speeches of earlier turns only)."""
        formats = [f for f in FORMATS if any(s.endswith(f"_{f}") for s in self.settings)]
        ai = any(s.startswith("ai_") for s in self.settings)
        return TournamentConfig(debaters=[HUMAN_DEBATER, *([AI_DEBATER] if ai else [])], judge=HUMAN_JUDGE,
                                formats=formats, n_chunks=1, bootstrap=self.bootstrap, seed=self.seed)


@dataclass
class DebatePPOSettings(Section):
    """A debater trained by the project's PPO (``debate.training.ppo``; :mod:`rlhf_pipeline.debate.ppo`): on
    single speeches (turn 0 of a one-turn round) for either side of the dataset's train-split questions, the
    reward the judge's probability for the speaker's answer."""

    section = "debate.training.ppo"

    enabled: bool = setting(False, help="Train checkpoint debater ppo (results/debate/ppo/), which joins the "
                            "strength tournament with the other checkpoints (and its best-of-N variant).")
    init: str = setting("sft", help="The checkpoint PPO starts from, also its KL reference: sft or dpo{i} "
                        "(1 <= i <= iterations).")
    opponent: str | None = setting("sft", help="Who argues the other answer in each judged round: a checkpoint "
                                   "(sft, dpo{i}) or a debater of debate.debaters, one speech sampled per round "
                                   "(seeded; its best_of_n unused); the speaker's slot (a or b) drawn per round. "
                                   "null: no opponent, the speech is judged as a consultancy.")
    questions: int | None = setting(None, ge=1, help="Training questions: the first of the dataset's train split "
                                    "(null = all); each gives one prompt per side.")
    eval_questions: int = setting(16, ge=1, help="Questions of the val split whose speeches (both sides) are "
                                  "judged at every evaluation (results/debate/ppo/eval/).")
    seed: int = setting(0, help="Seed of each judged round: the answer order the judge sees, the speaker's slot "
                        "and the opponent's speech.")
    hparams: PPOConfig = setting(default_factory=lambda: PPOConfig(
        max_prompt_length=1024, max_new_tokens=default_of(CheckpointDebater, "max_new_tokens")),
        help="The PPO settings (the keys of ppo.hparams); max_prompt_length must hold the longest speech prompt "
        "(prompts are never truncated) and max_new_tokens equal debater.max_new_tokens (the speech length of "
        "every checkpoint).")


SFT_NAME = "sft"
DPO_NAME = "dpo{i}"
PPO_NAME = "ppo"
PPO_DIR = "results/debate/ppo"
STRENGTH = "strength"
SELFPLAY = "dpo/iter{i}"


@dataclass
class DebateTrainingConfig(Section):
    """Training debaters on their own tournaments (``debate.training``): SFT on a tournament's
    transcripts, then ``iterations`` rounds of self-play + DPO on best-of-N pairs, and a cross-play
    ``strength`` tournament of every checkpoint (:mod:`rlhf_pipeline.debate.training`)."""

    section = "debate.training"

    source: str | None = setting(None, help="Tournament whose speeches the SFT debater learns from (null: no "
                                 "training rules).")
    source_debaters: list[str] = setting(default_factory=list, unique=True, help="Whose speeches (empty = every "
                                         "debater of the source tournament).")
    max_speeches: int | None = setting(None, ge=1, help="SFT on at most this many of those speeches (a seeded "
                                       "sample; null = all).")
    judge: str = setting("minilm", help="The judge (debate.judges) of the self-play and strength tournaments.")
    tokenizer: str = setting("world", help="Tokenizer of a from-scratch SFT debater: 'world' (made from its "
                             "training speeches and prompts, saved with it), 'minilm', a hub id or a path.")
    iterations: int = setting(2, ge=1, help="DPO iterations K: iteration i self-plays checkpoint i-1 (0 = SFT), "
                              "builds pairs and trains checkpoint i.")
    sft: SFTConfig = setting(default_factory=SFTConfig, help="The SFT debater (the sft section's settings).")
    debater: CheckpointDebater = setting(default_factory=CheckpointDebater, help="How checkpoints speak.")
    pairs: PairSettings = setting(default_factory=PairSettings, help="Preference pairs.")
    dpo: DPOSettings = setting(default_factory=DPOSettings, help="DPO settings of every iteration.")
    dpo_per_iteration: dict[str, dict[str, Any]] = setting(default_factory=dict, help="Iteration number -> "
                                                           "overrides of dpo for that iteration (e.g. {2: {beta: "
                                                           "0.2}}).")
    selfplay: TrainingTournament = setting(default_factory=TrainingTournament, help="Each iteration's self-play "
                                           "tournament (best-of-N on).")
    strength: TrainingTournament = setting(default_factory=lambda: TrainingTournament(formats=["debate",
                                                                                             "consultancy"]),
                                           help="The cross-play tournament of every checkpoint (and best-of-N "
                                           "variants): results/debate/strength/.")
    ppo: DebatePPOSettings = setting(default_factory=DebatePPOSettings, help="A debater trained by PPO against "
                                     "the judge (checkpoint ppo; off unless enabled).")

    def check(self, where: str) -> None:
        for key in self.dpo_per_iteration:
            if not str(key).isdigit() or not 1 <= int(key) <= self.iterations:
                bad(join(where, "dpo_per_iteration"), key, f"iteration numbers 1..{self.iterations}")
            self.dpo_for(int(key), join(where, f"dpo_per_iteration.{key}"))
        if "debate" not in self.strength.formats:
            bad(join(where, "strength.formats"), self.strength.formats, "a list with debate (ratings come from "
                "cross-play debates)")
        if self.selfplay.best_of_n.n < 2 and self.selfplay.branching == "none":
            bad(join(where, "selfplay.best_of_n.n"), self.selfplay.best_of_n.n, "n >= 2 (or selfplay.branching other "
                "than none): DPO pairs are built from best-of-N alternatives and branched slots")
        if self.selfplay.anchors:
            bad(join(where, "selfplay.anchors"), self.selfplay.anchors, "[] (anchors join the strength tournament; "
                "self-play plays the checkpoint alone)")
        if self.strength.branching != "none":
            bad(join(where, "strength.branching"), self.strength.branching, "none (the strength tournament rates "
                "checkpoints; branching makes training pairs, in selfplay)")

        if self.ppo.enabled:
            names = [n for n, _ in self.checkpoints() if n != PPO_NAME]
            if self.ppo.init not in names:
                bad(join(where, "ppo.init"), self.ppo.init, f"one of the checkpoints {names}")
            if self.ppo.hparams.max_new_tokens != self.debater.max_new_tokens:
                bad(join(where, "ppo.hparams.max_new_tokens"), self.ppo.hparams.max_new_tokens,
                    f"debater.max_new_tokens ({self.debater.max_new_tokens}): the speech length of every checkpoint")

    def dpo_for(self, i: int, where: str | None = None) -> DPOSettings:
        """Iteration ``i``'s DPO settings: ``dpo`` updated by ``dpo_per_iteration[i]``."""
        over = self.dpo_per_iteration.get(str(i), {})
        at = where or f"{self.section}.dpo_per_iteration.{i}"
        check_keys(DPOSettings, over, at)
        return DPOSettings.from_dict({**self.dpo.to_dict(), **over}, at)

    def checkpoints(self) -> list[tuple[str, str]]:
        """``(debater name, model directory)`` of every checkpoint: SFT, then DPO iterations 1..K, then the PPO
        debater when ``ppo.enabled``."""
        out = [(SFT_NAME, "results/debate/sft/model")]
        out += [(DPO_NAME.format(i=i), f"results/debate/dpo/iter{i}/model") for i in range(1, self.iterations + 1)]
        out += [(PPO_NAME, f"{PPO_DIR}/model")] if self.ppo.enabled else []
        return out

    def bon_name(self, name: str) -> str:
        return f"{name}_bo{self.strength.best_of_n.n}"

    def derived(self) -> tuple[dict[str, ModelConfig], dict[str, TournamentConfig]]:
        """The debaters (checkpoints, their best-of-N variants) and tournaments (``dpo/iter{i}``,
        ``strength``) the training adds to the debate section."""
        debaters: dict[str, ModelConfig] = {}
        for name, path in self.checkpoints():
            debaters[name] = self.debater.model_config(path)
            if self.strength.best_of_n.n > 1:
                debaters[self.bon_name(name)] = self.debater.model_config(path, self.strength.best_of_n)
        tournaments: dict[str, TournamentConfig] = {}
        names = [n for n, _ in self.checkpoints()]
        for i in range(1, self.iterations + 1):
            t = self.selfplay
            tournaments[SELFPLAY.format(i=i)] = TournamentConfig(
                debaters=[names[i - 1]], judge=self.judge, kind="self_play", formats=t.formats, rounds=t.rounds,
                questions=t.questions, best_of_n=t.best_of_n, branching=t.branching, n_chunks=t.n_chunks,
                bootstrap=t.bootstrap, seed=t.seed + i)
        t = self.strength
        tournaments[STRENGTH] = TournamentConfig(
            debaters=[d for n in names for d in ([n, self.bon_name(n)] if t.best_of_n.n > 1 else [n])] + t.anchors,
            judge=self.judge, kind="round_robin", formats=t.formats, rounds=t.rounds, questions=t.questions,
            n_chunks=t.n_chunks, bootstrap=t.bootstrap, seed=t.seed)
        return debaters, tournaments


@dataclass
class DebateSection(Section):
    """The ``debate`` config section."""

    section = "debate"

    dataset: DebateDatasetConfig = setting(default_factory=DebateDatasetConfig, help="Passages and questions.")
    prompts: str = setting("config/debate/prompts.yaml", help="YAML file of named prompt sets with {placeholders}.")
    quote_fuzzy_threshold: float = setting(90.0, ge=0, le=100, help="A quote that matches the passage neither "
                                           "exactly nor after normalising (case, whitespace, punctuation) is verified "
                                           "when its rapidfuzz partial_ratio against the passage is at least this.")
    debaters: dict[str, ModelConfig] = setting(default_factory=dict, help="Named debater configs.")
    judges: dict[str, ModelConfig] = setting(default_factory=dict, help="Named judge configs.")
    tournaments: dict[str, TournamentConfig] = setting(default_factory=dict, help="Named tournaments: "
                                                       "results/debate/{name}/.")
    training: DebateTrainingConfig = setting(default_factory=DebateTrainingConfig, help="Training debaters on "
                                             "their own tournaments (SFT, iterated DPO, the strength experiment).")
    human: HumanDebatesConfig = setting(default_factory=HumanDebatesConfig, help="The published human debates "
                                        "(Michael et al. 2023) as tournament human: results/debate/human/.")

    def check(self, where: str) -> None:
        for name, d in self.debaters.items():
            if d.type not in DEBATER_TYPES:
                bad(join(where, f"debaters.{name}.type"), d.type, f"one of {list(DEBATER_TYPES)}")
        for name, j in self.judges.items():
            if j.type not in JUDGE_TYPES:
                bad(join(where, f"judges.{name}.type"), j.type, f"one of {list(JUDGE_TYPES)}")
        for name, t in self.tournaments.items():
            at = join(where, f"tournaments.{name}")
            unknown = [d for d in t.debaters if d not in self.debaters]
            if unknown:
                bad(f"{at}.debaters", t.debaters, f"names from debate.debaters {sorted(self.debaters)}")
            if t.judge not in self.judges:
                bad(f"{at}.judge", t.judge, f"a name from debate.judges {sorted(self.judges)}")
            judge = self.judges[t.judge]
            bon_n = max([t.best_of_n.n] + [self.debaters[d].best_of_n.n for d in t.debaters
                                           if self.debaters[d].best_of_n is not None])
            if judge.type == "anthropic" and bon_n > 1:
                bad(f"{at}.judge", t.judge, "a judge with probabilities: best-of-N (n > 1 here) scores candidates by "
                    "the judge's probability, and the anthropic judge gives a 0/1 verdict")
        if self.human.path and HUMAN in self.tournaments:
            bad(join(where, f"tournaments.{HUMAN}"), HUMAN, "another name: results/debate/human/ holds the human "
                "debates (debate.human.path is set)")
        self._check_training(join(where, "training"))

    def human_tournament(self) -> dict[str, TournamentConfig]:
        """``{human: its tournament}`` when ``human.path`` is set, else empty."""
        return {HUMAN: self.human.as_tournament()} if self.human.path else {}

    def _check_training(self, where: str) -> None:
        tr = self.training
        if tr.source is None:
            return
        sources = {**self.tournaments, **self.human_tournament()}
        if tr.source not in sources:
            bad(f"{where}.source", tr.source, f"a name from debate.tournaments {sorted(self.tournaments)}, or "
                f"{HUMAN} with debate.human.path set")
        src = sources[tr.source].debaters
        unknown = [d for d in tr.source_debaters if d not in src]
        if unknown:
            bad(f"{where}.source_debaters", tr.source_debaters, f"debaters of tournament {tr.source} {src}")
        if tr.judge not in self.judges:
            bad(f"{where}.judge", tr.judge, f"a name from debate.judges {sorted(self.judges)}")
        if self.judges[tr.judge].type == "anthropic":
            bad(f"{where}.judge", tr.judge, "a judge with probabilities (best-of-N scores and DPO pairs need them)")
        unknown = [d for d in tr.strength.anchors if d not in self.debaters]
        if unknown:
            bad(f"{where}.strength.anchors", tr.strength.anchors, f"names from debate.debaters {sorted(self.debaters)}")
        debaters, tournaments = tr.derived()
        for kind, mine, theirs in (("debaters", debaters, self.debaters), ("tournaments", tournaments,
                                                                            self.tournaments)):
            clash = sorted(set(mine) & set(theirs))
            if clash:
                bad(f"debate.{kind}", clash, f"names other than {sorted(mine)} (debate.training adds those)")
        if tr.ppo.enabled:
            self.ppo_run(f"{where}.ppo")

    def ppo_run(self, where: str = DebatePPOSettings.section) -> DebatePPORun:
        """The debate-ppo stage's config: ``training.ppo`` with the judge, the opponent and the prompts it uses
        (an opponent named by a checkpoint speaks as ``training.debater``); PipelineError naming
        ``where.opponent`` for an unknown opponent."""
        tr = self.training
        name = tr.ppo.opponent
        checkpoints = {n: path for n, path in tr.checkpoints() if n != PPO_NAME}
        if name is None:
            opponent = None
        elif name in checkpoints:
            opponent = tr.debater.model_config(checkpoints[name])
        elif name in self.debaters:
            opponent = self.debaters[name]
        else:
            bad(join(where, "opponent"), name, f"null, a checkpoint {sorted(checkpoints)} or a debater of "
                f"debate.debaters {sorted(self.debaters)}")
        return DebatePPORun(judge=tr.judge, judges={tr.judge: self.judges[tr.judge]}, settings=tr.ppo,
                            debater=tr.debater, opponent=opponent, prompts=self.prompts,
                            quote_fuzzy_threshold=self.quote_fuzzy_threshold)

    def with_training(self) -> DebateSection:
        """This section plus the debaters and tournaments ``training`` adds (itself when it adds none);
        the result's own ``training`` is off (its tournaments are already in)."""
        if self.training.source is None:
            return self
        debaters, tournaments = self.training.derived()
        return DebateSection(dataset=self.dataset, prompts=self.prompts,
                             quote_fuzzy_threshold=self.quote_fuzzy_threshold,
                             debaters={**self.debaters, **debaters}, judges=self.judges,
                             tournaments={**self.tournaments, **tournaments}, human=self.human)

    def tournament_run(self, name: str) -> TournamentRun:
        """What one tournament's jobs depend on: the tournament, only the models it uses, the prompts
        file and the quote threshold (so editing another tournament or an unused model reruns nothing)."""
        t = self.tournaments[name]
        return TournamentRun(name=name, tournament=t, debaters={d: self.debaters[d] for d in t.debaters},
                             judges={t.judge: self.judges[t.judge]}, prompts=self.prompts,
                             quote_fuzzy_threshold=self.quote_fuzzy_threshold)

    def check_environment(self, where: str = "debate") -> None:
        """Plan-time: every API-key variable a used backend names is set."""
        used_d = {d for t in self.tournaments.values() for d in t.debaters}
        used_j = {t.judge for t in self.tournaments.values()}
        for name in sorted(used_d):
            self.debaters[name].check_environment(join(where, f"debaters.{name}"))
        for name in sorted(used_j):
            self.judges[name].check_environment(join(where, f"judges.{name}"))


@dataclass
class TournamentRun(Section):
    """One tournament with everything its jobs need: the ``debate-chunk`` stage's ``--config``."""

    section = "debate tournament"

    name: str = setting(help="The tournament's name (results/debate/<name>/).")
    tournament: TournamentConfig = setting(help="Its settings.")
    debaters: dict[str, ModelConfig] = setting(help="The debaters it uses.")
    judges: dict[str, ModelConfig] = setting(help="Its judge.")
    prompts: str = setting("config/debate/prompts.yaml", help="The prompts file.")
    quote_fuzzy_threshold: float = setting(90.0, ge=0, le=100, help="See debate.quote_fuzzy_threshold.")

    def section_view(self) -> DebateSection:
        """The same as a DebateSection holding just this tournament."""
        return DebateSection(prompts=self.prompts, quote_fuzzy_threshold=self.quote_fuzzy_threshold,
                             debaters=self.debaters, judges=self.judges, tournaments={self.name: self.tournament})


@dataclass
class DebatePPORun(Section):
    """The PPO debater's run with everything its job needs: the ``debate-ppo`` stage's ``--config``."""

    section = "debate ppo run"

    judge: str = setting(help="The judge's name (debate.training.judge).")
    judges: dict[str, ModelConfig] = setting(help="The judge.")
    settings: DebatePPOSettings = setting(default_factory=DebatePPOSettings, help="debate.training.ppo.")
    debater: CheckpointDebater = setting(default_factory=CheckpointDebater, help="How checkpoints speak (its prompt "
                                         "set renders the speech prompts).")
    opponent: ModelConfig | None = setting(None, help="The opponent's backend (null: consultancy).")
    prompts: str = setting("config/debate/prompts.yaml", help="The prompts file.")
    quote_fuzzy_threshold: float = setting(90.0, ge=0, le=100, help="See debate.quote_fuzzy_threshold.")

    @property
    def format(self) -> str:
        """The judged round's format: ``debate`` with an opponent, else ``consultancy``."""
        return "consultancy" if self.opponent is None else "debate"
