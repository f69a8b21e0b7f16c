"""The seed streams of every group of episodes the reward family rolls out: collect, the
improvement rounds and the PPO reference draw their seeds from them, evaluate keeps its frozen
seeds disjoint from them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from justask.seeding import stream_seeds

if TYPE_CHECKING:
    from justask.config import Params


def seed_streams(params: Params) -> dict[str, tuple[str, int]]:
    """Every group of episodes collect, the rounds and the PPO reference roll out: name -> (seed
    stream, episode count; for PPO, env count: each env is seeded once)."""
    cfg = params.family("reward").collect
    streams = {"demos": (f"reward/demos/{cfg.demonstrator}", cfg.demos)}
    streams |= {f"noise/{e:g}": (f"reward/noise/{e:g}", cfg.episodes_per_noise) for e in cfg.noise}
    streams |= {f"held_out/{b.name}": (f"reward/held_out/{b.name}", b.episodes) for b in cfg.held_out}
    streams |= {f"reference/{r}": (f"reward/reference/{r}", cfg.reference_episodes) for r in ("expert", "random")}
    train = params.family("reward").train
    streams |= {f"round{r}/{kind}/seed{s}/noise/{e:g}": (round_stream(r, kind, s, e), train.rounds.episodes_per_noise)
                for r in range(1, train.rounds.rounds + 1) for kind in train.models for s in train.seeds
                for e in cfg.noise}
    if train.ppo is not None:
        streams |= {f"ppo/seed{s}": (ppo_stream(s), train.ppo.n_envs) for s in train.seeds}
    return streams


def ppo_stream(seed: int) -> str:
    """Seed stream of the PPO reference's envs for training seed ``seed`` (one seed per env)."""
    return f"reward/ppo/seed{seed}"


def round_stream(r: int, kind: str, seed: int, epsilon: float) -> str:
    """Seed stream of improvement round ``r``'s rollouts of policy ``kind`` (training seed
    ``seed``) at noise ``epsilon``."""
    return f"reward/round{r}/{kind}/seed{seed}/noise/{epsilon:g}"


def collect_env_seeds(params: Params) -> set[int]:
    """Every env seed collect, the rounds and PPO use (evaluation must avoid them)."""
    return {s for stream, n in seed_streams(params).values() for s in stream_seeds(params.seed, stream, n)}
