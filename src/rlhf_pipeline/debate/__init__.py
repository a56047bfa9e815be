"""Debate tournaments: debaters argue for two answers to a question about a passage only they can
read, quoting it; a judge who cannot read the passage decides.

Modules: ``config`` (the ``debate:`` section), ``types`` (the file contract and the Debater / Judge
interfaces), ``data`` (synthetic and QuALITY questions), ``quotes`` (quote verification),
``backends`` (model backends), ``rounds`` (formats), ``tournament`` (scheduling, chunks, resume),
``ratings`` (rounds.csv, ratings.csv, judge.csv, plots), ``rejudge`` (offline re-judging).
"""
