"""Selective Parameter Sharing (SePS) with IPPO on a VMAS task whose agents have hidden types.

One script, read top to bottom: env, grouped policy and critic, collector, buffer, loss, the
training loop with SePS's identification, evaluation and logging. ``method`` switches between
SePS and its baselines, which train the same networks and differ only in which agents share
parameters::

    python seps_ippo.py                                # SePS on bps-1 (15 agents, 3 colours)
    python seps_ippo.py method=fups env.preset=bps-4   # a baseline, another task
"""
from __future__ import annotations

import time

import hydra
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from sklearn.metrics import adjusted_rand_score
from torch.distributions import Categorical
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ValueEstimators
from torchrl.objectives.multiagent import IPPOLoss
from torchrl.record.loggers import generate_exp_name, get_logger

from torchrl_seps import AgentIdentityTransform, GroupedMultiAgentMLP, SePSSchedule, agent_types, make_env

METHODS = ("nops", "fups", "fups_id", "seps", "oracle")


def initial_groups(method: str, env) -> list[int]:
    """Which parameter set each agent starts with: the only difference between the methods."""
    n_agents = env.n_agents
    if method == "nops":
        return list(range(n_agents))
    if method == "oracle":
        return agent_types(env).tolist()
    return [0] * n_agents  # fups, fups_id, and seps until its identification


@hydra.main(version_base="1.3", config_path="", config_name="seps_ippo")
def main(cfg) -> None:  # noqa: C901 - one script, top to bottom
    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {cfg.method!r}")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.train.threads)
    device = torch.device(cfg.env.device)
    frames_per_batch = cfg.env.num_envs * cfg.collector.rollout_steps

    # Environments: batched VMAS tasks whose agents' types (colours) are never observed
    env = make_env(cfg.env.preset, num_envs=cfg.env.num_envs, device=device, seed=cfg.seed,
                   max_steps=cfg.env.max_steps)
    env_test = make_env(cfg.env.preset, num_envs=cfg.eval.episodes, device=device,
                        seed=cfg.seed + 1, max_steps=cfg.env.max_steps)
    if cfg.method == "fups_id":  # the one-hot agent id appended to every observation
        env.append_transform(AgentIdentityTransform.one_hot(env.n_agents))
        env_test.append_transform(AgentIdentityTransform.one_hot(env.n_agents))
    types = agent_types(env)
    groups = initial_groups(cfg.method, env)
    n_obs = env.observation_spec["agents", "observation"].shape[-1]
    n_actions = env.full_action_spec_unbatched["agents", "action"].space.n

    # Policy: K parameter sets for N agents, agent i uses set groups[i] (MultiAgentMLP's shapes)
    def grouped_mlp(n_outputs: int) -> GroupedMultiAgentMLP:
        return GroupedMultiAgentMLP(
            n_obs, n_outputs, env.n_agents, groups=groups, depth=cfg.model.depth,
            centralized=False, num_cells=cfg.model.num_cells, activation_class=nn.Tanh,
            device=device,
        )

    policy = ProbabilisticActor(
        TensorDictModule(grouped_mlp(n_actions), in_keys=[("agents", "observation")],
                         out_keys=[("agents", "logits")]),
        spec=env.full_action_spec_unbatched["agents", "action"],
        in_keys=[("agents", "logits")],
        out_keys=[("agents", "action")],
        distribution_class=Categorical,
        return_log_prob=True,
        log_prob_key=("agents", "action_log_prob"),
    )

    # Critic: grouped like the policy (SePS shares both per group)
    critic = ValueOperator(grouped_mlp(1), in_keys=[("agents", "observation")],
                           out_keys=[("agents", "state_value")])

    collector = Collector(
        env, policy, device=device, frames_per_batch=frames_per_batch,
        total_frames=cfg.collector.total_frames, auto_register_policy_transforms=False,
    )
    replay_buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(frames_per_batch, device=device),
        sampler=SamplerWithoutReplacement(),
        batch_size=frames_per_batch // cfg.train.minibatches,
    )

    # Loss: IPPO over the agents' entries, with multi-agent GAE
    loss_module = IPPOLoss(
        policy, critic, clip_epsilon=cfg.loss.clip_epsilon, entropy_coeff=cfg.loss.entropy_coeff,
        critic_coeff=cfg.loss.critic_coeff, loss_critic_type="l2", normalize_advantage=True,
    )
    loss_module.set_keys(
        reward=("agents", "reward"), action=("agents", "action"),
        sample_log_prob=("agents", "action_log_prob"), value=("agents", "state_value"),
        advantage=("agents", "advantage"), value_target=("agents", "value_target"),
    )
    loss_module.make_value_estimator(ValueEstimators.MAGAE, gamma=cfg.loss.gamma, lmbda=cfg.loss.lmbda)
    optim = torch.optim.Adam(loss_module.parameters(), lr=cfg.train.lr, eps=1e-5)

    # SePS: after id_frames training frames, identify the groups from the batches the shared
    # policy collected, then regroup actor, critic, optimizer state and loss, every new group
    # starting from the shared network (warm start); optionally identify again later
    schedule = None
    if cfg.method == "seps":
        schedule = SePSSchedule(env, frames=cfg.seps.id_frames, regroup_every=cfg.seps.regroup_every,
                                seed=cfg.seed)

    logger = None
    if cfg.logger.backend:
        logger = get_logger(cfg.logger.backend, logger_name="seps_ippo",
                            experiment_name=generate_exp_name("SePS", cfg.logger.exp_name))

    total_frames = 0
    sampling_start = time.time()
    for i, data in enumerate(collector):
        sampling_time = time.time() - sampling_start
        training_start = time.time()
        total_frames += data.numel()

        with torch.no_grad():
            loss_module.value_estimator(data, params=loss_module.critic_network_params,
                                        target_params=loss_module.target_critic_network_params)
        replay_buffer.extend(data.reshape(-1))
        losses = []
        for _ in range(cfg.train.num_epochs * cfg.train.minibatches):
            loss_vals = loss_module(replay_buffer.sample())
            loss_value = loss_vals["loss_objective"] + loss_vals["loss_critic"] + loss_vals["loss_entropy"]
            loss_value.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(loss_module.parameters(), cfg.train.max_grad_norm)
            optim.step()
            optim.zero_grad()
            losses.append(loss_vals.detach().set("grad_norm", grad_norm))

        identification = None
        if schedule is not None:
            identification = schedule.observe(data, [policy, critic], loss=loss_module, optimizer=optim)
        collector.update_policy_weights_()
        training_time = time.time() - training_start

        # Logging: training return of the episodes that ended in this batch, losses, speed
        done = data["next", "done"].squeeze(-1)
        scalars = {
            f"train/{key}": value.mean().item() for key, value in torch.stack(losses).items()
        } | {"train/frames_per_s": data.numel() / (sampling_time + training_time),
             "train/sampling_time": sampling_time, "train/training_time": training_time}
        if done.any():
            team_return = data["next", "agents", "episode_reward"].sum(dim=(-2, -1))[done]
            scalars["train/team_return"] = team_return.mean().item()
        if identification is not None:
            found = identification.groups
            scalars |= {"seps/n_groups": identification.n_groups,
                        "seps/ari": adjusted_rand_score(types.tolist(), found.tolist())}
            print(f"iteration {i}: identified {identification.n_groups} groups {found.tolist()} "
                  f"({identification.total_time:.1f} s)")

        # Evaluation: one deterministic episode in each test env
        if cfg.eval.episodes > 0 and i % cfg.eval.interval == 0:
            with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
                rollout = env_test.rollout(cfg.env.max_steps, policy, break_when_any_done=False)
            scalars["eval/team_return"] = rollout["next", "agents", "reward"].sum(dim=(1, 2, 3)).mean().item()

        if logger is not None:
            for name, value in scalars.items():
                logger.log_scalar(name, value, step=total_frames)
        print(f"iteration {i}: {total_frames} frames, " + ", ".join(
            f"{name} {value:.3g}" for name, value in scalars.items() if "return" in name))
        sampling_start = time.time()

    collector.shutdown()
    for e in (env, env_test):
        if not e.is_closed:
            e.close()


if __name__ == "__main__":
    main()
