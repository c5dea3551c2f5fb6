"""Uncertainty of Bayesian segmenters: the mean prediction (Eq. 7) and class-wise uncertainty (Eq. 8)."""

from gauda.uncertainty.classwise import ClasswiseUncertainty, classwise_uncertainty, mean_prediction

__all__ = ["ClasswiseUncertainty", "classwise_uncertainty", "mean_prediction"]
