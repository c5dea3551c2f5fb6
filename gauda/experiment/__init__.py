"""The paper's comparison (Tables 1-4, Figures 6 and 7): schemes x classic augmentation x seeds."""
