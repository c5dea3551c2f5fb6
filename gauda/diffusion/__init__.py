"""Joint latent diffusion of (image, mask) pairs (paper Sec. 3.1, Eq. 5): schedule, condition, denoiser,
latent cache and training loop."""
