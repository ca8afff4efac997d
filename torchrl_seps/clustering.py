"""Grouping agents by their identity embeddings: k-means, with the number of groups chosen
automatically when it is not given.

Choosing K (:class:`AgentClustering` with ``n_groups=None``) takes three steps, on the ``N``
embeddings (the encoder means) and, when given, their posterior standard deviations:

1. **K = 1 when no two agents are separated.** The *separation* of agents ``i`` and ``j`` is the
   distance between their means in units of their posterior standard deviations,
   ``sqrt(sum_d (mu_id - mu_jd)^2 / ((s_id^2 + s_jd^2) / 2))``. If every pair is closer than
   ``separation`` (default 20), the identity model could not tell any two agents apart: one
   group. (Without standard deviations, distances are in latent units.)
2. **K = N when every two agents are separated.** If every pair is further apart than
   ``separation``, no two agents behave alike: one group each.
3. **Otherwise, the best K in 2..N-1** by the ``criterion``: the mean silhouette coefficient
   (highest wins; the default) or the Davies-Bouldin index (lowest wins; the SePS authors'
   choice), each over the k-means partition of that K.

Why the silhouette by default: Davies-Bouldin rewards partitions into many tiny clusters, since
a singleton cluster has no spread; with agents of one type at slightly different places it then
prefers K close to N. The silhouette gives a singleton a score of 0, so splitting a tight group
costs more than it gains. Why the separation tests: neither index is defined for K = 1 or
K = N, and a set of embeddings without group structure looks the same whether all agents are
alike or all differ; only an absolute scale tells the two apart, and the posterior standard
deviation is the identity model's own measure of which differences it can resolve.

Labels are canonical: groups are numbered in order of first appearance by agent index, so
agent 0 is always in group 0, and equal partitions get equal labels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

__all__ = [
    "AgentClustering",
    "adjusted_rand_index",
    "canonical_labels",
    "normalized_mutual_info",
    "pairwise_separation",
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


def canonical_labels(labels: ArrayLike) -> torch.Tensor:
    """Renumbers labels in order of first appearance: the first agent's label becomes 0, the
    next new label 1, and so on.

    Examples:
        >>> canonical_labels([2, 2, 0, 1, 0])
        tensor([0, 0, 1, 2, 1])
    """
    labels = _as_labels("labels", labels)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))  # rank of each unique label by first appearance
    mapping = dict(zip(np.unique(labels).tolist(), order.tolist()))
    return torch.tensor([mapping[x] for x in labels.tolist()], dtype=torch.long)


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


def _as_matrix(name: str, x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric (n_agents, n_features) array.") from err
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n_agents, n_features), got {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(x)).sum())} NaN or inf.")
    return x


def pairwise_separation(embeddings: ArrayLike, scales: ArrayLike | None = None) -> torch.Tensor:
    """The separation of every pair of agents: the distance between their embeddings in units
    of their standard deviations, ``sqrt(sum_d (mu_id - mu_jd)^2 / ((s_id^2 + s_jd^2) / 2))``.

    Without ``scales`` this is the Euclidean distance.

    Examples:
        >>> pairwise_separation([[0.0], [1.0]], scales=[[0.1], [0.1]])
        tensor([[ 0., 10.],
                [10.,  0.]], dtype=torch.float64)
    """
    mu = _as_matrix("embeddings", embeddings)
    if scales is None:
        var = np.ones_like(mu)
    else:
        var = _as_matrix("scales", scales) ** 2
        if var.shape != mu.shape:
            raise ValueError(
                f"scales must have the shape of embeddings {mu.shape}, got {var.shape}."
            )
        if (var <= 0).any():
            raise ValueError("scales must be > 0.")
    diff2 = (mu[:, None, :] - mu[None, :, :]) ** 2
    pooled = (var[:, None, :] + var[None, :, :]) / 2
    return torch.from_numpy(np.sqrt((diff2 / pooled).sum(-1)))


class AgentClustering(ClusterMixin, BaseEstimator):
    """Groups agents by k-means over their identity embeddings, with K given or chosen.

    See the module documentation for how K is chosen when ``n_groups=None``.

    Args:
        n_groups (int, optional): number of groups; ``None`` (the default) chooses it in
            ``1..N``.

    Keyword Args:
        criterion (str, optional): ``"silhouette"`` (the default) or ``"davies_bouldin"``, the
            score that picks K in ``2..N-1``.
        separation (float, optional): the separation (distance in posterior standard
            deviations) above which two agents count as distinguishable, for the K = 1 and
            K = N tests. Defaults to ``20.0``.
        n_init (int, optional): k-means restarts (k-means++ initialisation). Defaults to ``10``.
        random_state (int, optional): seed of k-means; equal seeds give equal results.

    Attributes:
        labels_ (LongTensor): canonical group of each agent, shape ``[N]``.
        n_groups_ (int): number of groups.
        cluster_centers_ (Tensor): mean embedding of each group, shape ``[n_groups_, n_features]``.
        scores_ (dict[int, float]): the criterion's score of every K tried in ``2..N-1``.
        separation_ (Tensor): pairwise separations, shape ``[N, N]``.
        decision_ (str): how K was chosen: ``"given"``, ``"not separated"`` (K = 1),
            ``"all separated"`` (K = N) or the criterion's name.

    Examples:
        >>> import torch
        >>> centres = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
        >>> types = torch.tensor([2, 2, 0, 0, 1, 1])
        >>> embeddings = centres[types] + 0.1 * torch.randn(6, 2)
        >>> clustering = AgentClustering(random_state=0).fit(embeddings, scales=torch.full((6, 2), 0.05))
        >>> clustering.n_groups_, clustering.decision_
        (3, 'silhouette')
        >>> clustering.labels_
        tensor([0, 0, 1, 1, 2, 2])
        >>> AgentClustering(random_state=0).fit(0.01 * torch.randn(6, 2), scales=torch.ones(6, 2)).n_groups_
        1
    """

    def __init__(
        self,
        n_groups: int | None = None,
        *,
        criterion: str = "silhouette",
        separation: float = 20.0,
        n_init: int = 10,
        random_state: int | None = None,
    ) -> None:
        self.n_groups = n_groups
        self.criterion = criterion
        self.separation = separation
        self.n_init = n_init
        self.random_state = random_state

    def validate_params(self, n_agents: int) -> None:
        """Checks the parameters for ``n_agents`` agents; raises ``TypeError`` / ``ValueError``."""
        if self.n_groups is not None:
            if isinstance(self.n_groups, bool) or not isinstance(self.n_groups, (int, np.integer)):
                raise TypeError(
                    f"n_groups must be an int or None, got {self.n_groups!r} of type "
                    f"{type(self.n_groups).__name__}."
                )
            if not 1 <= self.n_groups <= n_agents:
                raise ValueError(
                    f"n_groups must be in 1..N={n_agents} (the number of agents), got "
                    f"n_groups={self.n_groups}."
                )
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}.")
        if (
            isinstance(self.separation, bool)
            or not isinstance(self.separation, (int, float))
            or not self.separation > 0
        ):
            raise ValueError(f"separation must be a float > 0, got {self.separation!r}.")
        if isinstance(self.n_init, bool) or not isinstance(self.n_init, int) or self.n_init < 1:
            raise ValueError(f"n_init must be an int >= 1, got {self.n_init!r}.")

    def _kmeans(self, x: np.ndarray, k: int) -> np.ndarray:
        n = x.shape[0]
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        if k == n:
            return np.arange(n, dtype=np.int64)
        km = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state)
        return km.fit_predict(x)

    def _score(self, x: np.ndarray, labels: np.ndarray) -> float:
        if self.criterion == "silhouette":
            return float(silhouette_score(x, labels))
        return float(davies_bouldin_score(x, labels))

    def fit(self, embeddings: ArrayLike, scales: ArrayLike | None = None) -> AgentClustering:
        """Clusters the agents.

        Args:
            embeddings (array-like): one embedding per agent, shape ``(N, n_features)``.
            scales (array-like, optional): posterior standard deviations of the embeddings,
                same shape; used by the K = 1 and K = N tests only.

        Returns:
            self
        """
        x = _as_matrix("embeddings", embeddings)
        n = x.shape[0]
        self.validate_params(n)
        self.separation_ = pairwise_separation(x, scales)
        self.scores_: dict[int, float] = {}
        labels_by_k: dict[int, np.ndarray] = {}
        ks = [self.n_groups] if self.n_groups is not None else range(2, n)
        for k in ks:
            labels_by_k[k] = self._kmeans(x, k)
            if 2 <= k < n:
                self.scores_[k] = self._score(x, labels_by_k[k])

        if self.n_groups is not None:
            k, self.decision_ = self.n_groups, "given"
        else:
            off_diagonal = self.separation_[~torch.eye(n, dtype=torch.bool)]
            if n == 1 or off_diagonal.max() < self.separation:
                k, self.decision_ = 1, "not separated"
            elif off_diagonal.min() > self.separation:
                k, self.decision_ = n, "all separated"
            else:
                pick = max if self.criterion == "silhouette" else min
                k, self.decision_ = pick(self.scores_, key=self.scores_.get), self.criterion
            labels_by_k.setdefault(k, self._kmeans(x, k))

        self.labels_ = canonical_labels(labels_by_k[k])
        self.n_groups_ = int(self.labels_.max()) + 1
        self.cluster_centers_ = torch.stack(
            [torch.from_numpy(x[self.labels_.numpy() == g].mean(0)) for g in range(self.n_groups_)]
        ).float()
        return self

    def fit_predict(self, embeddings: ArrayLike, scales: ArrayLike | None = None) -> torch.Tensor:
        """Clusters the agents and returns :attr:`labels_`.

        Examples:
            >>> AgentClustering(n_groups=2, random_state=0).fit_predict([[0.0], [9.0], [0.1]])
            tensor([0, 1, 0])
        """
        return self.fit(embeddings, scales).labels_
