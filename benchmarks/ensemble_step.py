"""Time per training step of K ensemble members trained together (vectorised) against one after another.

    .venv/bin/python benchmarks/ensemble_step.py                       # the tiny preset's sizes
    .venv/bin/python benchmarks/ensemble_step.py --members 10 --channels 8 16 32 32 --batch-size 4

Both sides train the same K UNets (same initial weights, same batches, Adam): "together" is one
``UNetEnsemble.training_loss`` step (vmap over stacked weights: grouped convolutions), "one after another"
is K single ``UNet`` steps with their own optimisers. The two are timed alternately in one run, so that
a change of load on the shared machine hits both; medians are reported, with the load average.
The same is done for prediction (the K posterior samples of a batch).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import torch

from gauda.segmentation.ensemble import UNetEnsemble
from gauda.segmentation.unet import masked_cross_entropy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 48, 64])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k, b = args.members, args.batch_size

    ensemble = UNetEnsemble(k, 3, args.classes, args.channels, seed=0)
    singles = [copy.deepcopy(member) for member in ensemble.members]
    optimiser = torch.optim.Adam(ensemble.parameters(), lr=1e-3)
    optimisers = [torch.optim.Adam(single.parameters(), lr=1e-3) for single in singles]
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(k, b, 3, args.size, args.size, generator=generator)  # one batch per member
    masks = torch.randint(0, args.classes, (k, b, args.size, args.size), generator=generator)

    def together() -> None:
        optimiser.zero_grad(set_to_none=True)
        ensemble.training_loss(images, masks)[0].backward()
        optimiser.step()

    def one_after_another() -> None:
        for member, (single, single_optimiser) in enumerate(zip(singles, optimisers, strict=True)):
            single_optimiser.zero_grad(set_to_none=True)
            masked_cross_entropy(single(images[member])[None], masks[member][None], 255).sum().backward()
            single_optimiser.step()

    @torch.no_grad()
    def predict_together() -> None:
        ensemble.sample_posterior(images[0])

    @torch.no_grad()
    def predict_one_after_another() -> None:
        torch.stack([torch.softmax(single(images[0]), dim=1) for single in singles])

    def timed(pairs: list) -> list[list[float]]:
        times: list[list[float]] = [[] for _ in pairs]
        for repeat in range(args.repeats + 2):  # two warm-up rounds
            for i, function in enumerate(pairs):
                start = time.perf_counter()
                function()
                if repeat >= 2:
                    times[i].append(time.perf_counter() - start)
        return times

    load_before = os.getloadavg()[0]
    train_times = timed([together, one_after_another])
    predict_times = timed([predict_together, predict_one_after_another])
    load_after = os.getloadavg()[0]
    parameters = sum(p.numel() for p in singles[0].parameters())
    print(
        f"K={k} members of {parameters / 1e6:.2f} M parameters, channels {args.channels}, "
        f"batch {b} per member, {args.size} px, {args.threads} threads; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print("\n| median seconds | K together (vmap) | K one after another | ratio (after another / together) |")
    print("| --- | --- | --- | --- |")
    for label, (vectorised, sequential) in (("training step", train_times), ("prediction", predict_times)):
        v, s = statistics.median(vectorised), statistics.median(sequential)
        print(f"| {label} | {v:.3f} | {s:.3f} | {s / v:.2f} |")


if __name__ == "__main__":
    main()
