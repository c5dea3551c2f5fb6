"""Generation: classes -> sampler with classifier-free guidance -> latents -> decoded (image, mask) pairs."""
