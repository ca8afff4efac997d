"""Env factories for ``benchmarks/vmas_seps.py --env env_factories:<function>`` in the tests."""
from __future__ import annotations

from torchrl_seps.scenarios import make_env


def rotnav(num_envs, seed, device, **kwargs):
    """The ``rotnav-2x4`` preset, built as a user's factory would build it."""
    return make_env("rotnav-2x4", num_envs, device=device, seed=seed, **kwargs)


def not_an_env(num_envs, seed, device, **kwargs):
    return "not an env"
