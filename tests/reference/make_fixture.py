#!/usr/bin/python3
"""Write an HDF5 fixture of the PyTorch reference for the C implementation.

    /usr/bin/python3 tests/reference/make_fixture.py --model efficientnet-b0 \
        --resolution 32 --batch 4 --seed 1 --out FILE.h5

Layout (state_dict keys as dataset names, PyTorch layouts, float32 unless
noted; num_batches_tracked is int64):
  /init/<key>           every state_dict entry before anything runs
  /input                float32 [B,R,R,3] (NHWC)
  /labels               int64 [B]
  /train/logits         [B,classes], train-mode forward
  /train/loss           [1], mean cross entropy
  /train/grad/<param>   gradient of every parameter
  /train/buffers/<key>  BN running_mean/var/num_batches_tracked after that forward
  /eval/logits          [B,classes], eval mode with the updated running stats
  /adam3/<key>          every state_dict entry after 3 Adam steps
  /adam3_losses         [3], losses of the 3 training forwards
  /adam_grads/stepS/<param key>  the gradients Adam step S (1..3) used
  /f64/...              float64: the same module in double precision
                        (model.double()) from the same weights and input:
                        train/logits, train/loss, train/grad/<param>,
                        train/buffers/<key> (no num_batches_tracked), eval/logits.
"""
import argparse
import copy
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import effnet_ref  # noqa: E402

LR, WEIGHT_DECAY = 1e-3, 1e-4


def randomise_bn(model):
    # Default BN state (w=1, b=0, mean=0, var=1) would hide bugs that swap or
    # drop these terms; perturb all of them.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.zero_()


def put_state(f, prefix, tensors):
    for k, v in tensors.items():
        f.create_dataset(f'{prefix}/{k}', data=v.detach().cpu().numpy())


def put_float64(f, model, x, labels):
    # The same module in float64 from the same fp32 weights (exact in double):
    # the reference both PyTorch fp32 and effnet are measured against.
    m64 = model.double()
    x64 = x.double()
    m64.train()
    logits = m64(x64)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    f['f64/train/logits'] = logits.detach().numpy()
    f['f64/train/loss'] = loss.detach().reshape(1).numpy()
    put_state(f, 'f64/train/grad', {k: p.grad for k, p in m64.named_parameters()})
    put_state(f, 'f64/train/buffers', {k: b for k, b in m64.named_buffers()
                                       if not k.endswith('num_batches_tracked')})
    m64.eval()
    with torch.no_grad():
        f['f64/eval/logits'] = m64(x64).numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='efficientnet-b0',
                    choices=sorted(effnet_ref.CONFIGS))
    ap.add_argument('--resolution', type=int, default=32)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()

    torch.set_num_threads(1)  # deterministic reductions
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(a.seed)
    model = effnet_ref.build(a.model, a.classes, dropout=0.0)
    randomise_bn(model)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution)
    labels = torch.randint(0, a.classes, (a.batch,), dtype=torch.int64)

    model64 = copy.deepcopy(model)  # before anything runs: same weights, same BN state
    tmp = a.out + '.tmp'
    with h5py.File(tmp, 'w') as f:
        # str(): torch.__version__ is a str subclass that h5py cannot store
        f.attrs.update(model=a.model, resolution=a.resolution, batch=a.batch,
                       classes=a.classes, seed=a.seed, lr=LR,
                       weight_decay=WEIGHT_DECAY,
                       torch_version=str(torch.__version__))
        put_state(f, 'init', model.state_dict())
        f['input'] = x.permute(0, 2, 3, 1).contiguous().numpy()
        f['labels'] = labels.numpy()

        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        f['train/logits'] = logits.detach().numpy()
        f['train/loss'] = loss.detach().reshape(1).numpy()
        put_state(f, 'train/grad',
                  {k: p.grad for k, p in model.named_parameters()})
        put_state(f, 'train/buffers', dict(model.named_buffers()))

        model.eval()
        with torch.no_grad():
            f['eval/logits'] = model(x).numpy()

        opt = torch.optim.Adam(model.parameters(), lr=LR,
                               weight_decay=WEIGHT_DECAY)
        model.train()
        losses = [loss.item()]
        # The gradients each step used, so the C side can check its Adam
        # arithmetic on exactly PyTorch's inputs (the free-running 3-step
        # trajectory at batch 4 is too ill-conditioned to compare at 1e-4:
        # PyTorch fp32 and fp64 already differ by ~6e-2 there).
        put_state(f, 'adam_grads/step1',
                  {k: p.grad for k, p in model.named_parameters()})
        opt.step()  # step 1 reuses the gradients computed above
        for step in (2, 3):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), labels)
            loss.backward()
            put_state(f, f'adam_grads/step{step}',
                      {k: p.grad for k, p in model.named_parameters()})
            opt.step()
            losses.append(loss.item())
        put_state(f, 'adam3', model.state_dict())
        f['adam3_losses'] = np.array(losses, dtype=np.float32)
        put_float64(f, model64, x, labels)
    os.replace(tmp, a.out)
    print(f'{a.out}: loss {losses[0]:.6f} -> {losses[2]:.6f}')


if __name__ == '__main__':
    main()
