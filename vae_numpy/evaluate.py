"""How good is a trained VAE? Three estimates of ln p(x), from a bound to the exact value.

Part 3 of the lecture says that p(x) = ∫ p(x|z) p(z) dz is intractable and that a VAE maximises
a lower bound instead. Once a model is trained, this module measures how far below ln p(x) that
bound lies, with three quantities, all in nats per example (higher is better):

* :func:`elbo` — the evidence lower bound the VAE was trained on (Kingma & Welling 2013),

      ELBO(x) = E_q(z|x)[ln p(x|z)] - KL(q(z|x) || p(z)),

  its first term averaged over reparameterised draws z ~ q(z|x), its KL term in closed form
  (:func:`vae_numpy.kl.kl_standard_normal`). It equals ln p(x) - KL(q(z|x) || p(z|x)): the gap
  is how far the recognition Gaussian is from the true posterior.
* :func:`iwae_log_likelihood` — the importance-weighted bound of Burda, Grosse &
  Salakhutdinov (2015) with ``k`` samples z_j ~ q(z|x),

      IWAE_k(x) = ln (1/k) sum_j p(x, z_j) / q(z_j|x),   p(x, z) = p(x|z) p(z).

  Its expectation rises with k: E[IWAE_1] = ELBO <= E[IWAE_k] <= E[IWAE_m] <= ln p(x) for
  k <= m, and IWAE_k -> ln p(x) as k -> infinity. With k = 5000 it is the usual "test
  log-likelihood" of VAE papers.
* :func:`exact_log_likelihood` — for a two-dimensional latent space only, ln p(x) itself,
  by quadrature of p(x|z) p(z) on a square grid (see its Notes for the error bounds).
  :func:`exact_posterior` returns the normalised posterior p(z|x) on that grid, to compare
  with the recognition Gaussian q(z|x) (notebook 02).

So, for every x, ``ELBO <= E[IWAE_k] <= ln p(x)``; the tests check each inequality and that
IWAE_5000 meets the quadrature within 0.1 nat on a trained 2-D model.

Every model of the VAE family is measured the same way, with its own prior and conditioning,
through the model protocol (:class:`vae_numpy.protocol.VariationalModel`: each model gives its
ELBO and its log importance weights): the VAE with its N(0, I) prior; the conditional VAE
given y (``elbo(model, X, y)``: bounds on ln p(x|y)); the mixture-prior VAE with its learned
mixture (and its 2-D quadrature); M2 with the label summed out under q(y|x) (``elbo(model,
X)``, or ``y`` with -1 for unlabelled rows). The evaluation never asks which class a model is.

Precision. The networks run in the model's dtype (float32 by default), as in training; the
sums over samples and the log-sum-exp over importance weights and over grid cells are
accumulated in float64 (a deliberate upcast, outside the training path: adding up thousands of
terms of tens of nats each is where float32 would lose digits). All three estimates are
returned in float64.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
Burda, Y., Grosse, R. & Salakhutdinov, R. (2015). Importance Weighted Autoencoders.
arXiv:1509.00519 (ICLR 2016).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from ._validation import as_array, check_positive_float, check_positive_int
from .functional import LOG_2PI, importance_weighted_bound, log_sum_exp, softplus
from .protocol import DecoderModel, VariationalModel
from .threads import ThreadPolicy

__all__ = [
    "elbo",
    "iwae_log_likelihood",
    "exact_log_likelihood",
    "exact_posterior",
    "DEFAULT_GRID",
    "DEFAULT_LIMIT",
]

#: Points per axis of the quadrature grid of :func:`exact_log_likelihood` (spacing 2 L / grid).
DEFAULT_GRID = 600
#: Half-width L of the square [-L, L]^2 integrated over; the prior mass outside is 2.4e-15.
DEFAULT_LIMIT = 8.0
#: Grid points decoded at once by the quadrature: bounds its memory to a (4096, input_dim) block.
_GRID_CHUNK = 4096


def _require_variational(model: Any, what: str) -> VariationalModel:
    if not isinstance(model, VariationalModel):  # a capability, not a class
        raise TypeError(
            f"{what} is defined for a model of the VAE family (one with a recognition"
            f" distribution q(z|x) and a likelihood p(x|z)), got {type(model).__name__}; an"
            " Autoencoder has a deterministic code and no likelihood - compare autoencoders by"
            " reconstruction error instead"
        )
    return model


def _checked_data(model: VariationalModel, X: Any, y: Any) -> tuple[np.ndarray, ...]:
    """``model.check_data(X)`` or ``(X, y)``; a conditional model without ``y`` is refused."""
    if y is None and model.conditional:
        raise TypeError(
            f"{type(model).__name__} is a model of p(x|y): pass the labels as well,"
            " e.g. elbo(model, X, y); its bounds are on ln p(x|y)"
        )
    return model.check_data(X) if y is None else model.check_data(X, y)


#: Decoder rows per step of :func:`elbo` (samples x examples): bounds its memory.
_ROWS = 4096


# --- the evidence lower bound ---------------------------------------------------------------


def elbo(
    model: VariationalModel,
    X: Any,
    y: Any = None,
    *,
    n_samples: int = 1,
    rng: Any = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Per-example evidence lower bound, E_q[ln p(x|z)] - KL(q(z|x) || p(z)).

    Parameters
    ----------
    model : VAE, ConditionalVAE, GaussianMixtureVAE or SemiSupervisedVAE
        A trained model of the VAE family (an Autoencoder raises TypeError: it has no q(z|x)).
    X : ndarray of shape (n, input_dim)
    y : ndarray of shape (n,) of int, optional
        Labels: required by a conditional VAE (the bound is then on ln p(x|y)); for M2,
        ``-1`` marks an unlabelled row (y summed out), a label gives the bound on ln p(x, y);
        without ``y`` every M2 row is unlabelled.
    n_samples : int
        Reparameterised draws z ~ q(z|x) per example over which the bound is averaged.
    rng : numpy.random.Generator, int or None
        Draws the noise.
    batch_size : int
        Examples encoded at once.

    Returns
    -------
    ndarray of shape (n,), float64
        Nats per example (higher is better).

    Notes
    -----
    Each model computes its own bound (``model.elbo_for_batch``, the model protocol's
    :class:`~vae_numpy.protocol.VariationalModel`) with its own prior: the KL term is exact for
    the N(0, I) prior of the VAE and the conditional VAE (:func:`vae_numpy.kl.kl_standard_normal`,
    only the reconstruction term is estimated), and a Monte Carlo estimate ln q(z|x) - ln p(z)
    for the mixture prior of the GMVAE; M2 sums the label out under q(y|x). The networks run
    in the model's dtype, on up to 4096 (sample, example) pairs at a time; the average over
    samples is accumulated in float64.

    ``beta`` is *not* applied: the bound on ln p(x) has beta = 1 whatever weight the model was
    trained with. With ``n_samples=1`` and the same ``rng`` and
    ``batch_size``, the mean of the result is ``model.score(X)`` of a beta = 1 model.
    """
    model = _require_variational(model, "the ELBO")
    data = _checked_data(model, X, y)
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    gen = np.random.default_rng(rng)
    n = len(data[0])
    out = np.empty(n, dtype=np.float64)
    with ThreadPolicy() as policy:  # BLAS threads chosen by timing the chunks
        for start in range(0, n, batch_size):
            batch = tuple(a[start : start + batch_size] for a in data)
            b = len(batch[0])
            total = np.zeros(b, dtype=np.float64)  # sum over chunks of c * (mean bound)
            per_chunk = max(1, _ROWS // b)
            for done in range(0, n_samples, per_chunk):
                c = min(per_chunk, n_samples - done)
                with policy.step():
                    total += c * model.elbo_for_batch(batch, n_samples=c, rng=gen)
            out[start : start + b] = total / n_samples
    return out


# --- the importance-weighted bound ------------------------------------------------------------


def iwae_log_likelihood(
    model: VariationalModel,
    X: Any,
    y: Any = None,
    *,
    k: int = 5000,
    batch_size: int = 32,
    chunk_size: int = 128,
    rng: Any = None,
) -> np.ndarray:
    """Importance-weighted estimate of ln p(x) with ``k`` samples (Burda et al. 2015).

    Parameters
    ----------
    model : VAE, ConditionalVAE, GaussianMixtureVAE or SemiSupervisedVAE
    X : ndarray of shape (n, input_dim)
    y : ndarray of shape (n,) of int, optional
        Labels, as for :func:`elbo`: required by a conditional VAE (a bound on ln p(x|y)); for
        M2 optional (``-1`` or absent: the label is drawn from q(y|x) with each z, a bound on
        ln p(x)).
    k : int
        Importance samples z_j ~ q(z|x) per example; the bound tightens as k grows.
    batch_size : int
        Examples processed together.
    chunk_size : int
        Samples per example decoded at once: the largest arrays are
        (batch_size * chunk_size, max(input_dim, hidden)) in the model's dtype.
    rng : numpy.random.Generator, int or None
        Draws the samples. For a given ``rng`` and ``batch_size`` the draws, and hence the
        result, do not depend on ``chunk_size``.

    Returns
    -------
    ndarray of shape (n,), float64
        ``ln (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x)`` in nats per example.

    Notes
    -----
    Each model gives its log-weights ``ln w_j = ln p(x, z_j) - ln q(z_j|x)`` with its own prior
    and conditioning (``model.log_importance_weights``), ``chunk_size`` samples at a time, in
    float64. The k log-weights of a batch (k x batch_size numbers, small) are then reduced by
    :func:`vae_numpy.functional.importance_weighted_bound`, the log-mean-exp that ``VAE(k)``
    trains on: ``ln (1/k) sum_j w_j`` without overflow. The estimate is biased low for finite
    k (by Jensen's inequality), its expectation increasing in k towards ln p(x).
    """
    model = _require_variational(model, "the importance-weighted bound")
    data = _checked_data(model, X, y)
    k = check_positive_int(k, "k")
    batch_size = check_positive_int(batch_size, "batch_size")
    chunk_size = min(check_positive_int(chunk_size, "chunk_size"), k)
    gen = np.random.default_rng(rng)
    n = len(data[0])
    result = np.empty(n, dtype=np.float64)
    with ThreadPolicy() as policy:  # BLAS threads chosen by timing the chunks
        for start in range(0, n, batch_size):
            batch = tuple(a[start : start + batch_size] for a in data)
            log_w = np.empty((k, len(batch[0])), dtype=np.float64)  # (k, b)
            for done in range(0, k, chunk_size):
                c = min(chunk_size, k - done)
                with policy.step():
                    log_w[done : done + c] = model.log_importance_weights(batch, c, rng=gen)
            result[start : start + len(batch[0])] = importance_weighted_bound(log_w)
    return result


# --- exact ln p(x) by quadrature (2-D latent space) -------------------------------------------


def _grid_axis(grid: int, limit: float) -> tuple[np.ndarray, float]:
    """Midpoints of ``grid`` equal cells covering [-limit, limit], and the spacing h."""
    h = 2.0 * limit / grid
    return -limit + h * (np.arange(grid) + 0.5), h


def _pairwise_log_likelihood(model: DecoderModel, X: np.ndarray, out: np.ndarray) -> np.ndarray:
    """ln p(x_i | z_g) for every pair of rows, float64 of shape (len(X), len(out)).

    ``out`` is the decoder output (logits or Gaussian means) at the grid points z_g. The sum over
    features becomes one matrix product, so that no (batch, grid, input_dim) array is formed:

    * Bernoulli: ``ln p(x|z) = x . l - sum_j softplus(l_j)`` (``l`` the logits);
    * Gaussian:  ``ln p(x|z) = -1/2 [sum_j (ln 2 pi + v_j + w_j x_j^2) - 2 (w x) . m + w . m^2]``,
      ``v = decoder log-variance``, ``w = exp(-v)``, ``m`` the mean.

    Evaluated in float64: the Gaussian expansion cancels large terms. The tests compare it with
    the model's own ``log_likelihood`` on paired rows.
    """
    x = X.astype(np.float64)  # (b, input_dim)
    o = out.astype(np.float64)  # (g, input_dim)
    if model.likelihood == "bernoulli":
        return x @ o.T - np.sum(softplus(o), axis=1)  # (b, g)
    # a Gaussian decoder's log-variance (a property that Bernoulli decoders lack)
    v = np.asarray(cast(Any, model).decoder_log_var, dtype=np.float64)  # (input_dim,)
    w = np.exp(-v)
    per_x = np.sum(LOG_2PI + v + w * x * x, axis=1)  # (b,)
    per_z = (o * o) @ w  # (g,)
    return -0.5 * (per_x[:, None] - 2.0 * (x * w) @ o.T + per_z[None, :])


def _log_joint_blocks(
    model: DecoderModel, X: np.ndarray, grid: int, limit: float, batch_size: int
) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Yield (grid slice, example slice, ln p(x_i|z_g) + ln p(z_g)) blocks over the whole grid.

    Grid point ``g`` is ``(axis[g % grid], axis[g // grid])``: z1 varies fastest, so a flat
    array of grid values reshapes to (grid, grid) with rows indexed by z2 (``np.meshgrid``).
    Each block of grid points is decoded once and reused for every batch of examples.
    """
    axis, _ = _grid_axis(grid, limit)
    z1, z2 = np.meshgrid(axis, axis)  # (grid, grid), rows: z2
    z = np.stack([z1.ravel(), z2.ravel()], axis=1)  # (grid^2, 2) float64
    log_prior = model.prior_log_density(z).astype(np.float64)  # (grid^2,) ln p(z)
    for g0 in range(0, len(z), _GRID_CHUNK):
        gs = slice(g0, min(g0 + _GRID_CHUNK, len(z)))
        out = model.decoder_output(z[gs].astype(model.dtype))  # (g, input_dim)
        for i0 in range(0, len(X), batch_size):
            xs = slice(i0, min(i0 + batch_size, len(X)))
            yield gs, xs, _pairwise_log_likelihood(model, X[xs], out) + log_prior[gs]


def _check_grid_model(model: Any, what: str) -> DecoderModel:
    model = _require_variational(model, what)
    if model.conditional or not isinstance(model, DecoderModel):
        raise TypeError(
            f"{what} integrates p(x|z) p(z) for a model of x alone with a decoder and a prior"
            f" (VAE, GaussianMixtureVAE); {type(model).__name__} is not one: use"
            " iwae_log_likelihood(model, X, ...) instead"
        )
    if model.latent_dim != 2:
        raise ValueError(
            f"{what} integrates over a 2-D grid, but this model has latent_dim="
            f"{model.latent_dim}; use iwae_log_likelihood(model, X, k=5000) in higher dimensions"
        )
    return model


def exact_log_likelihood(
    model: DecoderModel,
    X: Any,
    *,
    grid: int = DEFAULT_GRID,
    limit: float = DEFAULT_LIMIT,
    batch_size: int = 256,
) -> np.ndarray:
    """ln p(x) = ln ∫∫ p(x|z) p(z) dz by the midpoint rule, for a VAE with a 2-D latent space.

    Parameters
    ----------
    model : VAE
        ``latent_dim`` must be 2 (ValueError otherwise: use :func:`iwae_log_likelihood`).
    X : ndarray of shape (n, input_dim)
    grid : int
        Points per axis: the square is cut into grid x grid cells of side h = 2 limit / grid.
    limit : float
        Half-width L of the square [-L, L]^2 that is integrated over.
    batch_size : int
        Examples scored against each block of grid points.

    Returns
    -------
    ndarray of shape (n,), float64
        Nats per example.

    Notes
    -----
    The integral is replaced by ``h^2 sum_g p(x|z_g) p(z_g)`` over the cell midpoints z_g and
    evaluated in log space, ``ln p(x) ~ logsumexp_g [ln p(x|z_g) + ln p(z_g)] + 2 ln h``, so
    nothing underflows although p(x) is about e^-30 for 8x8 digits. The decoder is run once per
    grid point (in the model's dtype) and shared by all examples; the likelihoods and the sum are
    formed in float64.

    Two errors remain. On the 2-D digits model of the tests (trained 30 epochs, posterior
    standard deviations 0.4-0.7), the defaults (L = 8, 600 points per axis, h = 0.027) leave
    both far below 0.01 nat: on its 297 test images, refining to 1000 points per axis changes
    no result by more than 3e-6 nat, and widening to L = 10 at the same h by more than 1e-13.

    * Truncation. The prior mass outside the square is ``1 - (1 - 2 Phi(-L))^2`` (Phi the
      standard normal CDF): 1.1e-6 for L = 5, 3.9e-9 for L = 6, 2.4e-15 for L = 8. With a
      Bernoulli decoder p(x|z) <= 1, so this bounds the part of p(x) that is left out in
      absolute terms. In nats the error is ``-ln(1 - m)``, where m is the *posterior* mass
      outside the square (at most the prior mass times max_z p(x|z) / p(x)); it is negligible
      when p(z|x) lives well inside the square, which the KL term of training encourages.
      Check it by increasing ``limit`` at a fixed h: the result must not move (the truncated
      integral can only grow with L).
    * Discretisation. On each cell the midpoint rule errs by ``h^4 / 24 * Laplacian f`` plus
      higher orders, so for an integrand f = p(x|z) p(z) with bounded second derivatives the
      absolute error is at most ``(2 L)^2 h^2 max|Laplacian f| / 24``, O(h^2); divided by
      p(x) it is the error in nats. For a smooth peak of width sigma the convergence is much
      faster (exponential in (sigma / h)^2, as for a Gaussian); a ReLU decoder's kinks bring
      back the O(h^2) term, with a small constant. Keep h well below the smallest posterior
      standard deviation (the encoder's ``exp(log_var / 2)`` is a good guide) and check by
      refining ``grid``: successive results must agree.

    Cost: grid^2 decoder evaluations (once, shared by all examples) and an
    (n, input_dim) x (input_dim, grid^2) product in float64; for the 297 digits test images
    and the defaults, about three seconds on two cores.
    """
    model = _check_grid_model(model, "exact_log_likelihood")
    (X,) = model.check_data(X)
    grid = check_positive_int(grid, "grid")
    limit = check_positive_float(limit, "limit")
    batch_size = check_positive_int(batch_size, "batch_size")
    _, h = _grid_axis(grid, limit)
    total = np.full(len(X), -np.inf)  # running ln sum_g p(x|z_g) p(z_g), float64
    with ThreadPolicy() as policy:  # BLAS threads chosen by timing the blocks
        blocks = _log_joint_blocks(model, X, grid, limit, batch_size)
        policy.start_laps()
        for _, xs, log_joint in blocks:
            total[xs] = np.logaddexp(total[xs], log_sum_exp(log_joint, axis=1))
            policy.lap()
    return total + 2.0 * math.log(h)


def exact_posterior(
    model: DecoderModel, x: Any, *, grid: int = 200, limit: float = 4.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true posterior p(z|x) = p(x|z) p(z) / p(x) of one example on a 2-D grid.

    Parameters
    ----------
    model : VAE
        ``latent_dim`` must be 2.
    x : ndarray of shape (input_dim,) or (1, input_dim)
        One example.
    grid : int
        Points per axis.
    limit : float
        The grid covers [-limit, limit]^2.

    Returns
    -------
    z1, z2 : ndarray of shape (grid, grid), float64
        Cell midpoints as from ``np.meshgrid(axis, axis)``: ``z1`` varies along columns,
        ``z2`` along rows.
    density : ndarray of shape (grid, grid), float64
        p(z|x) at ``(z1[i, j], z2[i, j])``, normalised so that ``density.sum() * h**2 == 1``
        with ``h = 2 * limit / grid``. Ready for ``plt.contour(z1, z2, density)``; compare it
        with the recognition density ``N(z; mu, diag exp(log_var))`` from ``model.encode(x)``.

    Notes
    -----
    The normaliser p(x) is the quadrature of :func:`exact_log_likelihood` on the same grid, so
    the posterior mass outside [-limit, limit]^2 is ignored: pick ``limit`` so that the density
    vanishes at the border.
    """
    model = _check_grid_model(model, "exact_posterior")
    arr = as_array(x, "x")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    (arr,) = model.check_data(arr, name="x")
    if len(arr) != 1:
        raise ValueError(
            f"exact_posterior takes one example, got {len(arr)}; pass x[i] or loop over rows"
        )
    grid = check_positive_int(grid, "grid")
    limit = check_positive_float(limit, "limit")
    axis, h = _grid_axis(grid, limit)
    log_joint = np.empty(grid * grid)
    for gs, _, block in _log_joint_blocks(model, arr, grid, limit, 1):
        log_joint[gs] = block[0]
    density = np.exp(log_joint - log_sum_exp(log_joint, axis=0)) / h**2
    z1, z2 = np.meshgrid(axis, axis)
    return z1, z2, density.reshape(grid, grid)
