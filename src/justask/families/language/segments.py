"""Which steps before an achievement demonstrate it: goal-directed segments of a hindsight label.

A label says "steps s..T of this episode are a demonstration of instruction i" (T: the step the
verifier accepted). Labelling from step 0 makes a random walk, or a bot chasing another goal, a
"demonstration" of everything it stumbled on. Here a step t stays in the segment only when what
the agent still took from t to succeed is within ``slack`` times (plus ``margin``) what the
shortest path from t needs: ``T - t + 1 <= slack * d(t) + margin``; the segment starts at the
earliest such step (with ``slack=None``, at step 0: the plain hindsight prefix).

``d(t)`` counts minigrid actions (turn left, turn right, forward, and the final pickup, toggle or
drop) from the agent's pose at step t, by breadth-first search over (cell, direction) on the grid
as it was when the instruction was achieved (:func:`shortest_actions`). For "put A next to B" it
is the way to A, the pickup, the way from there to the drop cell used, and the drop; for
"a then b", the segment of a.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

# minigrid: direction 0 east (+x), 1 south (+y), 2 west (-x), 3 north (-y)
STEP = ((1, 0), (0, 1), (-1, 0), (0, -1))


@dataclass(frozen=True)
class Pose:
    """The agent before an action: cell, direction, and what it carries ((colour, type) or None)."""

    x: int
    y: int
    dir: int
    carrying: tuple[str, str] | None = None


def passable(grid) -> np.ndarray:
    """(width, height) bool: cells the agent can step into (empty, or can_overlap: an open door...)."""
    out = np.zeros((grid.width, grid.height), bool)
    for x in range(grid.width):
        for y in range(grid.height):
            cell = grid.get(x, y)
            out[x, y] = cell is None or cell.can_overlap()
    return out


def shortest_actions(free: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """(width, height, 4) int: the fewest turn/forward actions from each pose to face ``target``
    (-1 where it cannot be faced), by reverse breadth-first search from the facing poses."""
    w, h = free.shape
    free = free.copy()
    free[target] = False  # faced, never entered
    dist = np.full((w, h, 4), -1, np.int64)
    queue: deque[tuple[int, int, int]] = deque()
    tx, ty = target
    for d, (dx, dy) in enumerate(STEP):
        x, y = tx - dx, ty - dy
        if 0 <= x < w and 0 <= y < h and free[x, y]:
            dist[x, y, d] = 0
            queue.append((x, y, d))
    while queue:
        x, y, d = queue.popleft()
        here = dist[x, y, d] + 1
        # predecessors: a turn from the neighbouring direction, or a step forward from behind
        preds = [(x, y, (d + 1) % 4), (x, y, (d - 1) % 4)]
        bx, by = x - STEP[d][0], y - STEP[d][1]
        if 0 <= bx < w and 0 <= by < h and free[bx, by]:
            preds.append((bx, by, d))
        for p in preds:
            if dist[p] < 0:
                dist[p] = here
                queue.append(p)
    return dist


def directed_start(needed: list[int], end: int, slack: float | None, margin: float) -> int:
    """The first step of the segment ending at ``end`` (``needed[t]``: d(t), the fewest actions from
    step t, for t = 0..end; negative: unreachable, never kept)."""
    if slack is None:
        return 0
    for t in range(end + 1):
        if needed[t] >= 0 and end - t + 1 <= slack * needed[t] + margin:
            return t
    return end


def needed_actions(grid, poses: list[Pose], verb: str, end: int, obj_cell: tuple[int, int],
                   drop_cell: tuple[int, int] | None = None, picked_at: int | None = None) -> list[int]:
    """d(t) for t = 0..end of a clause achieved at step ``end`` on ``grid`` (as it is then).

    ``obj_cell``: the cell the agent faced to go to, open or pick up the object (for putnext: where
    A was picked up, at step ``picked_at``); ``drop_cell``: where A was dropped (putnext only)."""
    free = passable(grid)
    finish = 0 if verb == "goto" else 1  # pickup, toggle
    if verb != "putnext":
        field = shortest_actions(free, obj_cell)
        return [int(field[p.x, p.y, p.dir]) + finish if field[p.x, p.y, p.dir] >= 0 else -1
                for p in poses[:end + 1]]
    before = free.copy()  # the grid before the pickup: A in its cell, the drop cell empty
    before[drop_cell] = True
    to_a = shortest_actions(before, obj_cell)
    to_drop = shortest_actions(free, drop_cell)
    after = poses[picked_at + 1] if picked_at is not None and picked_at + 1 < len(poses) else poses[end]
    second = int(to_drop[after.x, after.y, after.dir]) + 1  # the way to the drop cell, and the drop
    out = []
    for t, p in enumerate(poses[:end + 1]):
        if picked_at is not None and t > picked_at:  # carrying A
            d = to_drop[p.x, p.y, p.dir]
            out.append(int(d) + 1 if d >= 0 else -1)
        else:
            d = to_a[p.x, p.y, p.dir]
            out.append(int(d) + 1 + second if d >= 0 and second > 0 else -1)
    return out
