from __future__ import annotations


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
)
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_clustering


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
    out = canonical_labels(labels)
    assert out.tolist() == reference_canonical(labels)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64
    assert canonical_labels(torch.tensor(labels)).tolist() == reference_canonical(labels)


def test_agreement_helpers_ignore_label_names():
    assert adjusted_rand_index([0, 0, 1, 2], [5, 5, 3, 4]) == 1.0
    assert normalized_mutual_info(torch.tensor([0, 0, 1, 2]), np.array([5, 5, 3, 4])) == 1.0
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) < 0.1
    with pytest.raises(TypeError, match="labels_pred must hold integer labels"):
        adjusted_rand_index([0, 1], [0.5, 1.5])


def test_follows_the_scikit_learn_clusterer_contract():
    """scikit-learn's own check for clusterers: numpy labels, fit_predict == fit().labels_, ..."""
    check_clustering("AgentClustering", AgentClustering(n_groups=3, random_state=0))
    assert clone(AgentClustering(n_groups=2, n_init=3)).get_params()["n_init"] == 3


@pytest.mark.parametrize(
    "sizes", [(5, 5, 5), (10, 10, 10), (6, 6, 6, 6, 6), (3, 3, 3, 12, 9), (2, 1, 3)]
)
def test_embedding_criterion_recovers_separated_types(sizes):
    x, types = blobs(sizes)
    clustering = AgentClustering(random_state=0).fit(x)
    assert clustering.n_groups_ == len(sizes)
    assert clustering.decision_ == "silhouette"
    assert isinstance(clustering.labels_, np.ndarray)
    assert clustering.labels_.tolist() == canonical_labels(types).tolist()
    assert sorted(clustering.scores_) == list(range(2, len(types)))


def test_partitions_are_kmeans_partitions_of_every_k():
    x, _ = blobs((4, 4, 4), spread=1.0, distance=2.0, seed=5)
    partitions = AgentClustering(random_state=3).partitions(x)
    assert list(partitions) == list(range(1, 13))
    assert partitions[1].tolist() == [0] * 12 and partitions[12].tolist() == list(range(12))
    for k in range(2, 12):
        labels = KMeans(n_clusters=k, n_init=10, random_state=3).fit_predict(x.double().numpy())
        assert adjusted_rand_index(labels, partitions[k]) == 1.0
        assert partitions[k].tolist() == reference_canonical(partitions[k].tolist())
    with pytest.raises(ValueError, match=r"ks must hold ints in 1\.\.N=12, got 13"):
        AgentClustering().partitions(x, ks=[13])


def test_partitions_of_repeated_embeddings_have_fewer_groups():
    x = torch.tensor([[0.0], [0.0], [1.0], [1.0]])
    assert AgentClustering(random_state=0).partitions(x, ks=[3])[3].max() <= 2


def test_scores_are_sklearn_scores_of_kmeans_partitions():
    x, _ = blobs((4, 4, 4))
    for criterion, score in [("silhouette", silhouette_score), ("davies_bouldin", davies_bouldin_score)]:
        clustering = AgentClustering(criterion=criterion, random_state=3).fit(x)
        for k, value in clustering.scores_.items():
            labels = KMeans(n_clusters=k, n_init=10, random_state=3).fit_predict(x.double().numpy())
            assert value == pytest.approx(score(x.double().numpy(), labels))


def test_davies_bouldin_prefers_tiny_clusters_where_the_silhouette_does_not():
    # Five types of six agents, each type spread over a small region: the failure mode that
    # makes silhouette the default.
    x, types = blobs((6, 6, 6, 6, 6), spread=0.6, distance=3.0, seed=4)
    silhouette = AgentClustering(random_state=0).fit(x)
    davies_bouldin = AgentClustering(criterion="davies_bouldin", random_state=0).fit(x)
    assert silhouette.n_groups_ == 5
    assert adjusted_rand_index(types, silhouette.labels_) == 1.0
    assert davies_bouldin.n_groups_ > 5
    assert davies_bouldin.n_groups_ == min(davies_bouldin.scores_, key=davies_bouldin.scores_.get)


def test_embeddings_alone_cannot_choose_for_fewer_than_three_agents():
    for n in (1, 2):
        with pytest.raises(ValueError, match=f"cannot choose the number of groups of {n} agents"):
            AgentClustering().fit(torch.randn(n, 2))
        assert AgentClustering(n_groups=n).fit(torch.randn(n, 2)).n_groups_ == n


def test_identical_embeddings_are_one_group():
    clustering = AgentClustering(random_state=0).fit(torch.ones(5, 2))
    assert clustering.labels_.tolist() == [0] * 5 and clustering.decision_ == "identical embeddings"


def test_given_number_of_groups():
    x, types = blobs((3, 3, 3, 3))
    for k in [1, 2, 4, 12]:
        clustering = AgentClustering(n_groups=k, random_state=0).fit(x)
        assert clustering.n_groups_ == k and clustering.decision_ == "given"
        assert clustering.scores_ == {}
    assert AgentClustering(n_groups=4, random_state=0).fit_predict(x).tolist() == types.tolist()


def test_cluster_centres_are_group_means():
    x, _ = blobs((2, 3))
    clustering = AgentClustering(n_groups=2, random_state=0).fit(x)
    for g in range(2):
        np.testing.assert_allclose(
            clustering.cluster_centers_[g], x[torch.as_tensor(clustering.labels_) == g].double().mean(0)
        )


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
        (dict(n_init=0), ValueError, "n_init must be an int >= 1"),
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
