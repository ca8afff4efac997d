"""A multi-agent MLP whose ``n_agents`` agents share ``n_groups`` parameter sets."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictParams
from torch import nn
from torch.nn import functional as F
from torchrl.modules import MLP

from torchrl_seps._checks import GroupsLike, check_bool, check_int, validate_groups

__all__ = ["GroupedMultiAgentMLP", "validate_groups", "warm_start_sources"]


# Up to this many rows per block (agents of a block x batch elements; see ``_Routing``) the groups
# run as one batched matrix product per layer; above it, as one matrix product per group. On the
# CPU the batched product wins on small batches (fewer operations) and loses on large ones
# (``benchmarks/grouped_mlp.py --batch``). Padding wastes work, so padded blocks switch to one
# product per group sooner. In a PPO update of bps-1 (500-sample minibatches of 3 groups of 5
# agents) the batched product saves 2-4% of the iteration (``benchmarks/train_speed.py``).
_BATCHED_MAX_ROWS = {"equal": 8192, "padded": 2048}
# Padding every group to the largest may add at most this fraction of the agents as rows; beyond
# it, blocks are the greatest common divisor of the group sizes instead (no padding).
_MAX_PADDING = 0.25


@dataclass(frozen=True)
class _Layout:
    """An order of the agents (agent-major rows) and the way back to the original order."""

    order: list[int] | None  # agents to gather, None when it is 0..N-1
    inverse: list[int] | None  # position of each agent's output, None when it is 0..N-1

    @classmethod
    def of(cls, order: list[int]) -> _Layout:
        inverse = [-1] * (max(order) + 1)
        for position, agent in enumerate(order):
            if inverse[agent] < 0:  # padding repeats agents: keep the first
                inverse[agent] = position
        identity = list(range(len(order)))
        return cls(None if order == identity else order, None if inverse == identity else inverse)


@dataclass(frozen=True)
class _Routing:
    """How agents reach their group's parameters; derived once per assignment, never in forward.

    The forward pass moves the agent dimension first and reorders the agents so that each group
    is contiguous: ``sorted`` sorts them by group (one matrix product per group). For the batched
    product, ``blocked`` cuts the sorted agents into blocks of ``block_size`` agents, each block
    within one group, repeating a group's first agent to fill its last block. Blocks are whole
    groups padded to the largest, unless that pads more than ``_MAX_PADDING`` of the agents: then
    they are the greatest common divisor of the group sizes (no padding; a group spans several
    blocks, ``block_groups`` gives each block's parameter set). Holding Python objects only keeps
    it vmap-safe: TorchRL's value estimators call the critic under ``torch.vmap`` with the
    module's buffers batched.
    """

    groups: list[int]  # groups[i] is agent i's parameter set
    sizes: list[int]  # agents per group
    sorted: _Layout
    blocked: _Layout
    block_size: int
    block_groups: list[int] | None  # parameter set of each block, None when blocks are groups
    batched_max_rows: int  # rows per block up to which the batched product runs

    @classmethod
    def from_groups(cls, groups: torch.Tensor) -> _Routing:
        ids = groups.tolist()
        members = [[i for i, g in enumerate(ids) if g == group] for group in range(max(ids) + 1)]
        sizes = [len(agents) for agents in members]
        block = max(sizes)
        if len(sizes) * block - len(ids) > _MAX_PADDING * len(ids):
            block = math.gcd(*sizes)
        blocked = [i for agents in members for i in agents + agents[:1] * (-len(agents) % block)]
        block_groups = [g for g, size in enumerate(sizes) for _ in range(-(-size // block))]
        return cls(
            ids,
            sizes,
            _Layout.of([i for agents in members for i in agents]),
            _Layout.of(blocked),
            block,
            None if block_groups == list(range(len(sizes))) else block_groups,
            _BATCHED_MAX_ROWS["padded" if len(blocked) > len(ids) else "equal"],
        )


class GroupedMultiAgentMLP(nn.Module):
    """A multi-agent MLP with ``K`` parameter sets for ``N`` agents: agent ``i`` uses set ``groups[i]``.

    It takes :class:`~torchrl.modules.MultiAgentMLP`'s arguments and shape conventions: inputs of
    shape ``(*batch, n_agents, n_agent_inputs)`` give outputs of shape
    ``(*batch, n_agents, n_agent_outputs)``. Each parameter set is one
    :class:`~torchrl.modules.MLP` built from ``depth``, ``num_cells``, ``activation_class`` and
    ``**kwargs`` exactly as ``MultiAgentMLP`` builds it (so ``depth=None, num_cells=None`` is a
    single linear layer, as there: pass both).

    ``groups = [0] * n_agents`` is full parameter sharing (``MultiAgentMLP(share_params=True)``),
    ``groups = range(n_agents)`` is no sharing (``share_params=False``), and anything in between
    is selective sharing. The parameters are one stacked :class:`~tensordict.nn.TensorDictParams`
    with a leading dimension of size ``n_groups``, as ``MultiAgentMLP`` stores unshared ones.

    The cost of a forward and backward pass is about that of one shared MLP on the same input:
    each group's network runs once, on its own agents only. On small inputs the groups run
    together, one batched matrix product per layer over blocks of agents of one group each; on
    large ones, one matrix product per group on its agents (a contiguous slice of the agent
    dimension when its agents are adjacent). A centralised network runs every group on all
    agents' inputs under :func:`torch.vmap`. The forward pass never reads the ``groups`` buffer,
    so it is safe under the ``torch.vmap`` calls of TorchRL's losses.

    Args:
        n_agent_inputs (int): number of inputs of each agent.
        n_agent_outputs (int): number of outputs of each agent.
        n_agents (int): number of agents.

    Keyword Args:
        groups (sequence of int or LongTensor): the parameter set of every agent, ids ``0..K-1``,
            each id used at least once.
        centralized (bool): if ``True``, every group's network sees the inputs of all agents
            (``n_agents * n_agent_inputs`` features) and all agents of a group get the same output.
        depth (int, optional): number of hidden layers, as in :class:`~torchrl.modules.MLP`.
        num_cells (int or sequence of int, optional): hidden sizes, as in ``MLP``.
        activation_class (type of nn.Module): activation, defaults to :class:`~torch.nn.Tanh`.
        device (torch.device, optional): where the parameters are created.
        **kwargs: further :class:`~torchrl.modules.MLP` arguments.

    Examples:
        >>> import torch
        >>> from torchrl_seps import GroupedMultiAgentMLP
        >>> mlp = GroupedMultiAgentMLP(
        ...     n_agent_inputs=4, n_agent_outputs=2, n_agents=5,
        ...     groups=[0, 0, 1, 1, 1], centralized=False, depth=2, num_cells=32,
        ... )
        >>> mlp
        GroupedMultiAgentMLP(n_agents=5, n_groups=2, group_sizes=[2, 3], centralized=False,
          mlp=MLP(...))
        >>> obs = torch.zeros(64, 5, 4)
        >>> mlp(obs).shape
        torch.Size([64, 5, 2])
        >>> out = mlp(obs)  # same input, so agents of one group agree and groups differ
        >>> torch.equal(out[:, 0], out[:, 1]), torch.equal(out[:, 1], out[:, 2])
        (True, False)
        >>> mlp.set_groups([0, 1, 2, 2, 2])  # regroup in place: warm start from the old sets
        >>> mlp.n_groups, torch.equal(mlp(obs), out)
        (3, True)
    """

    def __init__(
        self,
        n_agent_inputs: int,
        n_agent_outputs: int,
        n_agents: int,
        *,
        groups: GroupsLike,
        centralized: bool,
        depth: int | None = None,
        num_cells: Sequence[int] | int | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        device: torch.device | str | None = None,
        **kwargs,
    ):
        super().__init__()
        check_int("n_agent_inputs", n_agent_inputs)
        check_int("n_agent_outputs", n_agent_outputs)
        check_int("n_agents", n_agents)
        check_bool("centralized", centralized)
        self.n_agent_inputs = n_agent_inputs
        self.n_agent_outputs = n_agent_outputs
        self.n_agents = n_agents
        self.centralized = centralized
        self._mlp_kwargs = dict(
            in_features=n_agent_inputs * (n_agents if centralized else 1),
            out_features=n_agent_outputs,
            depth=depth,
            num_cells=num_cells,
            activation_class=activation_class,
            **kwargs,
        )
        ids = validate_groups(groups, n_agents)
        self.register_buffer("groups", ids.to(device))
        self.params = self._new_params(int(ids.max()) + 1, device)
        # A parameter-free skeleton of one group's network, and how to run it functionally.
        self._empty_net = MLP(device="meta", **self._mlp_kwargs)
        self._layers = _plain_layers(self._empty_net)
        TensorDict.from_module(self._empty_net).data.to_module(
            self._empty_net, preserve_module_state=False
        )
        self._routing = _Routing.from_groups(ids)
        self.register_load_state_dict_pre_hook(_regroup_before_load)

    def _new_params(self, n_groups: int, device) -> TensorDictParams:
        nets = [MLP(device=device, **self._mlp_kwargs) for _ in range(n_groups)]
        return TensorDict.from_modules(*nets, as_module=True)

    @property
    def n_groups(self) -> int:
        """Number of parameter sets ``K``."""
        return self.params.batch_size[0]

    @property
    def group_sizes(self) -> list[int]:
        """Number of agents in each group."""
        return torch.bincount(self.groups, minlength=self.n_groups).tolist()

    def set_groups(self, groups: GroupsLike, *, warm_start: bool = True) -> None:
        """Assigns agents to new groups in place; the number of groups may change.

        With ``warm_start=True`` every new group starts as a copy of the parameter set that most
        of its members used before (ties go to the lower old id): from one shared set, every
        group starts as a copy of the shared network, and regrouping into the same groups keeps
        every output unchanged. With ``warm_start=False`` every group is freshly initialised.

        The parameters are new tensors afterwards: build optimizers, and TorchRL losses (which
        hold references to the parameters), after the last call to ``set_groups``, or regroup
        with :func:`torchrl_seps.schedule.regroup`, which carries an optimizer's state over and
        rebinds a loss.
        """
        ids = validate_groups(groups, self.n_agents)
        n_groups = int(ids.max()) + 1
        device = self.groups.device
        if warm_start:
            source = warm_start_sources(self.groups, ids)
            self.params = TensorDictParams(self.params.data[source].clone())
        else:
            self.params = self._new_params(n_groups, device)
        self.groups.copy_(ids)
        self._routing = _Routing.from_groups(ids)

    def reset_parameters(self) -> None:
        """Re-initialises every parameter set independently."""
        fresh = self._new_params(self.n_groups, self.groups.device)
        self.params.data.update_(fresh.data)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat(inputs, dim=-1) if len(inputs) > 1 else inputs[0]
        self._check_input(x)
        if self.centralized:
            return self._forward_centralized(x.flatten(-2, -1))
        weights = self._stacked_weights()
        if self.n_groups == 1:
            return self._call_group({name: w[0] for name, w in weights.items()}, x)
        routing = self._routing
        x = x.movedim(-2, 0)  # agent-major: each agent's rows are contiguous
        rows = x[0].numel() // x.shape[-1] * routing.block_size
        if rows <= routing.batched_max_rows:
            layout = routing.blocked
            if layout.order is not None:
                x = x[layout.order]
            if routing.block_groups is not None:
                weights = {name: w[routing.block_groups] for name, w in weights.items()}
            out = self._call_groups(weights, x.reshape(-1, rows, x.shape[-1]))
        else:
            layout = routing.sorted
            if layout.order is not None:
                x = x[layout.order]
            blocks = x.split(routing.sizes)
            out = torch.cat(
                [
                    self._call_group({name: w[group] for name, w in weights.items()}, block)
                    for group, block in enumerate(blocks)
                ]
            )
        out = out.reshape(-1, *x.shape[1:-1], self.n_agent_outputs)
        if layout.inverse is not None:
            out = out[layout.inverse]
        return out.movedim(0, -2)

    def _forward_centralized(self, x: torch.Tensor) -> torch.Tensor:
        weights = self._stacked_weights()
        if self.n_groups == 1:
            out = self._call_group({name: w[0] for name, w in weights.items()}, x).unsqueeze(-2)
            return out.expand(*out.shape[:-2], self.n_agents, self.n_agent_outputs)
        per_group = torch.vmap(
            self._call_group, in_dims=(0, None), out_dims=-2, randomness="different"
        )(weights, x)
        return per_group[..., self._routing.groups, :]

    def _stacked_weights(self) -> dict[str, torch.Tensor]:
        """Every parameter of one group's MLP, stacked over groups, by its dotted name."""
        return {".".join(key): value for key, value in self.params.items(True, True)}

    def _call_group(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """One group's MLP on ``x``, given that group's parameters by dotted name."""
        if self._layers is None:  # layers other than Linear hold parameters: swap them in
            params = TensorDict(weights).unflatten_keys(".")
            with params.to_module(self._empty_net, preserve_module_state=False):
                return self._empty_net(x)
        for name, layer in self._layers:
            if layer is None:
                x = F.linear(x, weights[f"{name}.weight"], weights.get(f"{name}.bias"))
            else:
                x = layer(x)
        return x

    def _call_groups(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Every group's MLP on its rows of ``x`` (shape ``[K, rows, in]``), batched over groups."""
        if self._layers is None:
            return torch.vmap(self._call_group, randomness="different")(weights, x)
        for name, layer in self._layers:
            if layer is not None:
                x = layer(x)
                continue
            weight, bias = weights[f"{name}.weight"], weights.get(f"{name}.bias")
            if bias is None:
                x = torch.bmm(x, weight.transpose(-1, -2))
            else:
                x = torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))
        return x

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim < 2 or x.shape[-2] != self.n_agents:
            raise ValueError(
                f"input must have shape (*batch, n_agents={self.n_agents}, "
                f"n_agent_inputs={self.n_agent_inputs}), got agent dimension of size "
                f"{x.shape[-2] if x.ndim >= 2 else None} in shape {tuple(x.shape)}."
            )
        if x.shape[-1] != self.n_agent_inputs:
            raise ValueError(
                f"input must have n_agent_inputs={self.n_agent_inputs} features in its last "
                f"dimension, got {x.shape[-1]} in shape {tuple(x.shape)}."
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_agents={self.n_agents}, n_groups={self.n_groups}, "
            f"group_sizes={self.group_sizes}, centralized={self.centralized},\n"
            f"  mlp={self._empty_net!r})"
        )


def warm_start_sources(old_groups: GroupsLike, new_groups: GroupsLike) -> list[int]:
    """The old parameter set each new group starts from in a warm start: the one most of its
    members used (ties go to the lower old id).

    Examples:
        >>> warm_start_sources([0, 0, 0, 0], [0, 1, 1, 2])  # from sharing: all copy set 0
        [0, 0, 0]
        >>> warm_start_sources([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
        [0, 1]
    """
    old = torch.as_tensor(old_groups).cpu()
    new = validate_groups(new_groups, old.numel())
    votes = torch.zeros(int(new.max()) + 1, int(old.max()) + 1, dtype=torch.long)
    votes.index_put_((new, old), torch.ones_like(new), accumulate=True)
    return votes.argmax(dim=1).tolist()  # argmax returns the first maximum


def _plain_layers(net: nn.Module) -> list[tuple[str, nn.Module | None]] | None:
    """The layers of ``net`` in order, ``None`` standing for a plain ``nn.Linear``.

    Running the linear layers with :func:`torch.nn.functional.linear` on each group's weights
    skips swapping parameters into the module, which dominates the cost on small batches.
    Returns ``None`` when a layer other than ``nn.Linear`` holds parameters (a norm layer, say).
    """
    layers = []
    for name, layer in net.named_children():
        if type(layer) is nn.Linear:
            layers.append((name, None))
        elif any(True for _ in layer.parameters()):
            return None
        else:
            layers.append((name, layer))
    return layers


def _regroup_before_load(
    module: GroupedMultiAgentMLP, state_dict, prefix, local_metadata, strict, *args
) -> None:
    """Adopts the groups of the state being loaded, so that its parameter sets fit."""
    groups = state_dict.get(prefix + "groups")
    if groups is not None and not torch.equal(groups.cpu(), module.groups.cpu()):
        module.set_groups(groups, warm_start=False)
