"""The lecture notebooks and the assignments, shipped inside vae_numpy as ``vae_numpy._notebooks``.

This folder is package data (see ``package_dir`` in setup.cfg); it holds no code. Read it with
:mod:`vae_numpy.resources`, or copy it out with ``vae-numpy notebooks DIR``.
"""
