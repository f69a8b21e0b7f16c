"""The tasks of Dark Room: every goal cell but the start, split into training and held-out goals,
and the check that the split tests what it claims. Plain Python (the params schema validates with it)."""

from __future__ import annotations


def start_cell(size: int) -> tuple[int, int]:
    return size // 2, size // 2


def best_return(goal: tuple[int, int], size: int, horizon: int) -> float:
    """The most an episode can earn: reach the goal in as few moves as possible, then stay."""
    s = start_cell(size)
    d = abs(goal[0] - s[0]) + abs(goal[1] - s[1])
    return float(max(horizon - d + 1, 0))


def every_goal(size: int) -> list[tuple[int, int]]:
    """Every task: each cell but the start, row by row."""
    return [(r, c) for r in range(size) for c in range(size) if (r, c) != start_cell(size)]


def training_goals(cfg) -> list[tuple[int, int]]:
    """Every goal not in ``cfg.held_out_goals`` (``cfg``: the family's ``env`` section)."""
    return split_goals(cfg.size, cfg.held_out_goals)


def split_goals(size: int, held_out) -> list[tuple[int, int]]:
    """The training goals: every goal not in ``held_out``."""
    held = {tuple(g) for g in held_out}
    return [g for g in every_goal(size) if g not in held]


def check_goal_split(train: list[tuple[int, int]], held_out: list[tuple[int, int]], size: int) -> None:
    """That the held-out test tests generalization to new goals and nothing else: the two sets are
    disjoint, and every held-out goal's parts occur among the training goals in the same context
    (its row, its column and its distance from the start each belong to some training goal).
    Raises ``ValueError`` naming the goal and what is missing."""
    s = start_cell(size)
    dist = lambda g: abs(g[0] - s[0]) + abs(g[1] - s[1])  # noqa: E731
    both = sorted(set(map(tuple, train)) & set(map(tuple, held_out)))
    if both:
        raise ValueError(f"goals {both} are both training and held-out goals; a held-out goal must never be trained on")
    for name, part in (("row", lambda g: g[0]), ("column", lambda g: g[1]), ("distance from the start", dist)):
        seen = {part(g) for g in train}
        for g in held_out:
            if part(g) not in seen:
                raise ValueError(f"held-out goal {list(g)}: no training goal shares its {name} ({part(g)}), so the "
                                 "test would confound a new goal with a new region; hold out fewer goals there")


