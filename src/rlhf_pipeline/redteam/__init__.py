"""Curiosity-driven red-teaming: an attacker trained with the project's PPO against a target model,
rewarded for toxic target replies and for novel attacks.

Modules: ``config`` (the ``redteam:`` section), ``world`` (the embedded default's target data and
toxicity-classifier data), ``rewards`` (toxicity, self-BLEU and embedding novelty, gibberish, the
combined reward), ``metrics`` (success and diversity).
"""
