"""Image and mask VQ-GANs (paper Sec. 3.1): the latent spaces the diffusion model works in."""
