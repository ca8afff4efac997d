from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torch.nn import functional as F
from torchrl.modules import MLP, MultiAgentMLP

from torchrl_seps import GroupedMultiAgentMLP

N_IN, N_OUT = 3, 2

GROUPINGS = {
    "shared": [0, 0, 0, 0, 0],
    "contiguous": [0, 0, 1, 1, 1],
    "interleaved": [1, 0, 2, 0, 1],
    "unshared": [0, 1, 2, 3, 4],
    "unshared_permuted": [3, 0, 4, 1, 2],
    "equal_contiguous": [0, 0, 1, 1, 2, 2],
    "equal_interleaved": [2, 0, 1, 0, 2, 1],
    # padding to the largest group would waste half the rows: blocks of 2 agents, then of 1
    "blocks_of_two": [1, 0, 1, 2, 1, 0, 1, 2],
    "blocks_of_one": [0, 1, 1, 1, 1, 2],
}


def make(groups, centralized=False, **kwargs):
    kwargs.setdefault("depth", 2)
    kwargs.setdefault("num_cells", 8)
    return GroupedMultiAgentMLP(
        N_IN, N_OUT, len(groups), groups=groups, centralized=centralized, **kwargs
    )


def reference_forward(mlp: GroupedMultiAgentMLP, x: torch.Tensor) -> torch.Tensor:
    """Agent by agent, a plain Linear/Tanh stack built from that agent's parameter set."""
    layers = sorted({key[0] for key in mlp.params.keys(True, True)}, key=int)
    outputs = []
    for agent, group in enumerate(mlp.groups.tolist()):
        h = x.flatten(-2, -1) if mlp.centralized else x[..., agent, :]
        for depth, layer in enumerate(layers):
            h = F.linear(h, mlp.params[group][layer, "weight"], mlp.params[group][layer, "bias"])
            if depth < len(layers) - 1:
                h = torch.tanh(h)
        outputs.append(h)
    return torch.stack(outputs, dim=-2)


@pytest.mark.parametrize("grouping", list(GROUPINGS))
@pytest.mark.parametrize("centralized", [False, True])
@pytest.mark.parametrize("batch", [(), (7,), (4, 3), (4200,)])  # 4200: one product per group
def test_matches_per_agent_reference(grouping, centralized, batch):
    mlp = make(GROUPINGS[grouping], centralized=centralized)
    n_agents = len(GROUPINGS[grouping])
    x = torch.randn(*batch, n_agents, N_IN)
    out = mlp(x)
    assert out.shape == (*batch, n_agents, N_OUT)
    torch.testing.assert_close(out, reference_forward(mlp, x))


@pytest.mark.parametrize("grouping", ["interleaved", "equal_interleaved", "unshared_permuted"])
def test_layers_with_parameters_match_one_torchrl_mlp_per_group(grouping):
    """Networks with norm layers run through module swapping; compare with plain MLPs."""
    groups = GROUPINGS[grouping]
    kwargs = dict(depth=2, num_cells=8, norm_class=nn.LayerNorm, norm_kwargs={"normalized_shape": 8})
    mlp = make(groups, **kwargs)
    x = torch.randn(7, len(groups), N_IN)
    expected = []
    for agent, group in enumerate(groups):
        net = MLP(in_features=N_IN, out_features=N_OUT, **kwargs)
        mlp.params[group].to_module(net)
        expected.append(net(x[:, agent]))
    torch.testing.assert_close(mlp(x), torch.stack(expected, dim=-2))


def test_split_inputs_are_concatenated():
    mlp = make(GROUPINGS["interleaved"])
    x = torch.randn(6, 5, N_IN)
    torch.testing.assert_close(mlp(x[..., :1], x[..., 1:]), mlp(x))


@pytest.mark.parametrize("centralized", [False, True])
@pytest.mark.parametrize("share", [True, False])
def test_equivalent_to_torchrl_multiagent_mlp(centralized, share):
    n_agents = 4
    groups = [0] * n_agents if share else list(range(n_agents))
    ours = GroupedMultiAgentMLP(
        N_IN, N_OUT, n_agents, groups=groups, centralized=centralized, depth=2, num_cells=16
    )
    theirs = MultiAgentMLP(
        N_IN, N_OUT, n_agents, centralized=centralized, share_params=share, depth=2, num_cells=16
    )
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in theirs.parameters()
    )
    their_params = theirs.params.data.unsqueeze(0) if share else theirs.params.data
    ours.params.data.update_(their_params)
    x = torch.randn(10, n_agents, N_IN)
    torch.testing.assert_close(ours(x), theirs(x))


def test_same_group_same_input_same_output_and_groups_differ():
    mlp = make([0, 1, 0, 1, 1])
    x = torch.randn(8, 1, N_IN).expand(8, 5, N_IN)
    out = mlp(x)
    torch.testing.assert_close(out[:, 0], out[:, 2])
    torch.testing.assert_close(out[:, 1], out[:, 4])
    assert not torch.allclose(out[:, 0], out[:, 1])


@pytest.mark.parametrize("grouping", list(GROUPINGS))
def test_decentralized_agents_are_independent(grouping):
    mlp = make(GROUPINGS[grouping])
    n_agents = len(GROUPINGS[grouping])
    x = torch.randn(8, n_agents, N_IN)
    x2 = x.clone()
    x2[:, 3] += 1.0
    changed = (mlp(x) - mlp(x2)).abs().sum(dim=(0, 2)) > 0
    assert changed.tolist() == [agent == 3 for agent in range(n_agents)]


@pytest.mark.parametrize(
    "grouping", ["contiguous", "interleaved", "unshared_permuted", "equal_interleaved"]
)
@pytest.mark.parametrize("centralized", [False, True])
def test_gradients_reach_only_the_groups_used_and_sum_over_agents(grouping, centralized):
    groups = GROUPINGS[grouping]
    mlp = make(groups, centralized=centralized)
    x = torch.randn(6, len(groups), N_IN)
    weights = torch.randn(6, len(groups), N_OUT)
    # Only agent 3's output: only its group receives gradients.
    (mlp(x)[:, 3] * weights[:, 3]).sum().backward()
    for group in range(mlp.n_groups):
        grad_norm = sum(g.norm() for g in mlp.params.grad[group].values(True, True))
        assert (grad_norm > 0) == (group == groups[3])
    # All agents: gradients equal the reference's, which sums over each group's agents.
    mlp.zero_grad()
    (mlp(x) * weights).sum().backward()
    ours = mlp.params.grad.clone()
    mlp.zero_grad()
    (reference_forward(mlp, x) * weights).sum().backward()
    torch.testing.assert_close(ours, mlp.params.grad)


def test_fresh_groups_are_initialised_differently():
    mlp = make([0, 1, 2, 0, 1])
    weights = mlp.params["0", "weight"]
    assert not torch.allclose(weights[0], weights[1])
    assert not torch.allclose(weights[1], weights[2])


def test_groups_buffer_and_state_dict_round_trip():
    mlp = make(GROUPINGS["interleaved"])
    assert "groups" in dict(mlp.named_buffers())
    state = mlp.state_dict()
    assert torch.equal(state["groups"], torch.tensor(GROUPINGS["interleaved"]))
    other = make([0, 1, 2, 1, 0])  # same number of groups, different assignment and weights
    other.load_state_dict(state)
    x = torch.randn(4, 5, N_IN)
    torch.testing.assert_close(other(x), mlp(x))
    assert other.groups.tolist() == GROUPINGS["interleaved"]


def test_load_state_dict_with_other_number_of_groups_regroups():
    saved = make([0, 1, 0, 1, 1])
    module = make([0, 1, 2, 2, 2])
    module.load_state_dict(saved.state_dict())
    assert module.n_groups == 2 and module.groups.tolist() == [0, 1, 0, 1, 1]
    x = torch.randn(4, 5, N_IN)
    torch.testing.assert_close(module(x), saved(x))


def test_load_state_dict_rejects_bad_groups():
    state = make([0, 0, 1, 1, 1]).state_dict()
    state["groups"] = torch.tensor([0, 0, 2, 2, 2])
    with pytest.raises(ValueError, match="no agent has id"):
        make([0, 0, 1, 1, 1]).load_state_dict(state)


def test_set_groups_from_one_group_copies_the_shared_network():
    mlp = make([0] * 5)
    x = torch.randn(4, 5, N_IN)
    before = mlp(x)
    mlp.set_groups([0, 1, 1, 2, 2])
    assert mlp.n_groups == 3 and mlp.group_sizes == [1, 2, 2]
    torch.testing.assert_close(mlp(x), before)
    for group in (1, 2):
        torch.testing.assert_close(mlp.params[group], mlp.params[0])


def test_set_groups_warm_start_uses_the_majority_old_group():
    mlp = make([0, 0, 1, 1, 2])
    old = mlp.params.data.clone()
    # new group 0 = agents {0, 1, 2}: old 0 twice, old 1 once -> old 0
    # new group 1 = agents {3, 4}: old 1 once, old 2 once -> tie, lower id -> old 1
    mlp.set_groups([0, 0, 0, 1, 1])
    torch.testing.assert_close(mlp.params.data[0], old[0])
    torch.testing.assert_close(mlp.params.data[1], old[1])
    assert mlp.params.data[0]["0", "weight"].data_ptr() != old[0]["0", "weight"].data_ptr()


def test_set_groups_without_warm_start_and_new_parameters_train():
    mlp = make([0, 0, 1, 1, 1])
    old = mlp.params.data.clone()
    mlp.set_groups([0, 0, 1, 1, 1], warm_start=False)
    assert not torch.allclose(mlp.params.data[0]["0", "weight"], old[0]["0", "weight"])
    params = list(mlp.parameters())
    assert all(p.requires_grad for p in params)
    optim = torch.optim.SGD(params, lr=0.1)
    mlp(torch.randn(3, 5, N_IN)).sum().backward()
    before = mlp.params.data.clone()
    optim.step()
    assert not torch.allclose(mlp.params.data[0]["0", "weight"], before[0]["0", "weight"])


def test_reset_parameters_changes_every_group_independently():
    mlp = make([0, 0, 1, 1, 1])
    mlp.set_groups([0, 0, 1, 1, 1])  # same sets, so outputs are unchanged
    mlp.params.data[1].update_(mlp.params.data[0])
    mlp.reset_parameters()
    w = mlp.params["0", "weight"]
    assert not torch.allclose(w[0], w[1])


def test_repr():
    text = repr(make([1, 0, 1, 1, 0]))
    assert "n_agents=5" in text and "n_groups=2" in text and "group_sizes=[2, 3]" in text


@pytest.mark.parametrize(
    "groups, error, match",
    [
        ([0, 0, 1], ValueError, r"length n_agents=5\), got length 3"),
        ([0, -1, 0, 1, 1], ValueError, "non-negative"),
        ([0, 0, 2, 2, 2], ValueError, r"no agent has id\(s\) \[1\]"),
        ([0, 0.5, 1, 1, 1], TypeError, "0.5"),
        ([0, True, 1, 1, 1], TypeError, "True"),
        (torch.zeros(5), TypeError, "torch.float32"),
        (torch.zeros(5, 1, dtype=torch.long), ValueError, r"shape \(5, 1\)"),
        ("00111", TypeError, "str"),
        (None, TypeError, "NoneType"),
    ],
)
def test_bad_groups(groups, error, match):
    with pytest.raises(error, match=match):
        GroupedMultiAgentMLP(N_IN, N_OUT, 5, groups=groups, centralized=False)
    mlp = make([0] * 5)
    with pytest.raises(error, match=match):
        mlp.set_groups(groups)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match="n_agent_inputs must be an int, got None"):
        GroupedMultiAgentMLP(None, N_OUT, 2, groups=[0, 1], centralized=False)
    with pytest.raises(ValueError, match="n_agents must be an int >= 1, got n_agents=0"):
        GroupedMultiAgentMLP(N_IN, N_OUT, 0, groups=[], centralized=False)
    with pytest.raises(TypeError, match="centralized must be True or False, got None"):
        GroupedMultiAgentMLP(N_IN, N_OUT, 2, groups=[0, 1], centralized=None)


@pytest.mark.parametrize("centralized", [False, True])
def test_bad_input_shapes(centralized):
    mlp = make([0, 0, 1, 1, 1], centralized=centralized)
    with pytest.raises(ValueError, match="n_agent_inputs=3 features .* got 4"):
        mlp(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="n_agents=5.* got agent dimension of size 6"):
        mlp(torch.randn(2, 6, N_IN))
    with pytest.raises(ValueError, match="got agent dimension of size None"):
        mlp(torch.randn(N_IN))


@pytest.mark.parametrize("grouping", list(GROUPINGS))
@pytest.mark.parametrize("centralized", [False, True])
def test_vmap_over_parameters_and_buffers(grouping, centralized):
    """TorchRL's value estimators vmap the critic over stacked (params, target params)."""
    mlp = make(GROUPINGS[grouping], centralized=centralized)
    params = TensorDict.from_module(mlp)
    shifted = params.detach().clone().apply(
        lambda t: t + 0.5 if t.is_floating_point() else t
    )
    stacked = torch.stack([params, shifted], 0)
    x = torch.randn(2, 6, len(GROUPINGS[grouping]), N_IN)

    def call(p, inp):
        with p.to_module(mlp):
            return mlp(inp)

    out = torch.vmap(call, (0, 0))(stacked, x)
    torch.testing.assert_close(out[0], mlp(x[0]))
    with shifted.to_module(mlp):
        expected = mlp(x[1])
    torch.testing.assert_close(out[1], expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("grouping", list(GROUPINGS))
def test_cuda_matches_cpu(grouping):
    groups = GROUPINGS[grouping]
    mlp = make(groups)
    x = torch.randn(16, len(groups), N_IN)
    expected = mlp(x)
    mlp = mlp.to("cuda")
    assert mlp.groups.device.type == "cuda"
    torch.testing.assert_close(mlp(x.cuda()).cpu(), expected)
    mlp.set_groups([agent % 2 for agent in range(len(groups))])
    assert mlp.groups.device.type == "cuda" and mlp.params.device.type == "cuda"
    assert mlp(x.cuda()).shape == (16, len(groups), N_OUT)


def test_device_argument_places_parameters_and_groups():
    mlp = make([0, 1, 1, 0, 0], device="cpu")
    assert mlp.params["0", "weight"].device.type == "cpu"
    assert mlp.groups.device.type == "cpu"
    assert isinstance(mlp.params["0", "weight"], nn.Parameter)
