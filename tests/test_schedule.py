"""Regrouping a running training (parameters, optimizer state, loss, collector) and SePS's
schedule of identifications."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Collector

from tests.threads import one_thread  # noqa: F401
from torchrl_seps.policies import make_actor, make_critic
from torchrl_seps.scenarios import make_env
from torchrl_seps.identification import IdentificationOptions
from torchrl_seps.schedule import SePSSchedule, grouped_networks, regroup
from torchrl_seps.training import TrainerConfig, make_loss, make_minibatch_buffer, update

TYPES = [0, 0, 0, 0, 1, 1, 1, 1]  # rotnav-2x4's hidden types


def config(**settings) -> TrainerConfig:
    return TrainerConfig(preset="rotnav-2x4", num_envs=4, rollout_steps=10, num_cells=16,
                         minibatches=2, ppo_epochs=1, **settings)


def training(groups, algorithm="a2c", seed=0):
    """Env, actor, critic, loss, optimizer, one batch of the env, and an update function."""
    torch.manual_seed(seed)
    cfg = config(algorithm=algorithm)
    env = make_env(cfg.preset, cfg.num_envs, seed=seed)
    actor = make_actor(env, groups, depth=2, num_cells=16)
    critic = make_critic(env, groups, depth=2, num_cells=16)
    loss = make_loss(cfg, actor, critic)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    with torch.no_grad():
        batch = env.rollout(cfg.rollout_steps, actor, break_when_any_done=False)
    buffer = make_minibatch_buffer(cfg, torch.device("cpu"))

    def step():
        torch.manual_seed(123)  # the same minibatches in every run
        return update(loss, optim, batch.clone(), buffer, cfg)

    return env, actor, critic, loss, optim, batch, step


@torch.no_grad()
def outputs(actor, critic, batch):
    return actor.get_dist(batch.clone()).logits, critic(batch.clone())["agents", "state_value"]


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
@pytest.mark.parametrize(
    "old, new, kept",
    [
        ([0] * 8, TYPES, range(8)),  # the warm-up's shared network splits
        (TYPES, [0, 1, 1, 0, 2, 2, 2, 2], range(8)),  # one group splits in two, labels move
        (TYPES, [0] * 8, range(4)),  # groups merge: the merged group continues group 0
    ],
)
def test_regroup_keeps_every_output_and_the_loss(algorithm, old, new, kept):
    _, actor, critic, loss, optim, batch, step = training(old, algorithm)
    step()  # the groups' parameters and Adam moments differ from their initialisation
    logits, values = outputs(actor, critic, batch)
    with torch.no_grad():
        loss.value_estimator(batch, params=loss.critic_network_params,
                             target_params=loss.target_critic_network_params)
        before = loss(batch.clone())
    regroup(new, [actor, critic], loss=loss, optimizer=optim)
    assert [net.groups.tolist() for net in grouped_networks([actor, critic])] == [new, new]
    new_logits, new_values = outputs(actor, critic, batch)
    kept = list(kept)
    torch.testing.assert_close(new_logits[..., kept, :], logits[..., kept, :], atol=1e-6, rtol=0)
    torch.testing.assert_close(new_values[..., kept, :], values[..., kept, :], atol=1e-6, rtol=0)
    if len(kept) == 8:  # the loss reads the new parameters: every loss term is unchanged
        with torch.no_grad():
            after = loss(batch.clone())
        for key in [k for k in before.keys() if k.startswith("loss_")]:
            torch.testing.assert_close(after[key], before[key], atol=1e-5, rtol=1e-5)
    # the loss and the optimizer hold exactly the networks' new parameters
    current = {id(p) for net in (actor, critic) for p in net.parameters()}
    assert {id(p) for p in loss.parameters()} == current
    assert {id(p) for group in optim.param_groups for p in group["params"]} == current
    assert set(map(id, optim.state)) == current
    step()  # and training goes on


def agent_outputs(actor, critic, batch):
    return [t.detach().clone() for t in outputs(actor, critic, batch)]


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_adam_state_is_carried_by_a_regroup_into_the_same_groups(algorithm):
    # plain run: two steps
    _, actor, critic, _, _, batch, step = training(TYPES, algorithm)
    step(), step()
    reference = agent_outputs(actor, critic, batch)
    # one step, regroup into the same groups under swapped labels, one step
    _, actor, critic, loss, optim, batch, step = training(TYPES, algorithm)
    step()
    regroup([1, 1, 1, 1, 0, 0, 0, 0], [actor, critic], loss=loss, optimizer=optim)
    state = next(iter(optim.state.values()))
    assert state["step"].item() == (1 if algorithm == "a2c" else 2)
    step()
    for got, expected in zip(agent_outputs(actor, critic, batch), reference):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    # the same with the optimizer's state dropped differs: the check can fail
    _, actor, critic, loss, optim, batch, step = training(TYPES, algorithm)
    step()
    regroup([1, 1, 1, 1, 0, 0, 0, 0], [actor, critic], loss=loss)
    optim.state.clear()
    optim.param_groups[0]["params"] = list(loss.parameters())
    step()
    assert not torch.allclose(agent_outputs(actor, critic, batch)[0], reference[0], atol=1e-4)


def test_split_group_starts_both_halves_from_the_old_moments():
    _, actor, critic, loss, optim, _, step = training([0] * 8)
    step()
    old = {id(p): {k: v.clone() for k, v in optim.state[p].items()} for p in loss.parameters()}
    old_shapes = [p.shape for p in loss.parameters()]
    regroup(TYPES, [actor, critic], loss=loss, optimizer=optim)
    for (old_state, shape), param in zip(zip(old.values(), old_shapes), loss.parameters()):
        assert param.shape == (2, *shape[1:])
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(optim.state[param][name], old_state[name].expand(2, *shape[1:]))
        assert optim.state[param]["step"] == old_state["step"]


def test_regroup_inside_a_running_collector_loop():
    env, actor, critic, loss, optim, _, _ = training([0] * 8, algorithm="ppo")
    cfg = config(algorithm="ppo")
    buffer = make_minibatch_buffer(cfg, torch.device("cpu"))
    schedule = SePSSchedule(env, frames=80, regroup_every=120, seed=0, n_groups=2,
                            epochs=2, batch_size=32)
    collector = Collector(env, actor, frames_per_batch=40, total_frames=360,
                          auto_register_policy_transforms=False)
    n_groups = []
    for batch in collector:
        # the collector acted with the actor as it is now, regrouped or not
        with torch.no_grad():
            log_prob = actor.get_dist(batch.clone()).log_prob(batch["agents", "action"])
        torch.testing.assert_close(log_prob, batch["agents", "action_log_prob"], atol=1e-5, rtol=0)
        losses = update(loss, optim, batch, buffer, cfg)
        assert torch.isfinite(losses["loss_objective"]).all()
        schedule.observe(batch, [actor, critic], loss=loss, optimizer=optim)
        collector.update_policy_weights_()
        n_groups.append(grouped_networks([actor])[0].n_groups)
    collector.shutdown()
    assert [frames for frames, _, _ in schedule.history] == [80, 200, 320]
    assert schedule.history[0][2] and n_groups[:3] == [1, 2, 2]
    assert grouped_networks([critic])[0].groups.tolist() == schedule.groups


def test_schedule_keeps_the_last_id_frames_and_regroups_only_on_a_new_partition(monkeypatch):
    env = make_env("rotnav-2x4", 4, seed=0)
    actor = make_actor(env, [1, 1, 1, 1, 0, 0, 0, 0], depth=1, num_cells=8)
    schedule = SePSSchedule(env, frames=100, regroup_every=40, warm_up=False)
    # identification stand-in: the same partition relabelled, then a new one
    alternate = [0, 1, 0, 1, 0, 1, 0, 1]
    found = iter([TYPES, alternate, [1, 0, 1, 0, 1, 0, 1, 0], alternate])
    fitted_on = []

    def identify():
        fitted_on.append(schedule.recent_frames)
        return SimpleNamespace(groups=torch.tensor(next(found)))

    monkeypatch.setattr(schedule, "_identify", identify)
    collector = Collector(env, actor, frames_per_batch=40, total_frames=160,
                          auto_register_policy_transforms=False)
    net = grouped_networks([actor])[0]
    params = []
    for batch in collector:
        schedule.observe(batch, [actor])
        params.append(net.params)
    collector.shutdown()
    assert fitted_on == [40, 80, 120, 120]  # whole batches covering the last 100 frames
    assert [(frames, changed) for frames, _, changed in schedule.history] == [
        (40, False), (80, True), (120, False), (160, False)]
    assert params[0] is not params[1] and params[1] is params[2] is params[3]
    assert net.groups.tolist() == schedule.groups == alternate


def test_the_trainer_and_the_schedule_share_one_options_object():
    cfg = config(id_frames=320, id_epochs=2, n_groups=3)
    options = cfg.identification(seed=5)
    assert options == IdentificationOptions(frames=320, epochs=2, n_groups=3, seed=5)
    assert config().identification(seed=0).epochs == IdentificationOptions().epochs
    schedule = SePSSchedule(make_env("rotnav-2x4", 2, seed=0), options)
    assert schedule.options is options and schedule.next_identification == 320
    assert [schedule.options.seeded(i).seed for i in range(3)] == [5, 6, 7]


def test_bad_schedule_arguments():
    env = make_env("rotnav-2x4", 2, seed=0)
    with pytest.raises(ValueError, match="warm_up=False needs regroup_every"):
        SePSSchedule(env, warm_up=False)
    with pytest.raises(ValueError, match="regroup_every must be an int >= 1"):
        SePSSchedule(env, regroup_every=0)
    schedule = SePSSchedule(env, frames=10)
    actor = make_actor(env, [0] * 8, depth=1, num_cells=8)
    with pytest.raises(ValueError, match="batch lacks"):
        schedule.observe(TensorDict({}, batch_size=[2]), [actor])
    with pytest.raises(ValueError, match="no GroupedMultiAgentMLP"):
        regroup([0] * 8, [torch.nn.Linear(2, 2)])


def test_regroup_changes_nothing_when_a_module_fails_validation():
    from torchrl_seps import GroupedMultiAgentMLP
    from torchrl_seps.schedule import regroup

    four = GroupedMultiAgentMLP(3, 2, 4, groups=[0] * 4, centralized=False, depth=1, num_cells=8)
    five = GroupedMultiAgentMLP(3, 2, 5, groups=[0] * 5, centralized=False, depth=1, num_cells=8)
    optim = torch.optim.Adam(four.parameters())
    params = [p.clone() for p in four.parameters()]
    with pytest.raises(ValueError, match="length n_agents=5"):
        regroup([0, 0, 1, 1], [four, five], optimizer=optim)
    assert four.groups.tolist() == [0] * 4 and four.n_groups == 1
    assert all(torch.equal(a, b) for a, b in zip(params, four.parameters()))
    assert list(optim.param_groups[0]["params"]) == list(four.parameters())


@pytest.mark.parametrize("settings, message", [
    ({"n_groups": 4}, "n_groups must be an int in 1..n_agents=3"),
    ({"warm_up": "no"}, "warm_up"),
    ({"bogus": 1}, "bogus"),
])
def test_schedule_checks_its_options_at_construction(settings, message):
    from torchrl.envs.libs.vmas import VmasEnv

    env = VmasEnv("navigation", num_envs=2, n_agents=3, continuous_actions=False, seed=0)
    with pytest.raises((TypeError, ValueError), match=message):
        SePSSchedule(env, **settings)


@pytest.mark.parametrize("field, value, error, message", [
    ("max_grad_norm", 0, ValueError, "--max-grad-norm must be a float > 0"),
    ("gamma", 5, ValueError, r"--gamma must be a float in \(0, 1\]"),
    ("clip_epsilon", -1, ValueError, "--clip-epsilon"),
    ("lmbda", 1.5, ValueError, r"--lmbda must be a float in \[0, 1\]"),
    ("lr", float("nan"), TypeError, "--lr must be a finite float"),
    ("frames", 1.5, TypeError, "--frames must be an int"),
    ("n_groups", 50, ValueError, r"--n-groups must be an int in 1..8"),
    ("id_epochs", 0, ValueError, "--id-epochs must be an int >= 1"),
    ("device", "gpu", ValueError, "device must be 'auto'"),
    ("group", "x", ValueError, "--group 'x'"),
])
def test_trainer_config_checks_every_field(field, value, error, message):
    config(**{}).validate()  # the base config is valid
    with pytest.raises(error, match=message):
        config(**{field: value}).validate()
