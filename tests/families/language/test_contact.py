"""The evaluation's failure diagnostic: which object an ask engaged first, read off the agent's own
views (asking.first_contact) and placed against the object the ask names (asking.contact_kind)."""

import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX

from justask.families.language.asking import contact_kind, first_contact


def views(fronts: list[tuple[str, str] | None]) -> np.ndarray:
    """Views (T, 7, 7, 3) whose front cell holds each of ``fronts`` in turn (None: an empty cell)."""
    images = np.zeros((len(fronts), 7, 7, 3), np.uint8)
    images[..., 0] = OBJECT_TO_IDX["empty"]
    for t, front in enumerate(fronts):
        if front is not None:
            images[t, 3, 5] = (OBJECT_TO_IDX[front[1]], COLOR_TO_IDX[front[0]], 0)
    return images


def test_the_front_cell_is_the_one_minigrid_says_the_agent_faces():
    from justask.families.language.env import make_grid_env, reset_quietly

    env = make_grid_env("BabyAI-GoToLocal-v0")
    obs = reset_quietly(env, 3)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        u = env.unwrapped
        cell = u.grid.get(*u.front_pos)
        want = cell.encode() if cell is not None else (OBJECT_TO_IDX["empty"], 0, 0)
        assert tuple(obs["image"][3, 5]) == tuple(want)
        checked += cell is not None and cell.type in ("ball", "box", "key")
        obs, *_, terminated, truncated, _ = env.step(int(rng.choice([0, 1, 2])))
        if terminated or truncated:
            obs = reset_quietly(env, 4)
    env.close()
    assert checked  # the walk faced objects, not only empty floor and walls


def test_go_to_counts_the_first_object_faced_after_a_step():
    red_box, red_ball = ("red", "box"), ("red", "ball")
    # faced at reset does not count (the verifier judges only after a step); walls never count
    images = views([red_box, None, ("grey", "wall"), red_ball, red_box])
    assert first_contact(images, np.array([Actions.left, Actions.forward, Actions.right, Actions.left]),
                         "goto") == red_ball
    assert first_contact(views([None, None]), np.array([Actions.forward]), "goto") is None


def test_pick_up_counts_only_a_pickup_that_took_the_object():
    key, ball = ("blue", "key"), ("green", "ball")
    # facing the key is not enough, and a pickup that fails (the cell stays full) is not a contact
    images = views([key, key, ball, None])
    actions = np.array([Actions.forward, Actions.pickup, Actions.pickup])
    assert first_contact(images, actions, "pickup") == ball
    assert first_contact(images, actions, "putnext") == ball
    assert first_contact(images, np.array([Actions.forward, Actions.forward, Actions.forward]), "pickup") is None


def test_open_counts_the_first_door_toggled():
    door = ("purple", "door")
    images = views([("red", "ball"), door, door])
    assert first_contact(images, np.array([Actions.toggle, Actions.toggle]), "open") == door


def test_contact_kinds():
    target = ("red", "ball")
    assert contact_kind(("red", "ball"), target) == "target"
    assert contact_kind(("red", "box"), target) == "same_colour"
    assert contact_kind(("blue", "ball"), target) == "same_type"
    assert contact_kind(("blue", "key"), target) == "other"
    assert contact_kind(None, target) == "none"
