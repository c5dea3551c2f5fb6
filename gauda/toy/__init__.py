"""The 2D simulation of Supplementary 8.2 and 8.3."""
