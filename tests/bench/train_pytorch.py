#!/usr/bin/python3
"""The seed's training recipe in PyTorch on CIFAR-10 binary files, for the
accuracy-parity comparison with `effnet train` (docs/PERFORMANCE.md).

    /usr/bin/python3 tests/bench/train_pytorch.py --data CIFAR10_BIN_DIR \
        --model efficientnet-b0 --resolution 32 --batch 64 --epochs 3 --threads 2

Seed recipe: Adam(lr 1e-3, weight_decay 1e-4), CrossEntropyLoss, the seed's
torchvision augmentation (Resize, RandomHorizontalFlip, RandomRotation(15),
RandomCrop(S, padding=4), ColorJitter(0.2,0.2,0.2,0.1), Normalize). Prints
the seed's log lines and one JSON line per epoch (also appended to --metrics FILE).

Options beyond the seed (defaults keep the seed's recipe: constant lr):
  --channels-last           model and inputs in torch.channels_last (about 3x faster on CPU)
  --schedule cosine         effnet's [schedule] name=cosine, per optimizer step (src/train/step.c lr_at):
                            lr*(s+1)/warmup for s < warmup, then min_lr + (lr-min_lr)*(1+cos(pi*t))/2,
                            t = (s-warmup)/(total-warmup), total = steps per epoch * epochs
  --warmup-steps N, --min-lr X, --lr X, --weight-decay X
  --metrics FILE            append each epoch's JSON line to FILE
  --checkpoint FILE         save model, optimizer and RNG state after every epoch; if FILE exists,
                            continue from it (same sample order and augmentation as an uninterrupted run)
  --train-subset N, --test-subset N, --max-steps N   small runs for smoke tests"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import effnet_ref  # noqa: E402


def load_bin(path):
    raw = np.fromfile(path, np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), raw[:, 0].astype(np.int64)


class Cifar(torch.utils.data.Dataset):
    def __init__(self, x, y, tf):
        self.x, self.y, self.tf = x, y, tf

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.tf(Image.fromarray(self.x[i])), self.y[i]


def lr_at(a, step, total):
    """effnet's lr_at (src/train/step.c): the lr of 0-based optimizer step `step` of `total`."""
    if a.schedule == "constant":
        return a.lr
    if step < a.warmup_steps:
        return a.lr * (step + 1) / a.warmup_steps
    span = total - a.warmup_steps
    t = min((step - a.warmup_steps) / span, 1.0) if span > 0 else 1.0
    return a.min_lr + (a.lr - a.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="efficientnet-b0")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--min-lr", type=float, default=0.0)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--metrics", help="append the per-epoch JSON lines to this file")
    ap.add_argument("--checkpoint", help="save after every epoch; resume from it when it exists")
    ap.add_argument("--train-subset", type=int, default=0, help="use only the first N train images (0: all)")
    ap.add_argument("--test-subset", type=int, default=0, help="evaluate only the first N test images (0: all)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps in total (0: no limit)")
    a = ap.parse_args()
    if a.schedule == "cosine" and a.warmup_steps < 0:
        ap.error("--warmup-steps must be >= 0")
    if a.min_lr > a.lr:
        ap.error("--min-lr exceeds --lr")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    S = a.resolution
    norm = transforms.Normalize(mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
    tf_train = transforms.Compose([transforms.Resize((S, S)), transforms.RandomHorizontalFlip(p=0.5),
                                   transforms.RandomRotation(15), transforms.RandomCrop(S, padding=4),
                                   transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1),
                                   transforms.ToTensor(), norm])
    tf_test = transforms.Compose([transforms.Resize((S, S)), transforms.ToTensor(), norm])
    xs, ys = zip(*[load_bin(os.path.join(a.data, f"data_batch_{k}.bin")) for k in range(1, 6)])
    xtr, ytr = np.concatenate(xs), np.concatenate(ys)
    xte, yte = load_bin(os.path.join(a.data, "test_batch.bin"))
    if a.train_subset > 0:
        xtr, ytr = xtr[:a.train_subset], ytr[:a.train_subset]
    if a.test_subset > 0:
        xte, yte = xte[:a.test_subset], yte[:a.test_subset]
    train = Cifar(xtr, ytr, tf_train)
    test = Cifar(xte, yte, tf_test)
    tl = torch.utils.data.DataLoader(train, batch_size=a.batch, shuffle=True, num_workers=0)
    el = torch.utils.data.DataLoader(test, batch_size=500, shuffle=False, num_workers=0)
    model = effnet_ref.build(a.model, num_classes=10)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    total = len(tl) * a.epochs
    if a.max_steps > 0:
        total = min(total, a.max_steps)
    best, step, first = (0, 0.0), 0, 1
    if a.checkpoint and os.path.exists(a.checkpoint):
        ck = torch.load(a.checkpoint)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["rng"])
        best, step, first = tuple(ck["best"]), ck["step"], ck["epoch"] + 1
        print(f"resume: {a.checkpoint} after epoch {ck['epoch']}, global step {step}", flush=True)
    for epoch in range(first, a.epochs + 1):
        if a.max_steps > 0 and step >= a.max_steps:
            break
        model.train()
        tot, n, t0 = 0.0, 0, time.time()
        for i, (x, y) in enumerate(tl):
            if a.max_steps > 0 and step >= a.max_steps:
                break
            lr = lr_at(a, step, total)
            for g in opt.param_groups:
                g["lr"] = lr
            x = x.contiguous(memory_format=fmt)
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
            step += 1
            tot += loss.item() * x.size(0)
            n += x.size(0)
            if i % 100 == 0:
                print(f"Train Epoch: {epoch} [{i * len(x)}/{len(train)} ({100. * i / len(tl):.0f}%)]\tAVG_Loss: {tot / n:.6f}\tlr {lr:.3g}", flush=True)
        train_s = time.time() - t0
        model.eval()
        correct, tl_sum = 0, 0.0
        with torch.no_grad():
            for x, y in el:
                out = model(x.contiguous(memory_format=fmt))
                tl_sum += crit(out, y).item() * x.size(0)
                correct += (out.argmax(1) == y).sum().item()
        acc = 100.0 * correct / len(test)
        print(f"\nTest set: Average loss: {tl_sum / len(test):.4f}, Accuracy: {correct}/{len(test)} ({acc:.2f}%)\n", flush=True)
        if acc > best[1]:
            best = (epoch, acc)
        line = json.dumps({"framework": "pytorch", "epoch": epoch, "accuracy": acc, "test_loss": tl_sum / len(test),
                           "train_loss": tot / max(n, 1), "train_img_per_s": n / train_s, "train_s": train_s,
                           "epoch_s": time.time() - t0, "step": step, "lr": lr, "seed": a.seed,
                           "channels_last": a.channels_last, "schedule": a.schedule, "threads": a.threads})
        print(line, flush=True)
        if a.metrics:
            with open(a.metrics, "a") as f:
                f.write(line + "\n")
        if a.checkpoint:
            tmp = a.checkpoint + ".tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                        "best": list(best), "step": step, "epoch": epoch}, tmp)
            os.replace(tmp, a.checkpoint)
    print(f"Best Epoch: {best[0]}   Best Accuracy: {best[1]:.2f}%")


if __name__ == "__main__":
    main()
