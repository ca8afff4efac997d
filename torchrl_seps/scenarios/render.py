"""Recording rollouts of VMAS environments as frames and animated GIFs.

Frames come from VMAS's own renderer (``env.render(mode="rgb_array")``), which draws with
pyglet/OpenGL. Without a display it needs an EGL library: Mesa's software one
(Debian/Ubuntu packages ``libegl1`` and ``libegl-mesa0``) works on machines without a GPU.
Our scenarios colour every agent and landmark by its hidden type, so a frame shows who
should go where.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torchrl.envs import Compose, StepCounter, TransformedEnv
from torchrl.envs.utils import step_mdp

from torchrl_seps._checks import check_float, check_int

__all__ = ["episode_length", "render_rollout", "save_gif"]

logger = logging.getLogger(__name__)


def episode_length(env: Any) -> int | None:
    """The time limit of a TorchRL env: its StepCounter's, else the VMAS env's ``max_steps``
    (``None`` when it has neither).

    Examples:
        >>> from torchrl_seps.scenarios import make_env
        >>> episode_length(make_env("bps-1", num_envs=1)), episode_length(make_env("balance", num_envs=1))
        (50, 100)
    """
    if isinstance(env, TransformedEnv):
        transform = env.transform
        transforms = transform.transforms if isinstance(transform, Compose) else [transform]
        for t in transforms:
            if isinstance(t, StepCounter) and t.max_steps is not None:
                return t.max_steps
        env = env.base_env
    return getattr(env, "max_steps", None)


def render_rollout(
    env: Any,
    policy: Callable | None = None,
    max_steps: int | None = None,
    env_index: int = 0,
) -> list[np.ndarray]:
    """Run one rollout of ``env`` and return a frame of environment ``env_index`` per state.

    Args:
        env: a TorchRL environment over VMAS (e.g. from :func:`make_env`).
        policy (callable, optional): a TorchRL policy (tensordict in, tensordict with an
            action out). Default: random actions.
        max_steps (int, optional): steps to run. Default: the environment's episode length
            (from its :class:`~torchrl.envs.transforms.StepCounter` or VMAS ``max_steps``),
            or 50 when it has none.
        env_index (int): which of the batched environments to draw.

    Returns:
        list[numpy.ndarray]: ``max_steps + 1`` frames (the reset state, then one per step),
        each ``[H, W, 3]`` ``uint8``.

    Examples:
        >>> from torchrl_seps.scenarios import make_env
        >>> frames = render_rollout(make_env("bps-1", num_envs=2, seed=0), max_steps=2)
        >>> len(frames), frames[0].shape, frames[0].dtype
        (3, (700, 700, 3), dtype('uint8'))
    """
    if max_steps is None:
        max_steps = episode_length(env) or 50
    check_int("max_steps", max_steps)
    n_envs = env.batch_size[0] if len(env.batch_size) else 1
    if isinstance(env_index, bool) or not isinstance(env_index, int) or not 0 <= env_index < n_envs:
        raise ValueError(f"env_index must be an int in [0, {n_envs}), got {env_index!r}")

    def frame() -> np.ndarray:
        return np.asarray(env.render(mode="rgb_array", env_index=env_index), dtype=np.uint8)

    tensordict = env.reset()
    frames = [frame()]
    for _ in range(max_steps):
        tensordict = policy(tensordict) if policy is not None else env.rand_action(tensordict)
        tensordict = step_mdp(env.step(tensordict))
        frames.append(frame())
    return frames


def save_gif(
    frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 10.0
) -> str:
    """Save frames ``[H, W, 3]`` (``uint8``) as an animated GIF that loops forever.

    Args:
        frames: the frames, e.g. from :func:`render_rollout`.
        path: the file to write (conventionally ending in ``.gif``).
        fps (float): frames per second.

    Returns:
        str: the path written.

    Examples:
        >>> import tempfile, pathlib
        >>> frames = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (0, 128, 255)]
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     out = save_gif(frames, pathlib.Path(tmp) / "demo.gif", fps=5)
        ...     from PIL import Image
        ...     Image.open(out).n_frames
        3
    """
    from PIL import Image

    if len(frames) == 0:
        raise ValueError("frames must contain at least one frame, got none")
    check_float("fps", fps, positive=True)
    images = []
    for i, f in enumerate(frames):
        array = np.asarray(f)
        if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 arrays [H, W, 3]; frame {i} has shape "
                f"{array.shape} and dtype {array.dtype}"
            )
        images.append(Image.fromarray(array))
    path = os.fspath(path)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000.0 / fps)),
        loop=0,
    )
    logger.info("saved %d frames to %s", len(images), path)
    return path
