from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from threads import one_thread  # noqa: F401
from typed_env import TypedAgentsEnv

from torchrl_seps.clustering import adjusted_rand_index
from torchrl_seps.identification import collect_transitions, fit_identity, identify_groups, identity_model
from torchrl_seps.clustering import PartitionTree
from torchrl_seps.model_selection import (
    MIN_HELDOUT_UNITS,
    SEARCHES,
    TiedErrors,
    choose_partition,
    compare_partitions,
    split_heldout,
    tied_heldout_errors,
)

GOALS = [[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]]


def noisy(types, seed=0, noise=0.2, num_envs=16):
    """Agents differ only by type (their goal); every move and reward is noisy."""
    return TypedAgentsEnv(types, goals=GOALS[: max(types) + 1], reset_offset=0.0, noise=noise,
                          num_envs=num_envs, seed=seed)


# -- the held-out split --------------------------------------------------------------------


def test_split_keeps_whole_trajectories_apart():
    traj = torch.randint(0, 60, (600,), generator=torch.Generator().manual_seed(0))
    data = TensorDict({("collector", "traj_ids"): traj, "frame": torch.arange(600)}, [600])
    fit, heldout, unit = split_heldout(data, 0.25, seed=3)
    fit_traj, heldout_traj = set(fit["collector", "traj_ids"].tolist()), set(heldout["collector", "traj_ids"].tolist())
    assert not fit_traj & heldout_traj and fit_traj | heldout_traj == set(traj.tolist())
    assert len(heldout_traj) == round(0.25 * len(set(traj.tolist())))
    assert sorted(fit["frame"].tolist() + heldout["frame"].tolist()) == list(range(600))
    # the unit of a held-out frame is its trajectory, renumbered
    for u in unit.unique():
        assert heldout["collector", "traj_ids"][unit == u].unique().numel() == 1
    again = split_heldout(data, 0.25, seed=3)[1]
    assert torch.equal(again["frame"], heldout["frame"])


def test_few_long_trajectories_are_cut_into_consecutive_blocks():
    traj = torch.arange(4).repeat_interleave(50)  # 4 trajectories of 50 frames, in time order
    data = TensorDict({("collector", "traj_ids"): traj, "t": torch.arange(200) % 50}, [200])
    _, heldout, unit = split_heldout(data, 0.25, seed=0)
    assert unit.unique().numel() >= MIN_HELDOUT_UNITS
    for u in unit.unique():
        block = heldout[unit == u]
        assert block["collector", "traj_ids"].unique().numel() == 1
        t = block["t"]
        assert torch.equal(t, torch.arange(int(t[0]), int(t[0]) + t.numel()))  # consecutive


def test_data_without_trajectory_ids_is_split_into_blocks():
    data = TensorDict({"x": torch.arange(100)}, [100])
    fit, heldout, unit = split_heldout(data, 0.5, seed=0)
    assert fit.shape[0] + heldout.shape[0] == 100 and unit.unique().numel() >= MIN_HELDOUT_UNITS


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, True])
def test_split_refuses_a_bad_fraction(fraction):
    data = TensorDict({"x": torch.arange(10)}, [10])
    with pytest.raises(ValueError, match="heldout_fraction must be a float in"):
        split_heldout(data, fraction)


# -- the paired bootstrap ----------------------------------------------------------------


def test_loss_and_difference_match_a_plain_computation():
    g = torch.Generator().manual_seed(1)
    errors, counts = torch.rand(3, 30, generator=g), torch.randint(1, 5, (30,), generator=g).double()
    evidence = compare_partitions(errors, counts, ks=[1, 2, 4], seed=0)
    for c in range(3):
        assert evidence.loss[c] == pytest.approx(float(errors[c].sum() / counts.sum()))
    best = min(range(3), key=lambda c: evidence.loss[c])
    assert evidence.best_k == [1, 2, 4][best]
    assert evidence.reference_k == 4 and evidence.p_value[2] == 1.0  # the finest candidate
    for c in range(3):
        low, high = evidence.difference_interval[c]
        assert low <= evidence.loss[c] - evidence.loss[2] <= high
        # p-value: share of paired resamples where the candidate is no worse than the reference
        g = torch.Generator().manual_seed(0)
        draws = torch.randint(30, (2000, 30), generator=g)
        resampled = errors[:, draws].sum(-1) / counts[draws].sum(-1)
        assert evidence.p_value[c] == pytest.approx(float((resampled[c] <= resampled[2]).double().mean()))


def test_equal_candidates_give_the_smallest_k():
    noise = torch.rand(50, generator=torch.Generator().manual_seed(2))
    evidence = compare_partitions(noise.repeat(4, 1), torch.ones(50), ks=[1, 2, 3, 5], seed=0)
    assert evidence.chosen_k == 1


def test_a_clearly_worse_merge_is_rejected():
    g = torch.Generator().manual_seed(3)
    base = torch.rand(40, generator=g)
    errors = torch.stack([base + 0.5, base + 0.1, base, base + 0.001 * torch.rand(40, generator=g)])
    evidence = compare_partitions(errors, torch.ones(40), ks=[1, 2, 3, 6], seed=0)
    assert evidence.chosen_k == 3 and evidence.p_value[0] == 0.0 and evidence.p_value[1] == 0.0
    assert "K=3 is the smallest K" in evidence.describe()


def test_false_split_rate_is_about_alpha_when_candidates_are_exchangeable():
    """Six candidates whose per-unit errors come from one distribution: K=1 is judged worse in
    about alpha of the trials (a plain Monte Carlo check of the test's level), although one of
    the other five is, by chance, better than K=1 in most trials."""
    g = torch.Generator().manual_seed(4)
    rejected = not_best = 0
    trials = 200
    for trial in range(trials):
        shared = torch.rand(40, generator=g)
        errors = shared + 0.1 * torch.randn(6, 40, generator=g)
        evidence = compare_partitions(errors, torch.ones(40), ks=[1, 2, 3, 4, 5, 6], alpha=0.05,
                                      n_bootstrap=400, seed=trial)
        rejected += evidence.chosen_k != 1
        not_best += evidence.best_k != 1
    assert rejected / trials < 0.10 and not_best / trials > 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ks=[1, 2]), r"errors must have shape \(len\(ks\), n_units\)"),
        (dict(ks=[2, 1, 3]), "ks must be strictly increasing"),
        (dict(ks=[1, 2, 3], alpha=1.5), r"alpha must be a float in \(0, 1\)"),
        (dict(ks=[1, 2, 3], n_bootstrap=0), "n_bootstrap must be an int >= 1"),
    ],
)
def test_bad_comparison_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_partitions(torch.rand(3, 10), torch.ones(10), **kwargs)


# -- tied embeddings ----------------------------------------------------------------------


def briefly_fitted(types):
    """An identity model fitted for one epoch on 200 steps of a noisy env with ``types``, and its data."""
    env = noisy(types, num_envs=4)
    loss = identity_model(env)
    data = collect_transitions(env, 200)
    fit_identity(loss, data, epochs=1, batch_size=50)
    return loss, data


def test_tied_errors_match_a_loop_over_frames_agents_and_groups():
    loss, data = briefly_fitted([0, 0, 1, 1])
    embeddings = torch.randn(4, loss.encoder.latent_dim)
    partitions = {1: [0, 0, 0, 0], 2: [0, 0, 1, 1], 4: [0, 1, 2, 3]}
    unit = torch.arange(data.shape[0]) % 7
    errors, counts = tied_heldout_errors(loss, data, unit, embeddings, partitions, weighting="loss")
    assert counts.tolist() == [4.0 * (unit == u).sum().item() for u in range(7)]

    def error_per_unit(latent):  # [7]: summed over frames and agents of each unit
        with torch.no_grad():
            per_frame = loss.reconstruction_error(data, latent=latent).sum(-1)
        return torch.stack([per_frame[unit == u].sum() for u in range(7)]).double()

    for c, labels in enumerate(partitions.values()):
        labels = torch.tensor(labels)
        mean = error_per_unit(torch.stack([embeddings[labels == labels[i]].mean(0) for i in range(4)]))
        swap = torch.zeros(7, dtype=torch.float64)
        for i in range(4):
            members = (labels == labels[i]).nonzero().flatten().tolist()
            for j in members:  # agent i predicted with member j's embedding
                with torch.no_grad():
                    per_frame = loss.reconstruction_error(data, latent=embeddings[j].expand(4, -1))[:, i]
                swap += torch.stack([per_frame[unit == u].sum() for u in range(7)]).double() / len(members)
        expected = mean if mean.sum() <= swap.sum() else swap
        torch.testing.assert_close(errors[c], expected, rtol=1e-5, atol=1e-6)
    # singletons: both ways are the model as fitted
    torch.testing.assert_close(errors[2], error_per_unit(embeddings), rtol=1e-5, atol=1e-6)


def test_tied_errors_take_the_better_way_of_sharing():
    """Scattered embeddings: their mean is the origin; the score is the better of the mean and the swap."""
    loss, data = briefly_fitted([0, 0, 0, 0])
    unit = torch.arange(data.shape[0]) % 5
    far = torch.tensor([[6.0, 0, 0, 0, 0], [-6.0, 0, 0, 0, 0], [0, 6.0, 0, 0, 0], [0, -6.0, 0, 0, 0]])
    one = {1: [0, 0, 0, 0]}
    scattered, _ = tied_heldout_errors(loss, data, unit, far, one, weighting="loss")
    at_mean, _ = tied_heldout_errors(loss, data, unit, torch.zeros(4, 5), one, weighting="loss")
    with torch.no_grad():
        swap = sum(loss.reconstruction_error(data, latent=far[j].expand(4, -1)).sum() for j in range(4)) / 4
    expected = min(swap.item(), at_mean.sum().item())
    assert scattered.sum().item() == pytest.approx(expected, rel=1e-5)


def test_likelihood_weights_are_one_over_k_equals_n_s_error_per_feature():
    loss, data = briefly_fitted([0, 0, 1, 1])
    embeddings = torch.randn(4, loss.encoder.latent_dim)
    unit = torch.arange(data.shape[0]) % 5
    scorer = TiedErrors(loss, data, unit, embeddings)
    with torch.no_grad():  # a plain loop over frames: predictions against standardised targets
        squared = torch.stack([loss.squared_errors(data[t : t + 1], latent=embeddings)[0] for t in range(200)])
    mse = squared.double().mean((0, 1))
    expected = 1.0 / (mse.clamp(min=0.01) * mse.numel())
    torch.testing.assert_close(scorer.feature_weights.double(), expected, rtol=1e-4, atol=0)
    weighted = (squared.double() * expected).sum(-1)  # [frames, agents]
    reference = torch.stack([weighted[unit == u].sum() for u in range(5)])
    torch.testing.assert_close(scorer.reference, reference, rtol=1e-4, atol=1e-6)
    if (mse > 0.01).all():  # no feature floored: K = N scores one per transition and agent
        assert (scorer.reference.sum() / scorer.counts.sum()).item() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="weighting must be one of"):
        TiedErrors(loss, data, unit, embeddings, weighting="mse")


# -- the whole rule on a synthetic identity problem with known truth ------------------------


def bisection_visits(n, true_k):
    """The candidates a doubling-then-bisection search scores when exactly K >= true_k pass."""
    visited, k = {n}, 1
    while k < n and k < true_k:
        visited.add(k)
        k *= 2
    low, high = k // 2, min(k, n)
    visited.add(high)
    while high - low > 1:
        middle = (low + high) // 2
        visited.add(middle)
        low, high = (low, middle) if middle >= true_k else (middle, high)
    return sorted(visited)


@pytest.mark.parametrize(
    "types",
    [[0] * 8, [0, 0, 1, 1, 2, 2], [0, 1], [0, 0], [0, 1, 2]],
    ids=["8-exchangeable", "3-types-of-2", "pair-differs", "pair-alike", "all-differ"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_heldout_rule_finds_the_true_grouping_of_noisy_agents(types, seed):
    result = identify_groups(noisy(types, seed=seed), frames=1024, epochs=12, batch_size=64, seed=seed)
    assert adjusted_rand_index(types, result.groups) == 1.0
    assert result.n_groups == len(set(types))
    assert result.evidence.chosen_k == result.n_groups
    assert result.evidence.ks == bisection_visits(len(types), len(set(types)))
    assert result.decision.startswith("held-out: ")
    assert 0 < result.heldout_frames < result.frames


# -- the search over nested candidates ------------------------------------------------------


class _MonotoneOracle:
    """Stands in for TiedErrors: a partition with fewer than ``true_k`` groups has error 1 more
    per unit than K = N, one with at least ``true_k`` groups the same error; it counts calls."""

    def __init__(self, n_agents, true_k, n_units=20):
        self.n_agents, self.true_k = n_agents, true_k
        self.reference = torch.rand(n_units, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        self.counts = torch.ones(n_units, dtype=torch.float64)
        self.scored = []

    def mean(self, labels):
        k = int(labels.max()) + 1
        self.scored.append(k)
        return self.reference + (1.0 if k < self.true_k else 0.0)

    swap = mean


@pytest.mark.parametrize("n_agents", [1, 2, 3, 7, 16, 33, 240])
def test_bisection_and_exhaustive_search_agree_where_the_verdict_is_monotone(n_agents):
    tree = PartitionTree(torch.randn(n_agents, 3, generator=torch.Generator().manual_seed(n_agents)))
    for true_k in sorted({1, 2, 3, n_agents // 2 + 1, n_agents}):
        if not 1 <= true_k <= n_agents:
            continue
        found = {}
        for search in SEARCHES:
            oracle = _MonotoneOracle(n_agents, true_k)
            labels, evidence = choose_partition(oracle, tree, search=search, seed=0)
            found[search] = labels.tolist()
            assert evidence.chosen_k == true_k == len(set(labels.tolist())), (search, true_k)
            assert evidence.search == search and evidence.reference_k == n_agents
        assert found["bisection"] == found["exhaustive"]
        oracle = _MonotoneOracle(n_agents, true_k)
        _, evidence = choose_partition(oracle, tree, seed=0)
        assert evidence.ks == bisection_visits(n_agents, true_k)
        assert len(evidence.ks) <= 2 * math.log2(max(true_k, 1)) + 3


def test_bisection_picks_the_exhaustive_search_s_k_on_a_fitted_model():
    """Three types of four agents, one model: the two searches over the same held-out data."""
    types = [0] * 4 + [1] * 4 + [2] * 4
    env = noisy(types, seed=3)
    torch.manual_seed(3)
    data = collect_transitions(env, 2048)
    fit, heldout, unit = split_heldout(data, 0.25, seed=3)
    loss = identity_model(env)
    fit_identity(loss, fit, epochs=12, batch_size=64)
    with torch.no_grad():
        embeddings, _ = loss.encoder.agent_distribution()
    scorer = TiedErrors(loss, heldout, unit, embeddings)
    tree = PartitionTree(embeddings)
    found = {search: choose_partition(scorer, tree, search=search, seed=3) for search in SEARCHES}
    (bisected, by_bisection), (exhausted, by_exhaustion) = found["bisection"], found["exhaustive"]
    assert by_bisection.chosen_k == by_exhaustion.chosen_k == 3
    assert bisected.tolist() == exhausted.tolist() and adjusted_rand_index(types, bisected) == 1.0
    assert by_exhaustion.ks == list(range(1, 13)) and len(by_bisection.ks) < 12
    for k in by_bisection.ks:  # a candidate scored by both searches gets the same verdict
        i, j = by_bisection.ks.index(k), by_exhaustion.ks.index(k)
        assert (by_bisection.p_value[i] >= 0.01) == (by_exhaustion.p_value[j] >= 0.01)


def test_choose_partition_refuses_bad_arguments():
    oracle = _MonotoneOracle(4, 2)
    with pytest.raises(ValueError, match="search must be one of"):
        choose_partition(oracle, PartitionTree(torch.randn(4, 2)), search="greedy")
    with pytest.raises(ValueError, match="tree has 5 agents but scorer 4"):
        choose_partition(oracle, PartitionTree(torch.randn(5, 2)))


def test_identification_at_240_agents_in_seconds():
    """240 agents of three types: the fit samples 64 agents per frame and K is found by bisection."""
    types = [0] * 80 + [1] * 80 + [2] * 80
    result = identify_groups(noisy(types, seed=0, num_envs=8), frames=512, epochs=12, batch_size=32, seed=0)
    assert result.n_groups == 3 and adjusted_rand_index(types, result.groups) == 1.0
    assert result.evidence.ks == bisection_visits(240, 3)
