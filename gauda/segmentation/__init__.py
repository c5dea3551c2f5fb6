"""Bayesian segmentation (UNet ensemble, PHiSeg): one interface of posterior samples, training, prediction.

The training loop (``gauda.segmentation.trainer``) and prediction over a split
(``gauda.segmentation.evaluate``) are imported from their modules.
"""

from gauda.segmentation.bayesian import BayesianSegmenter, build_segmenter, predict
from gauda.segmentation.config import SEGMENTATION_PRESETS, SegmentationConfig
from gauda.segmentation.ensemble import UNetEnsemble
from gauda.segmentation.phiseg import PHiSeg
from gauda.segmentation.unet import UNet

__all__ = [
    "SEGMENTATION_PRESETS",
    "BayesianSegmenter",
    "PHiSeg",
    "SegmentationConfig",
    "UNet",
    "UNetEnsemble",
    "build_segmenter",
    "predict",
]
