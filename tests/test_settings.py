"""``torchrl_seps.settings``: the torch-free fields of the trainer's config, and what they name."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import fields, replace

import pytest
import torch

from torchrl_seps.identification import IdentificationOptions
from torchrl_seps.scenarios import list_presets
from torchrl_seps.settings import GRID_WORLD_SETTINGS, PRESET_NAMES, TrainerSettings, parse_keyword_arguments
from torchrl_seps.training import TrainerConfig, make_loss, make_trainer


def test_preset_names_are_the_presets_make_env_builds():
    assert PRESET_NAMES == tuple(list_presets())


def test_the_identification_frames_default_is_identifications():
    assert TrainerSettings.id_frames == IdentificationOptions.frames


def test_trainer_config_has_exactly_the_settings_fields():
    assert [spec.name for spec in fields(TrainerConfig)] == [spec.name for spec in fields(TrainerSettings)]


def test_importing_the_settings_does_not_import_torch():
    code = ("import sys, torchrl_seps.settings\n"
            "assert not {'torch', 'torchrl', 'numpy'} & set(sys.modules), sorted(sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_scenario_kwargs_reach_the_env_as_python_values():
    settings = TrainerSettings(preset="balance", scenario_kwargs=["n_agents=4", "shaping=False", "name=x"],
                               group_sizes=[2, 2])
    assert settings.env_overrides == {"continuous_actions": False, "groups": (2, 2), "n_agents": 4,
                                      "shaping": False, "name": "x"}
    assert parse_keyword_arguments(None) == {} and parse_keyword_arguments(["a=b=c"]) == {"a": "b=c"}


def test_grid_world_presets_train_with_their_own_settings():
    for preset in PRESET_NAMES:
        config = TrainerSettings.for_preset(preset)
        grid_world = preset.startswith(("lbf-", "crware-"))
        expected = {**{spec.name: spec.default for spec in fields(TrainerSettings) if spec.name in GRID_WORLD_SETTINGS},
                    **(GRID_WORLD_SETTINGS if grid_world else {})}
        assert {name: getattr(config, name) for name in GRID_WORLD_SETTINGS} == expected, preset
    assert TrainerConfig.for_preset("lbf-8x8-3p-2f", num_envs=8).num_envs == 8
    assert isinstance(TrainerConfig.for_preset("bps-1"), TrainerConfig)


@pytest.mark.parametrize("activation, layer", [("tanh", torch.nn.Tanh), ("relu", torch.nn.ReLU)])
def test_the_activation_reaches_actor_and_critic(activation, layer):
    config = TrainerConfig(preset="lbf-8x8-3p-2f", num_envs=2, rollout_steps=5, frames=10, minibatches=1,
                           eval_envs=1, activation=activation)
    trainer = make_trainer("nops", 0, config)
    for net in (trainer.actor, trainer.critic):
        kinds = {type(module) for module in net.modules()}
        assert layer in kinds and not {torch.nn.Tanh, torch.nn.ReLU} - {layer} & kinds
    assert next(trainer.iterations()).losses["loss_objective"].isfinite().all()
    trainer.collector.shutdown()


def test_advantage_standardisation_is_a_setting():
    """With standardisation off, PPO's objective sees the raw advantages: on the same batch and
    networks the two losses differ, and only the standardised one is invariant to scaling them."""
    config = TrainerConfig(preset="lbf-8x8-3p-2f", num_envs=2, rollout_steps=5, frames=10, minibatches=1,
                           eval_envs=1)
    trainer = make_trainer("fups", 0, config)
    batch = next(trainer.iterations()).batch.reshape(-1)
    trainer.collector.shutdown()
    advantage = (config.group, "advantage")
    scaled = batch.clone().set(advantage, batch[advantage] * 10)
    objectives = {}
    for normalize in (True, False):
        loss = make_loss(replace(config, normalize_advantage=normalize), trainer.actor, trainer.critic)
        assert loss.normalize_advantage is normalize
        objectives[normalize] = [loss(each)["loss_objective"].item() for each in (batch, scaled)]
    standardised, raw = objectives[True], objectives[False]
    assert standardised[0] == pytest.approx(standardised[1], rel=1e-4)
    assert raw[1] != pytest.approx(raw[0], rel=1e-2)
    assert raw[0] != pytest.approx(standardised[0], rel=1e-2)
