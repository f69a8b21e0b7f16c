"""Stages of the ``language`` family (BabyAI): same contract as the ``return`` stages,
``(params, root) -> None``, outputs under ``artifacts/language/``."""
