"""vae_numpy: variational autoencoders from scratch in NumPy, for teaching."""

__version__ = "0.1.0"
