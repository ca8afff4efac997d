from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import davies_bouldin_score, silhouette_score
from threads import one_thread  # noqa: F401

from torchrl_seps.clustering import (
    AgentClustering,
    adjusted_rand_index,
    canonical_labels,
    normalized_mutual_info,
    pairwise_separation,
)


def blobs(sizes, spread=0.05, distance=5.0, dim=5, seed=0):
    """Well-separated clusters of the given sizes, agents ordered by type."""
    g = torch.Generator().manual_seed(seed)
    centres = distance * torch.randn(len(sizes), dim, generator=g)
    types = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return centres[types] + spread * torch.randn(len(types), dim, generator=g), types


def reference_canonical(labels):
    seen = {}
    return [seen.setdefault(x, len(seen)) for x in labels]


@pytest.mark.parametrize("labels", [[2, 2, 0, 1, 0], [0, 1, 2], [7], [5, 5, 5], [3, 1, 3, 2, 1, 0]])
def test_canonical_labels_match_first_appearance(labels):
    assert canonical_labels(labels).tolist() == reference_canonical(labels)
    assert canonical_labels(torch.tensor(labels)).dtype == torch.long


def test_agreement_helpers_ignore_label_names():
    assert adjusted_rand_index([0, 0, 1, 2], [5, 5, 3, 4]) == 1.0
    assert normalized_mutual_info(torch.tensor([0, 0, 1, 2]), np.array([5, 5, 3, 4])) == 1.0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) < 0.1
    with pytest.raises(TypeError, match="labels_pred must hold integer labels"):
        adjusted_rand_index([0, 1], [0.5, 1.5])


def test_pairwise_separation_matches_a_plain_loop():
    g = torch.Generator().manual_seed(1)
    mu, s = torch.randn(4, 3, generator=g), torch.rand(4, 3, generator=g) + 0.1
    sep = pairwise_separation(mu, s)
    for i in range(4):
        for j in range(4):
            expected = math.sqrt(
                sum((mu[i, d] - mu[j, d]) ** 2 / ((s[i, d] ** 2 + s[j, d] ** 2) / 2) for d in range(3))
            )
            assert sep[i, j].item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(pairwise_separation(mu), torch.cdist(mu.double(), mu.double()))


@pytest.mark.parametrize(
    "sizes", [(5, 5, 5), (10, 10, 10), (6, 6, 6, 6, 6), (3, 3, 3, 12, 9), (2, 1, 3)]
)
def test_automatic_k_recovers_separated_types(sizes):
    x, types = blobs(sizes)
    clustering = AgentClustering(random_state=0).fit(x, scales=torch.full_like(x, 0.01))
    assert clustering.n_groups_ == len(sizes)
    assert clustering.decision_ == "silhouette"
    assert clustering.labels_.tolist() == canonical_labels(types).tolist()
    assert sorted(clustering.scores_) == list(range(2, len(types)))


def test_scores_are_sklearn_scores_of_kmeans_partitions():
    x, _ = blobs((4, 4, 4))
    for criterion, score in [("silhouette", silhouette_score), ("davies_bouldin", davies_bouldin_score)]:
        clustering = AgentClustering(criterion=criterion, random_state=3).fit(x, torch.full_like(x, 0.01))
        for k, value in clustering.scores_.items():
            labels = KMeans(n_clusters=k, n_init=10, random_state=3).fit_predict(x.double().numpy())
            assert value == pytest.approx(score(x.double().numpy(), labels))


def test_davies_bouldin_prefers_tiny_clusters_where_the_silhouette_does_not():
    # Five types of six agents, each type spread over a small region: the failure mode that
    # makes silhouette the default.
    x, types = blobs((6, 6, 6, 6, 6), spread=0.6, distance=3.0, seed=4)
    scales = torch.full_like(x, 0.2)
    silhouette = AgentClustering(random_state=0).fit(x, scales)
    davies_bouldin = AgentClustering(criterion="davies_bouldin", random_state=0).fit(x, scales)
    assert silhouette.n_groups_ == 5
    assert adjusted_rand_index(types, silhouette.labels_) == 1.0
    assert davies_bouldin.n_groups_ > 5
    assert davies_bouldin.n_groups_ == min(davies_bouldin.scores_, key=davies_bouldin.scores_.get)


def test_k_is_one_when_no_two_agents_are_separated():
    x, _ = blobs((12,), spread=0.1)
    clustering = AgentClustering(random_state=0).fit(x, scales=torch.full_like(x, 0.1))
    assert clustering.n_groups_ == 1
    assert clustering.decision_ == "not separated"
    assert clustering.labels_.tolist() == [0] * 12
    assert len(clustering.scores_) == 10  # every K in 2..N-1 is still scored


def test_k_is_n_when_every_two_agents_are_separated():
    x = 3.0 * torch.eye(6)  # six equidistant points: no group structure, all distinct
    clustering = AgentClustering(random_state=0).fit(x, scales=torch.full_like(x, 0.01))
    assert clustering.n_groups_ == 6
    assert clustering.decision_ == "all separated"
    assert clustering.labels_.tolist() == list(range(6))


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_agents(n):
    apart = AgentClustering().fit(torch.arange(n, dtype=torch.float)[:, None] * 10, torch.ones(n, 1) * 0.01)
    together = AgentClustering().fit(torch.zeros(n, 1), torch.ones(n, 1))
    assert apart.n_groups_ == n and together.n_groups_ == 1
    assert apart.scores_ == {}


def test_given_number_of_groups():
    x, types = blobs((3, 3, 3, 3))
    for k in [1, 2, 4, 12]:
        clustering = AgentClustering(n_groups=k, random_state=0).fit(x)
        assert clustering.n_groups_ == k and clustering.decision_ == "given"
        assert set(clustering.scores_) == ({k} if 2 <= k < 12 else set())
    assert AgentClustering(n_groups=4, random_state=0).fit_predict(x).tolist() == types.tolist()


def test_cluster_centres_are_group_means():
    x, _ = blobs((2, 3))
    clustering = AgentClustering(n_groups=2, random_state=0).fit(x)
    for g in range(2):
        torch.testing.assert_close(clustering.cluster_centers_[g], x[clustering.labels_ == g].mean(0))


def test_deterministic_for_a_seed_and_canonical():
    x, _ = blobs((4, 4, 4, 4), spread=1.5, distance=2.0, seed=2)  # ambiguous: k-means restarts matter
    first = AgentClustering(n_groups=4, random_state=7, n_init=3).fit_predict(x)
    second = AgentClustering(n_groups=4, random_state=7, n_init=3).fit_predict(x)
    assert first.tolist() == second.tolist()
    assert first[0] == 0 and first.tolist() == reference_canonical(first.tolist())


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(n_groups=0), ValueError, r"n_groups must be in 1\.\.N=5 .* got n_groups=0"),
        (dict(n_groups=6), ValueError, r"n_groups must be in 1\.\.N=5 .* got n_groups=6"),
        (dict(n_groups=2.0), TypeError, "n_groups must be an int or None, got 2.0"),
        (dict(criterion="gap"), ValueError, "criterion must be one of"),
        (dict(separation=-1.0), ValueError, "separation must be a float > 0"),
    ],
)
def test_bad_parameters(params, error, match):
    with pytest.raises(error, match=match):
        AgentClustering(**params).fit(torch.randn(5, 2))


def test_bad_embeddings():
    with pytest.raises(ValueError, match="embeddings must be finite"):
        AgentClustering().fit(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n_agents, n_features\)"):
        AgentClustering().fit(torch.zeros(3))
    with pytest.raises(ValueError, match="scales must have the shape of embeddings"):
        AgentClustering().fit(torch.zeros(3, 2), scales=torch.ones(3, 1))
    with pytest.raises(ValueError, match="scales must be > 0"):
        AgentClustering().fit(torch.zeros(3, 2), scales=torch.zeros(3, 2))
