#!/usr/bin/python3
"""Time full PyTorch training steps of the seed EfficientNet on synthetic data.

    /usr/bin/python3 tests/bench/bench_pytorch.py --model efficientnet-b0 \
        --resolution 32 --batch 64 --threads 2 --steps 20 --warmup 3 [--json]

Mirrors the seed's training loop: train mode with the model's own dropout,
CrossEntropyLoss, Adam(lr=1e-3, weight_decay=1e-4); each step is zero_grad,
forward, loss, backward, step. Layout is PyTorch's default NCHW (as in the
seed) unless --channels-last is given.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'reference'))
import effnet_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='efficientnet-b0',
                    choices=sorted(effnet_ref.CONFIGS))
    ap.add_argument('--resolution', type=int, default=32)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = effnet_ref.build(a.model, a.classes).to(memory_format=fmt)
    model.train()
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, a.classes, (a.batch,))

    def step():
        opt.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):  # allocator / kernel-selection warm-up
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    elapsed = time.perf_counter() - t0

    img_per_s = a.batch * a.steps / elapsed
    # Linux reports ru_maxrss in KiB
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.json:
        print(json.dumps({
            'framework': 'pytorch', 'torch_version': str(torch.__version__),
            'model': a.model, 'resolution': a.resolution, 'batch': a.batch,
            'threads': a.threads, 'steps': a.steps,
            'channels_last': a.channels_last,
            'img_per_s': round(img_per_s, 3),
            'peak_rss_mb': round(peak_rss_mb, 1)}))
    else:
        print(f'pytorch {torch.__version__} {a.model} {a.resolution}px '
              f'batch {a.batch} threads {a.threads}: {img_per_s:.2f} img/s '
              f'({elapsed / a.steps * 1000:.1f} ms/step), '
              f'peak RSS {peak_rss_mb:.1f} MiB')


if __name__ == '__main__':
    main()
