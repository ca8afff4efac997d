from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from threads import one_thread  # noqa: F401
from torchrl.envs import SerialEnv
from torchrl.envs.libs.vmas import VmasEnv
from typed_env import DIRECTIONS, SignedEffectEnv, TypedAgentsEnv

from benchmarks.identification import vmas_navigation
from torchrl_seps.clustering import AgentClustering, adjusted_rand_index
from torchrl_seps import identification
from torchrl_seps.identification import (
    GroupKeys,
    IdentificationOptions,
    collect_transitions,
    fit_identity,
    identify_from_transitions,
    identify_groups,
    identity_model,
)
from torchrl_seps.modules import IdentityDecoder, IdentityEncoder
from torchrl_seps.objectives import IdentityLoss
from torchrl_seps.plotting import plot_embeddings

TYPES = [0, 0, 1, 1, 2, 2]
# Small budget: 8 envs x 64 steps, 12 epochs of 64-frame batches (about 100 updates).
FAST = dict(frames=512, epochs=12, batch_size=64)




def reward_typed(types=TYPES, **kwargs):
    """Types differ only in their goal: the reward tells them apart, the dynamics do not."""
    goals = [[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]][: max(types) + 1]
    return TypedAgentsEnv(types, goals=goals, reset_offset=0.0, **kwargs)


def dynamics_typed(types=TYPES, **kwargs):
    """Types differ only in their speed: the next observation tells them apart."""
    speeds = [0.05, 0.2, 0.4][: max(types) + 1]
    return TypedAgentsEnv(types, speeds=speeds, reset_offset=0.0, **kwargs)


# -- collection ---------------------------------------------------------------------------


def test_collection_never_pairs_across_episodes():
    types = torch.tensor([0, 1, 1])
    speeds = torch.tensor([0.1, 0.3])
    env = TypedAgentsEnv(types, speeds=speeds, num_envs=4, max_steps=7, reset_offset=5.0)
    data = collect_transitions(env, frames=4 * 30)  # 30 steps: four episode ends per env
    assert data.batch_size == (120,)
    obs, action = data["agents", "observation"], data["agents", "action"]
    expected = obs + speeds[types][None, :, None] * DIRECTIONS[action]
    # Every row, episode ends included, follows the dynamics; a reset (offset by 5) would not.
    torch.testing.assert_close(data["next", "agents", "observation"], expected)
    assert env.n_steps_taken == 30
    # Each env's 30 steps are episodes of 7, 7, 7, 7 and 2 steps: 20 trajectory ids in all.
    traj = data["collector", "traj_ids"]
    assert traj.unique().numel() == 20 and torch.bincount(traj).tolist().count(7) == 16


def test_collection_uses_the_given_policy():
    env = TypedAgentsEnv([0, 1], num_envs=2)

    def always_right(td):
        td.set(("agents", "action"), torch.ones(2, 2, dtype=torch.long))
        return td

    data = collect_transitions(env, frames=20, policy=always_right)
    assert (data["agents", "action"] == 1).all()


def test_a_batched_env_is_left_open_and_usable():
    """TorchRL's collector closes its env when it reaches total_frames; ours must not."""
    env = SerialEnv(2, lambda: TypedAgentsEnv([0, 0, 1], num_envs=2))
    result = identify_groups(env, frames=96, epochs=1, batch_size=16, seed=0)
    assert result.frames == 96 and not env.is_closed
    assert env.rollout(3).batch_size == (2, 2, 3)
    env.close()  # once, without "trying to close a closed environment"
    assert env.is_closed


def test_collection_rounds_frames_up_to_whole_steps():
    data = collect_transitions(TypedAgentsEnv([0, 1], num_envs=8), frames=20)
    assert data.batch_size == (24,)


def test_collection_progress_bar(capsys):
    collect_transitions(TypedAgentsEnv([0, 1], num_envs=2), frames=8, progress=True)
    assert "collect" in capsys.readouterr().err


# -- model and loss -----------------------------------------------------------------------


def test_categorical_actions_are_one_hot_encoded():
    torch.manual_seed(0)
    categorical = IdentityDecoder(2, 3, 5, categorical_actions=True)
    explicit = IdentityDecoder(2, 3, 5)
    explicit.load_state_dict(categorical.state_dict())
    latent, obs, action = torch.randn(4, 6, 2), torch.randn(4, 6, 3), torch.randint(5, (4, 6))
    td = TensorDict(
        {"agents": {"identity": {"latent": latent}, "observation": obs, "action": action}},
        batch_size=[4, 6],
    )
    out_index = categorical(td.clone())
    out_index_1 = categorical(td.clone().set(("agents", "action"), action[..., None]))
    td.set(("agents", "action"), torch.nn.functional.one_hot(action, 5).float())
    out_one_hot = explicit(td)
    for key in categorical.out_keys:
        torch.testing.assert_close(out_index[key], out_one_hot[key])
        torch.testing.assert_close(out_index_1[key], out_one_hot[key])


def random_batch(frames=32, n_agents=3, obs_dim=4, n_actions=5):
    g = torch.Generator().manual_seed(3)
    return TensorDict(
        {
            "agents": {
                "observation": 3 * torch.randn(frames, n_agents, obs_dim, generator=g) + 1,
                "action": torch.randint(n_actions, (frames, n_agents), generator=g),
            },
            "next": {
                "agents": {
                    "observation": torch.randn(frames, n_agents, obs_dim, generator=g),
                    "reward": 10 * torch.randn(frames, n_agents, 1, generator=g) - 4,
                }
            },
        },
        batch_size=[frames],
    )


def test_statistics_are_pooled_over_frames_and_agents():
    data = random_batch()
    loss = IdentityLoss(IdentityEncoder(3, 2), IdentityDecoder(2, 4, 5, categorical_actions=True))
    loss.set_statistics(data)
    obs = data["agents", "observation"].reshape(-1, 4)
    change = (data["next", "agents", "observation"] - data["agents", "observation"]).reshape(-1, 4)
    reward = data["next", "agents", "reward"].reshape(-1, 1)
    targets = torch.cat([change, reward], -1)
    torch.testing.assert_close(loss.observation_loc, obs.mean(0))
    torch.testing.assert_close(loss.observation_scale, obs.std(0, unbiased=False))
    torch.testing.assert_close(loss.target_loc, targets.mean(0))
    torch.testing.assert_close(loss.target_scale, targets.std(0, unbiased=False))


@pytest.mark.parametrize("targets", [("next_observation", "reward"), ("reward",), ("next_observation",)])
@pytest.mark.parametrize("predict_change", [True, False])
def test_loss_matches_a_direct_computation(targets, predict_change):
    data = random_batch()
    encoder = IdentityEncoder(3, 2)
    decoder = IdentityDecoder(2, 4, 5, categorical_actions=True)
    gate, effect = decoder.module.observation_gate, decoder.module.action_effect
    for parameter in (*gate.parameters(), effect.weight):  # away from their initial zeros
        torch.nn.init.normal_(parameter)
    loss = IdentityLoss(encoder, decoder, targets=targets, kl_weight=0.3, predict_change=predict_change)
    loss.set_statistics(data)
    torch.manual_seed(11)
    out = loss(data)

    # Reference: plain tensor operations on the same networks and the same noise.
    obs = data["agents", "observation"]
    next_obs = data["next", "agents", "observation"]
    reward = data["next", "agents", "reward"]
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    standardise = lambda x: (x - flat(x).mean(0)) / flat(x).std(0, unbiased=False)  # noqa: E731
    params = encoder.module[0](torch.eye(3))
    # tensordict's default scale mapping: softplus shifted to give 1 at 0, plus a floor of 0.01
    shift = math.log(math.expm1(0.99))
    loc, scale = params[:, :2], torch.nn.functional.softplus(params[:, 2:] + shift) + 0.01
    torch.manual_seed(11)
    latent = loc + scale * torch.randn(32, 3, 2)
    action = torch.nn.functional.one_hot(data["agents", "action"], 5).float()
    # the interactions: a gain per observation entry from the latent, and for action a the
    # latent through its own [out, latent] matrix
    gain = 1 + latent @ gate.weight.T + gate.bias
    x = torch.cat([latent, standardise(obs) * gain, action], -1)
    weight = effect.weight.view(5, 2, 5)  # [out, latent, action]
    prediction = decoder.module.mlp(x) + torch.einsum("...z,...a,oza->...o", latent, action, weight)
    errors = {
        "next_observation": (
            prediction[..., :4] - standardise(next_obs - obs if predict_change else next_obs)
        ).pow(2).mean(-1),
        "reward": (prediction[..., 4:] - standardise(reward)).pow(2).mean(-1),
    }
    reconstruction = sum(errors[t] for t in targets).mean()
    kl = 0.5 * (scale**2 + loc**2 - 1 - torch.log(scale**2)).sum(-1).mean()
    torch.testing.assert_close(out["loss_reconstruction"], reconstruction, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["loss_kl"], 0.3 * kl, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out["kl"], kl, rtol=1e-4, atol=1e-6)


def test_loss_keys_can_be_renamed():
    data = random_batch().rename_key_(("next", "agents", "reward"), ("next", "agents", "score"))
    loss = IdentityLoss(IdentityEncoder(3, 2), IdentityDecoder(2, 4, 5, categorical_actions=True))
    with pytest.raises(ValueError, match=r"needs the reward at \('next', 'agents', 'reward'\)"):
        loss.set_statistics(data)
    loss.set_keys(reward=("agents", "score"))
    loss.set_statistics(data)
    assert ("next", "agents", "score") in loss.in_keys
    loss(data)


def test_identity_model_from_specs():
    loss = identity_model(TypedAgentsEnv([0, 1, 1], group="robots"), group="robots", latent_dim=3)
    assert (loss.encoder.n_agents, loss.encoder.latent_dim, loss.decoder.observation_dim) == (3, 3, 2)
    assert loss.decoder.module.categorical_actions and loss.decoder.module.action_dim == 5
    continuous = identity_model(VmasEnv("navigation", num_envs=2, n_agents=2, seed=0))
    assert not continuous.decoder.module.categorical_actions
    assert continuous.decoder.module.action_dim == 2


def test_fitting_reduces_the_loss():
    env = reward_typed()
    loss = identity_model(env)
    history = fit_identity(loss, collect_transitions(env, 512), epochs=6, batch_size=64)
    assert len(history.loss) == 6 and history.loss[-1] < 0.5 * history.loss[0]
    assert history.validation == [] and history.best_epoch == 6


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fit_stops_on_validation_and_keeps_the_best_epoch(seed):
    """Validation data of other goals: fitting the training goals soon makes them worse."""
    torch.manual_seed(seed)
    train = collect_transitions(reward_typed(), 512)
    other = TypedAgentsEnv(TYPES, goals=[[0.0, 3.0], [3.0, 0.0], [-3.0, 0.0]], num_envs=8, seed=seed)
    validation = collect_transitions(other, 256)
    loss = identity_model(reward_typed())
    history = fit_identity(loss, train, epochs=12, batch_size=64, validation=validation, patience=2)
    best = min(history.validation)
    assert history.validation[history.best_epoch - 1] == best
    assert len(history.validation) == len(history.loss) <= 12
    if len(history.loss) < 12:  # stopped: the last `patience` epochs did not improve on the best
        assert len(history.loss) == history.best_epoch + 2
    with torch.no_grad():  # the kept parameters are the best epoch's
        embeddings, _ = loss.encoder.agent_distribution()
        error = loss.reconstruction_error(validation, latent=embeddings).mean().item()
    assert error == pytest.approx(best, rel=1e-5)


# -- identification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, targets, expected",
    [
        (reward_typed, ("next_observation", "reward"), TYPES),
        (reward_typed, ("reward",), TYPES),
        (reward_typed, ("next_observation",), [0] * 6),  # the dynamics do not tell them apart
        (dynamics_typed, ("next_observation", "reward"), TYPES),
        (dynamics_typed, ("next_observation",), TYPES),
        (lambda: reward_typed([0] * 6), ("next_observation", "reward"), [0] * 6),
        (lambda: reward_typed([0, 1, 2]), ("next_observation", "reward"), [0, 1, 2]),
    ],
    ids=["reward", "reward-only", "reward-next-obs-only", "dynamics", "dynamics-next-obs-only",
         "homogeneous", "all-different"],
)
def test_identify_groups_recovers_known_types(make, targets, expected):
    result = identify_groups(make(), targets=targets, seed=0, **FAST)
    assert result.groups.tolist() == expected
    assert result.n_groups == len(set(expected))
    assert result.groups.dtype == torch.long
    assert result.embeddings.shape == (len(expected), 5) == result.scales.shape
    assert 1 <= result.epochs <= len(result.loss_curve) == len(result.validation_curve) <= FAST["epochs"]
    assert set(result.timings) == {"collect", "fit", "cluster"}
    assert result.frames == FAST["frames"]


def test_identify_groups_with_another_group_name_and_given_k():
    env = reward_typed(group="robots")
    result = identify_groups(env, group="robots", n_groups=3, seed=1, **FAST)
    assert adjusted_rand_index(TYPES, result.groups) == 1.0
    assert result.decision == "given" and result.evidence is None
    assert result.heldout_frames == 0  # with K given, no frame is held out to choose K


def test_the_env_s_only_agent_group_is_found_by_default():
    result = identify_groups(reward_typed(group="robots"), n_groups=3, seed=1, **FAST)
    assert adjusted_rand_index(TYPES, result.groups) == 1.0
    loss = identity_model(reward_typed(group="robots"))
    assert loss.decoder.in_keys[1] == ("robots", "observation")


def test_an_env_with_several_agent_groups_needs_a_group():
    env = VmasEnv("simple_tag", num_envs=2, seed=0)  # groups "adversary" and "agent"
    with pytest.raises(ValueError, match=r"exactly one agent group, but env has 2: \['adversary', 'agent'\]"):
        identify_groups(env, frames=64, batch_size=32)
    result = identify_groups(env, group="adversary", frames=64, epochs=1, batch_size=32, seed=0)
    assert result.groups.shape == (3,)


def test_identify_groups_is_deterministic_for_a_seed_and_keeps_the_global_rng():
    state = torch.get_rng_state()
    first = identify_groups(reward_typed(), seed=5, **FAST)
    assert torch.equal(torch.get_rng_state(), state)
    second = identify_groups(reward_typed(), seed=5, **FAST)
    torch.testing.assert_close(first.embeddings, second.embeddings)
    assert first.groups.tolist() == second.groups.tolist()
    assert first.loss_curve == second.loss_curve


def test_an_options_object_and_keywords_are_the_same_settings():
    options = IdentificationOptions(seed=5, **FAST)
    by_object = identify_groups(reward_typed(), options)
    by_keywords = identify_groups(reward_typed(), seed=5, **FAST)
    overridden = identify_groups(reward_typed(), IdentificationOptions(seed=1, epochs=1), seed=5, **FAST)
    for result in (by_keywords, overridden):
        torch.testing.assert_close(result.embeddings, by_object.embeddings, rtol=0, atol=0)
        assert result.loss_curve == by_object.loss_curve
    data = collect_transitions(reward_typed(), 512)
    torch.manual_seed(0)
    from_object = identify_from_transitions(identity_model(reward_typed(), options), data, options)
    torch.manual_seed(0)
    from_keywords = identify_from_transitions(identity_model(reward_typed()), data, seed=5, **FAST)
    torch.testing.assert_close(from_object.embeddings, from_keywords.embeddings, rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"identify_groups got unexpected keyword argument\(s\) \['frame'\]"):
        identify_groups(reward_typed(), frame=512)


def test_the_env_is_checked_once_per_identification(monkeypatch):
    checks = []
    real = GroupKeys.of.__func__

    def counted(cls, env, group=None):
        checks.append(env)
        return real(cls, env, group)

    monkeypatch.setattr(identification.GroupKeys, "of", classmethod(counted))
    env = reward_typed()
    identify_groups(env, seed=0, **FAST)
    assert checks == [env]


def test_identify_groups_uses_the_given_clustering_without_changing_it():
    clustering = AgentClustering(n_init=2)
    result = identify_groups(reward_typed(), clustering=clustering, seed=0, **FAST)
    assert result.clustering.n_init == 2 and result.clustering.random_state == 0
    assert not hasattr(clustering, "labels_") and clustering.random_state is None


def test_identify_groups_on_a_vmas_env():
    env = VmasEnv("balance", num_envs=4, n_agents=3, seed=0)
    result = identify_groups(env, frames=128, epochs=2, batch_size=32, seed=0)
    assert result.groups.shape == (3,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_identify_groups_on_cuda():
    env = VmasEnv("balance", num_envs=4, n_agents=3, device="cuda", seed=0)
    result = identify_groups(env, frames=128, epochs=2, batch_size=32, seed=0)
    assert result.groups.device.type == "cpu" and result.embeddings.device.type == "cpu"
    assert next(result.encoder.parameters()).device.type == "cuda"


def test_plot(tmp_path):
    result = identify_groups(reward_typed(), seed=0, **FAST)
    path = result.plot(tmp_path / "embeddings.png", types=TYPES)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match=r"true type labels must have one entry per agent \(6\), got 2"):
        plot_embeddings(result.embeddings, result.groups, tmp_path / "x.png", types=[0, 1])


# -- bad input: a clear error before any step is taken --------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(group="robots"), ValueError, r"env has no observation entry \('robots', 'observation'\) for group='robots'; its agent groups are \['agents'\]"),
        (dict(n_groups=0), ValueError, r"n_groups must be in 1\.\.N=6 .* got n_groups=0"),
        (dict(n_groups=7), ValueError, r"n_groups must be in 1\.\.N=6 .* got n_groups=7"),
        (dict(frames=100, batch_size=128), ValueError, r"too few frames to fit: frames=100, expected at least batch_size=128"),
        (dict(frames=0), ValueError, "frames must be an int >= 1, got frames=0"),
        (dict(epochs=1.5), TypeError, "epochs must be an int"),
        (dict(lr=-1.0), ValueError, "lr must be a float > 0, got lr=-1.0"),
        (dict(targets=("action",)), ValueError, "targets must be a non-empty subset"),
        (dict(kl_weight=-1.0), ValueError, "kl_weight must be a float >= 0"),
        (dict(clustering="kmeans"), TypeError, "clustering must be an AgentClustering, got str"),
        (dict(heldout_fraction=1.0), ValueError, r"heldout_fraction must be a float in \(0, 1\), got heldout_fraction=1.0"),
        (dict(alpha=0.0), ValueError, r"alpha must be a float in \(0, 1\), got alpha=0.0"),
    ],
)
def test_bad_arguments_fail_before_collecting(kwargs, error, match):
    env = reward_typed()
    with pytest.raises(error, match=match):
        identify_groups(env, **{"frames": 512, **kwargs})
    assert env.n_steps_taken == 0


def test_non_finite_data_is_refused():
    env = reward_typed(nan_reward_at_step=3)
    with pytest.raises(ValueError, match=r"collected \('next', 'agents', 'reward'\) holds \d+ NaN or infinite"):
        identify_groups(env, **FAST)
    data = collect_transitions(reward_typed(), 64)
    data["next", "agents", "observation"][0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"entry \('next', 'agents', 'observation'\) holds 1 NaN or infinite"):
        fit_identity(identity_model(reward_typed()), data, batch_size=32)


def test_too_few_frames_to_fit():
    data = collect_transitions(reward_typed(), 32)
    with pytest.raises(ValueError, match="too few frames to fit: data holds 32 frames, expected at least batch_size=64"):
        fit_identity(identity_model(reward_typed()), data, batch_size=64)


def test_wrong_env_type():
    with pytest.raises(TypeError, match="env must be a torchrl EnvBase, got str"):
        identify_groups("bps-1")


# -- sensitivity: agents whose actions act differently ---------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agents_differing_in_the_sign_of_one_action_on_one_of_20_entries_are_split(seed):
    types = [0, 0, 1, 1]
    result = identify_groups(SignedEffectEnv(types, seed=seed), frames=4096, seed=seed)
    assert adjusted_rand_index(types, result.groups) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agents_with_the_same_signed_effect_stay_together(seed):
    result = identify_groups(SignedEffectEnv([0, 0, 0, 0], seed=seed), frames=4096, seed=seed)
    assert result.n_groups == 1


@pytest.mark.parametrize("kind, truth", [("rotated", [0, 0, 1, 1]), ("negated", [0, 0, 1, 1]), ("same", [0, 0, 0, 0])])
def test_rotated_controls_on_vmas_navigation(kind, truth):
    """VMAS's own navigation; a wrapper rotates or negates the moves of agents 2 and 3."""
    env = vmas_navigation(kind)(32, 0)
    result = identify_groups(env, frames=6400, seed=0)
    assert result.groups.tolist() == truth
