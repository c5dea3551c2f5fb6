"""gauda: uncertainty-guided generative augmentation for surgical segmentation."""

__version__ = "0.1.0"
