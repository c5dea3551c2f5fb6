"""The data stage: paired (image, mask) datasets, splits, resizing, augmentation and caching."""
