"""Which rows make up each training step: the batch samplers of :func:`vae_numpy.train.fit`.

A sampler is a small object with two methods (:class:`BatchSampler`): ``batches`` yields one
epoch's minibatches, ``steps_per_epoch`` says how many. :class:`ShuffledMinibatches` is the
default (shuffle the rows, cut them into slices: :func:`shuffled_batches`);
:class:`BalancedBatches` is M2's, with as many labelled rows as unlabelled ones in every step.

Not to be confused with :func:`vae_numpy.data.minibatches`, which yields shuffled *index*
arrays for a loop written by hand (``for idx in minibatches(X, 128, rng): ... X[idx]``); the
samplers yield the rows themselves, as tuples ``(x,)`` or ``(x, y)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from .protocol import Batch

__all__ = ["BatchSampler", "ShuffledMinibatches", "BalancedBatches", "shuffled_batches"]


def shuffled_batches(data: Batch, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
    """Shuffle the rows of ``data`` with ``rng`` and yield them ``batch_size`` at a time.

    ``data`` is a batch tuple ``(x,)`` or ``(x, y)``; every yielded minibatch is a tuple of the
    same arrays' rows. The last minibatch may be smaller.
    """
    n = len(data[0])
    order = rng.permutation(n)
    for lo in range(0, n, batch_size):
        rows = order[lo : lo + batch_size]
        yield tuple(a[rows] for a in data)


@runtime_checkable
class BatchSampler(Protocol):
    """Which rows make up each step's minibatch: what :func:`~vae_numpy.train.fit` and
    :func:`~vae_numpy.train.train_epoch` ask.

    A sampler is a small object with two methods; :class:`ShuffledMinibatches` is the default
    and :class:`BalancedBatches` (M2's) an example of another. It may draw rows more
    than once or leave some out; the history averages over the rows the steps actually saw.
    """

    def batches(self, data: Batch, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """Yield the minibatches of one epoch, each a tuple of rows of the arrays of ``data``.

        ``data`` is the checked training set; ``rng`` is the run's generator (all randomness
        from it, so that a seed gives the same run).
        """
        ...

    def steps_per_epoch(self, data: Batch, batch_size: int) -> int:
        """How many minibatches :meth:`batches` yields for ``data`` (progress, KL warm-up)."""
        ...


class ShuffledMinibatches:
    """The default sampler: shuffle the rows, cut them into ``batch_size`` slices (:func:`shuffled_batches`).

    Every row is seen once per epoch; the last minibatch may be smaller.
    """

    def batches(self, data: Batch, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """The minibatches of :func:`shuffled_batches`."""
        return shuffled_batches(data, batch_size, rng)

    def steps_per_epoch(self, data: Batch, batch_size: int) -> int:
        """``ceil(n / batch_size)``."""
        return -(-len(data[0]) // batch_size)

    def __repr__(self) -> str:
        return "ShuffledMinibatches()"


class BalancedBatches:
    """M2's minibatches: ``batch_size`` unlabelled rows and as many labelled ones per step.

    A :class:`BatchSampler` for data ``(X, y)`` with ``y = -1`` on unlabelled
    rows. An epoch is one pass over the unlabelled rows in shuffled slices of ``batch_size``;
    each slice is followed by as many labelled rows, taken from the labelled rows in
    successive shuffled passes (so each labelled row is used equally often, and more than
    once per epoch when there are few). With the loss a mean over the batch, the unlabelled
    and the labelled rows each get half of every step's weight whatever their numbers, as in
    CS236's homework, where each step takes 97 unlabelled images and the 100 labelled ones.
    """

    def batches(
        self, data: tuple[np.ndarray, ...], batch_size: int, rng: np.random.Generator
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield one epoch's minibatches ``(x, y)``: unlabelled rows first, then labelled ones."""
        labelled, unlabelled = self._split(data)
        order = rng.permutation(unlabelled)
        stream, used = rng.permutation(labelled), 0  # labelled rows, reshuffled when used up
        for lo in range(0, len(order), batch_size):
            rows_u = order[lo : lo + batch_size]
            rows_l: list[np.ndarray] = []
            need = len(rows_u)  # as many labelled rows as unlabelled ones
            while need > 0:
                if used == len(stream):
                    stream, used = rng.permutation(labelled), 0
                take = min(need, len(stream) - used)
                rows_l.append(stream[used : used + take])
                used, need = used + take, need - take
            rows = np.concatenate([rows_u, *rows_l])
            yield tuple(a[rows] for a in data)

    def steps_per_epoch(self, data: tuple[np.ndarray, ...], batch_size: int) -> int:
        """``ceil(n_unlabelled / batch_size)``."""
        return -(-len(self._split(data)[1]) // batch_size)

    @staticmethod
    def _split(data: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        if len(data) != 2:
            raise TypeError("BalancedBatches samples (X, y) with y = -1 on unlabelled rows")
        labelled, unlabelled = np.flatnonzero(data[1] >= 0), np.flatnonzero(data[1] < 0)
        if len(labelled) == 0 or len(unlabelled) == 0:
            raise ValueError(
                f"BalancedBatches needs labelled and unlabelled (-1) rows, got {len(labelled)}"
                f" labelled and {len(unlabelled)} unlabelled; train on rows of one kind with"
                " sampler=vae_numpy.samplers.ShuffledMinibatches()"
            )
        return labelled, unlabelled

    def __repr__(self) -> str:
        return "BalancedBatches()"
