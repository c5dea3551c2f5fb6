"""Pure metrics, functions of tensors that any stage may use: segmentation (per-class IoU, Dice, AP, the
paper's table) and generative (FID, KID on given features)."""
