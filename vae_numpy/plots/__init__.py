"""The lecture's pictures: loss curves, reconstructions, latent codes, the manifold, KL surfaces.

Every function returns a :class:`matplotlib.figure.Figure` built with matplotlib's
object-oriented API (``Figure`` / ``fig.subplots``), never pyplot: nothing is registered with a
global figure manager, so the functions are safe in tests, scripts and servers, and nothing needs
closing. A returned figure shows itself in a notebook (it has a ``_repr_png_``), and every
function takes ``path=``: when given, the figure is also written there as a PNG, atomically
(temporary file in the same folder, fsync, ``os.replace``).

This package is the only part of vae_numpy that imports matplotlib; the models and the
training loop never do. Its modules hold one kind of figure each: :mod:`~vae_numpy.plots.training`
(training curves, a classifier's accuracy), :mod:`~vae_numpy.plots.images` (reconstructions,
image grids, the manifold, interpolation), :mod:`~vae_numpy.plots.latent` (latent codes,
posteriors), :mod:`~vae_numpy.plots.kl` (KL pictures) and :mod:`~vae_numpy.plots.classifier`
(the confusion matrix); :mod:`~vae_numpy.plots.figure` holds what they share
(the figure class and :func:`save_figure`). Every public name is importable from here.

=================================  ================================================  ====
function                           picture                                           part
=================================  ================================================  ====
:func:`plot_history`               training curves of one run                        3
:func:`plot_histories`             one curve per run (optimisers, beta values)       3
:func:`plot_accuracy`              a classifier's accuracy after each epoch          M2
:func:`plot_confusion_matrix`      true class against predicted class, counts        M2
:func:`plot_reconstructions`       originals over reconstructions                    2
:func:`plot_image_grid`            a grid of images (e.g. samples from the prior)    5
:func:`plot_latent_scatter`        codes coloured by label (PCA above 2-D)           1
:func:`plot_latent_comparison`     autoencoder and VAE codes side by side            1
:func:`plot_manifold`              the decoded 2-D latent plane                      5
:func:`plot_interpolation`         decoding along a line between two codes           5
:func:`plot_kl_per_dimension`      KL of each latent unit, active units              3
:func:`plot_kl_surface`            KL(N(mu, sigma^2) || N(0, 1)), its asymmetry      4
:func:`plot_posterior_comparison`  true posterior vs the recognition model           3
=================================  ================================================  ====

The last column is the part of the lecture the picture belongs to (1 common vs variational
autoencoders, 2 low-dimensional representation, 3 the latent distribution, 4 KL divergence for
normals, 5 generating new samples); M2 marks the semi-supervised model beyond the lecture
(learning from a few labels), whose classifier q(y|x) the two M2 figures show.

Images are drawn as one mosaic per axes (tiles separated by a one-pixel white gap) with the
``gray`` colour map on the range [0, 1] (widened only when the data leave it), so that
brightness means the same in every figure.

References
----------
Kingma, D. P. & Welling, M. (2013). Auto-Encoding Variational Bayes. arXiv:1312.6114.
(Fig. 4: the learned data manifold on a grid spaced by the inverse normal CDF.)
Burda, Y., Grosse, R. & Salakhutdinov, R. (2016). Importance Weighted Autoencoders. ICLR.
(Active units: a latent dimension counts as active above a 0.01 threshold.)
Kingma, D. P., Rezende, D. J., Mohamed, S. & Welling, M. (2014). Semi-Supervised Learning with
Deep Generative Models. NeurIPS. (M2, whose classifier the M2 figures show.)
"""

from .classifier import NORMALIZE_CHOICES, confusion_matrix, plot_confusion_matrix
from .explorer import (
    EXPLORER_MAX_POINTS,
    DecoderSpec,
    LatentPlane,
    decoder_spec,
    explorer_html,
    latent_plane,
    write_explorer,
)
from .figure import SAVE_DPI, save_figure
from .images import (
    manifold_grid,
    plot_image_grid,
    plot_interpolation,
    plot_manifold,
    plot_reconstructions,
)
from .kl import ACTIVE_UNIT_THRESHOLD, plot_kl_per_dimension, plot_kl_surface
from .latent import (
    highest_density_levels,
    pca_project,
    plot_latent_comparison,
    plot_latent_scatter,
    plot_posterior_comparison,
)
from .training import plot_accuracy, plot_histories, plot_history

__all__ = [
    "SAVE_DPI",
    "ACTIVE_UNIT_THRESHOLD",
    "save_figure",
    "manifold_grid",
    "pca_project",
    "highest_density_levels",
    "plot_history",
    "plot_histories",
    "plot_accuracy",
    "plot_confusion_matrix",
    "confusion_matrix",
    "NORMALIZE_CHOICES",
    "plot_reconstructions",
    "plot_image_grid",
    "plot_latent_scatter",
    "plot_latent_comparison",
    "plot_manifold",
    "plot_interpolation",
    "plot_kl_per_dimension",
    "plot_kl_surface",
    "plot_posterior_comparison",
    "write_explorer",
    "explorer_html",
    "decoder_spec",
    "latent_plane",
    "DecoderSpec",
    "LatentPlane",
    "EXPLORER_MAX_POINTS",
]
