"""Stages of the ``reward`` family (D-REX on LunarLander): same contract as the ``return``
stages, ``(params, root) -> None``, outputs under ``artifacts/reward/``."""
