#!/usr/bin/python3
"""The seed's training recipe in PyTorch on CIFAR-10 binary files, for the
accuracy-parity comparison with `effnet train` (docs/PERFORMANCE.md).

    /usr/bin/python3 tests/bench/train_pytorch.py --data CIFAR10_BIN_DIR \
        --model efficientnet-b0 --resolution 32 --batch 64 --epochs 3 --threads 2

Seed recipe: Adam(lr 1e-3, weight_decay 1e-4), CrossEntropyLoss, the seed's
torchvision augmentation (Resize, RandomHorizontalFlip, RandomRotation(15),
RandomCrop(S, padding=4), ColorJitter(0.2,0.2,0.2,0.1), Normalize). Prints
the seed's log lines and one JSON line per epoch."""
import argparse
import json
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="efficientnet-b0")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
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
    train = Cifar(np.concatenate(xs), np.concatenate(ys), tf_train)
    test = Cifar(*load_bin(os.path.join(a.data, "test_batch.bin")), tf_test)
    tl = torch.utils.data.DataLoader(train, batch_size=a.batch, shuffle=True, num_workers=0)
    el = torch.utils.data.DataLoader(test, batch_size=500, shuffle=False, num_workers=0)
    model = effnet_ref.build(a.model, num_classes=10)
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    best = (0, 0.0)
    for epoch in range(1, a.epochs + 1):
        model.train()
        tot, n, t0 = 0.0, 0, time.time()
        for i, (x, y) in enumerate(tl):
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
            tot += loss.item() * x.size(0)
            n += x.size(0)
            if i % 100 == 0:
                print(f"Train Epoch: {epoch} [{i * len(x)}/{len(train)} ({100. * i / len(tl):.0f}%)]\tAVG_Loss: {tot / n:.6f}", flush=True)
        train_s = time.time() - t0
        model.eval()
        correct, tl_sum = 0, 0.0
        with torch.no_grad():
            for x, y in el:
                out = model(x)
                tl_sum += crit(out, y).item() * x.size(0)
                correct += (out.argmax(1) == y).sum().item()
        acc = 100.0 * correct / len(test)
        print(f"\nTest set: Average loss: {tl_sum / len(test):.4f}, Accuracy: {correct}/{len(test)} ({acc:.2f}%)\n", flush=True)
        if acc > best[1]:
            best = (epoch, acc)
        print(json.dumps({"framework": "pytorch", "epoch": epoch, "accuracy": acc, "test_loss": tl_sum / len(test),
                          "train_img_per_s": n / train_s}), flush=True)
    print(f"Best Epoch: {best[0]}   Best Accuracy: {best[1]:.2f}%")


if __name__ == "__main__":
    main()
