"""Grouping agents by their identity embeddings with k-means: K given, or chosen.

:class:`AgentClustering` is a scikit-learn estimator over the ``N`` embeddings (one row per
agent). It offers two things:

- :meth:`AgentClustering.fit`: K given, or chosen from the embeddings alone by an internal
  index, the mean silhouette coefficient (the default) or the Davies-Bouldin index (the SePS
  authors' choice), over ``K = 2..N-1``.
- :meth:`AgentClustering.partitions`: the k-means partition of every candidate K.

:class:`PartitionTree` gives nested candidates instead: Ward's agglomerative clustering of the
embeddings, cut at any K. These are the candidates that
:func:`~torchrl_seps.identification.identify_groups` scores on held-out transitions, which is
how this package chooses K by default (:mod:`torchrl_seps.model_selection`): nested partitions
let the smallest adequate K be found by bisection, a few candidates instead of all N.

What embeddings alone cannot decide: whether all agents are alike (K = 1) or all differ
(K = N). A cloud of points without structure looks the same in both cases, because nothing
in the embeddings says which distances matter: that is a question about how well each
grouping predicts the agents' transitions, which needs the identity model and data it was not
fitted on. So ``fit`` without ``n_groups`` only chooses among ``2..N-1`` and refuses fewer than
three agents. Between those, the silhouette is preferred to Davies-Bouldin, which rewards
partitions into many tiny clusters (a singleton has no spread) and then picks K close to N.

Labels are canonical: groups are numbered in order of first appearance by agent index, so
agent 0 is always in group 0, and equal partitions get equal labels.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from torchrl_seps._checks import check_int, check_matrix

__all__ = [
    "AgentClustering",
    "PartitionTree",
    "adjusted_rand_index",
    "canonical_labels",
    "normalized_mutual_info",
]

ArrayLike = Sequence | np.ndarray | torch.Tensor
CRITERIA = ("silhouette", "davies_bouldin")


def _as_labels(name: str, labels: ArrayLike) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {labels.shape}.")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer labels, got dtype {labels.dtype}.")
    return labels


def canonical_labels(labels: ArrayLike) -> np.ndarray:
    """Renumbers labels in order of first appearance: the first agent's label becomes 0, the
    next new label 1, and so on.

    Examples:
        >>> canonical_labels([2, 2, 0, 1, 0])
        array([0, 0, 1, 2, 1])
    """
    labels = _as_labels("labels", labels)
    values, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # rank of each unique label by first appearance
    return rank[inverse.reshape(-1)].astype(np.int64)


def adjusted_rand_index(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """scikit-learn's adjusted Rand index between two labelings: 1.0 when they are the same
    partition, about 0 for a random one.

    Examples:
        >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
        1.0
    """
    return float(
        adjusted_rand_score(_as_labels("labels_true", labels_true), _as_labels("labels_pred", labels_pred))
    )


def normalized_mutual_info(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """scikit-learn's normalised mutual information between two labelings (1.0 when equal).

    Examples:
        >>> normalized_mutual_info([0, 0, 1, 1], [1, 1, 0, 0])
        1.0
    """
    return float(
        normalized_mutual_info_score(
            _as_labels("labels_true", labels_true), _as_labels("labels_pred", labels_pred)
        )
    )


class AgentClustering(ClusterMixin, BaseEstimator):
    """Groups agents by k-means over their identity embeddings, with K given or chosen.

    See the module documentation for what K the embeddings alone can decide.

    Args:
        n_groups (int, optional): number of groups; ``None`` (the default) chooses it in
            ``2..N-1`` by the ``criterion``.

    Keyword Args:
        criterion (str, optional): ``"silhouette"`` (the default) or ``"davies_bouldin"``.
        n_init (int, optional): k-means restarts (k-means++ initialisation). Defaults to ``10``.
        random_state (int, optional): seed of k-means; equal seeds give equal results.

    Attributes:
        labels_ (ndarray): canonical group of each agent, shape ``(N,)``, ``int64``.
        n_groups_ (int): number of groups.
        cluster_centers_ (ndarray): mean embedding of each group, shape ``(n_groups_, n_features)``.
        scores_ (dict[int, float]): the criterion's score of every K tried in ``2..N-1``
            (empty when ``n_groups`` is given).
        decision_ (str): how K was chosen: ``"given"``, the criterion's name, or
            ``"identical embeddings"`` (K = 1).

    Examples:
        >>> import numpy as np
        >>> centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
        >>> types = np.array([2, 2, 0, 0, 1, 1])
        >>> embeddings = centres[types] + 0.1 * np.random.default_rng(0).normal(size=(6, 2))
        >>> clustering = AgentClustering(random_state=0).fit(embeddings)
        >>> clustering.n_groups_, clustering.decision_
        (3, 'silhouette')
        >>> clustering.labels_
        array([0, 0, 1, 1, 2, 2])
        >>> {k: labels.tolist() for k, labels in clustering.partitions(embeddings, ks=[1, 2]).items()}
        {1: [0, 0, 0, 0, 0, 0], 2: [0, 0, 1, 1, 1, 1]}
    """

    def __init__(
        self,
        n_groups: int | None = None,
        *,
        criterion: str = "silhouette",
        n_init: int = 10,
        random_state: int | None = None,
    ) -> None:
        self.n_groups = n_groups
        self.criterion = criterion
        self.n_init = n_init
        self.random_state = random_state

    def validate_params(self, n_agents: int) -> None:
        """Checks the parameters for ``n_agents`` agents; raises ``TypeError`` / ``ValueError``."""
        if check_int("n_groups", self.n_groups, minimum=None, optional=True) is not None:
            if not 1 <= self.n_groups <= n_agents:
                raise ValueError(
                    f"n_groups must be in 1..N={n_agents} (the number of agents), got "
                    f"n_groups={self.n_groups}."
                )
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}.")
        check_int("n_init", self.n_init)

    def _kmeans(self, x: np.ndarray, k: int) -> np.ndarray:
        n = x.shape[0]
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        if k == n:
            return np.arange(n, dtype=np.int64)
        with warnings.catch_warnings():
            # Fewer distinct embeddings than k: k-means returns fewer groups, which is right.
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state)
            return canonical_labels(km.fit_predict(x))

    def partitions(self, embeddings: ArrayLike, ks: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        """The k-means partition for every K in ``ks`` (default ``1..N``), canonical labels.

        K = 1 puts every agent in one group and K = N every agent in its own, without k-means.
        Where the embeddings hold fewer than K distinct points, the partition has fewer groups.
        """
        x = check_matrix("embeddings", embeddings)
        n = x.shape[0]
        ks = range(1, n + 1) if ks is None else list(ks)
        for k in ks:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
                raise ValueError(f"ks must hold ints in 1..N={n}, got {k!r}.")
        return {int(k): self._kmeans(x, int(k)) for k in ks}

    def fit(self, embeddings: ArrayLike, y: None = None) -> AgentClustering:
        """Clusters the agents.

        Args:
            embeddings (array-like): one embedding per agent, shape ``(N, n_features)``.
            y: ignored (scikit-learn's signature).

        Returns:
            self

        Raises:
            ValueError: without ``n_groups`` for fewer than three agents, where the embeddings
                alone cannot tell one group from N (see the module documentation).
        """
        x = check_matrix("embeddings", embeddings)
        n = x.shape[0]
        self.validate_params(n)
        self.scores_: dict[int, float] = {}
        if self.n_groups is not None:
            labels, self.decision_ = self._kmeans(x, self.n_groups), "given"
        elif n < 3:
            raise ValueError(
                f"cannot choose the number of groups of {n} agents from embeddings alone: "
                "pass n_groups, or let identify_groups choose K on held-out transitions."
            )
        else:
            candidates = self.partitions(x, range(2, n))
            for k, candidate in candidates.items():
                if len(np.unique(candidate)) > 1:
                    self.scores_[k] = self._score(x, candidate)
            if not self.scores_:  # every embedding is the same point
                labels, self.decision_ = np.zeros(n, dtype=np.int64), "identical embeddings"
            else:
                pick = max if self.criterion == "silhouette" else min
                best = pick(self.scores_, key=self.scores_.get)
                labels, self.decision_ = candidates[best], self.criterion
        self.labels_ = labels
        self.n_groups_ = int(self.labels_.max()) + 1
        self.cluster_centers_ = np.stack([x[self.labels_ == g].mean(0) for g in range(self.n_groups_)])
        return self

    def _score(self, x: np.ndarray, labels: np.ndarray) -> float:
        if self.criterion == "silhouette":
            return float(silhouette_score(x, labels))
        return float(davies_bouldin_score(x, labels))

    def fit_predict(self, embeddings: ArrayLike, y: None = None) -> np.ndarray:
        """Clusters the agents and returns :attr:`labels_`.

        Examples:
            >>> AgentClustering(n_groups=2, random_state=0).fit_predict([[0.0], [9.0], [0.1]])
            array([0, 1, 0])
        """
        return self.fit(embeddings).labels_


class PartitionTree:
    """Nested partitions of the agents: Ward's agglomerative clustering of their embeddings.

    Ward's method merges, at every step, the two groups whose union least increases the
    within-group sum of squares (the quantity k-means minimises), from one group per agent up to
    a single group. :meth:`cut` returns the partition into any K groups: the first ``N - K``
    merges. Partitions for different K are nested, each cut refining every coarser one, so a
    merge of two distinct types made at some K is kept at every smaller K. Building the tree
    costs ``O(N^2)`` distance evaluations in the embedding space (a fraction of a second at a
    thousand agents); a cut costs ``O(N)``.

    Args:
        embeddings (array-like): one embedding per agent, shape ``(N, n_features)``.

    Attributes:
        n_agents (int): ``N``.
        merges (ndarray): the merge order, shape ``(N - 1, 2)``: row ``i`` joins the two nodes
            into node ``N + i`` (nodes ``0..N-1`` are the agents), as scikit-learn's
            ``AgglomerativeClustering.children_``.

    Examples:
        >>> import numpy as np
        >>> embeddings = np.array([[0.0], [10.0], [0.2], [10.1], [5.0]])
        >>> tree = PartitionTree(embeddings)
        >>> tree.cut(1).tolist(), tree.cut(2).tolist(), tree.cut(3).tolist()
        ([0, 0, 0, 0, 0], [0, 1, 0, 1, 0], [0, 1, 0, 1, 2])
        >>> tree.cut(5).tolist()
        [0, 1, 2, 3, 4]
    """

    def __init__(self, embeddings: ArrayLike) -> None:
        x = check_matrix("embeddings", embeddings)
        self.n_agents = x.shape[0]
        if self.n_agents < 2:
            self.merges = np.zeros((0, 2), dtype=np.int64)
        else:
            ward = AgglomerativeClustering(n_clusters=1, linkage="ward", compute_full_tree=True)
            self.merges = ward.fit(x).children_.astype(np.int64)

    def cut(self, n_groups: int) -> np.ndarray:
        """The partition into exactly ``n_groups`` groups, canonical labels of shape ``(N,)``."""
        n = self.n_agents
        if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or not 1 <= n_groups <= n:
            raise ValueError(f"n_groups must be an int in 1..N={n}, got {n_groups!r}.")
        n_merges = n - int(n_groups)
        parent = np.arange(n + n_merges)
        for i, (a, b) in enumerate(self.merges[:n_merges]):
            parent[a] = parent[b] = n + i
        root = parent.copy()
        for node in range(n + n_merges - 1, -1, -1):  # a parent's number exceeds its children's
            root[node] = root[parent[node]]
        return canonical_labels(root[:n])
