#!/usr/bin/python3
"""Write an HDF5 fixture of the PyTorch reference for the C implementation.

    /usr/bin/python3 tests/reference/make_fixture.py --model efficientnet-b0 \
        --resolution 32 --batch 4 --seed 1 --out FILE.h5 \
        [--variant seed|torchvision] [--no-adam] [--stochastic-depth P --drop-key K]
        [--stem-stride 1|2]

--variant torchvision: the module is torchvision.models.efficientnet_bN
itself (0.14.1 is the reference), randomly initialised by torchvision, with
its classifier dropout off (p = 0) and, unless --stochastic-depth is given,
stochastic_depth_prob = 0. With --stochastic-depth P the train step runs
torchvision's StochasticDepth at stochastic_depth_prob = P with the masks
effnet draws for drop key K (src/rng.h: eff_sd_key, eff_uniform_at,
reproduced below), so the C model's per-image drops are compared with
torchvision's own code path. --no-adam leaves out /adam3, /adam3_losses and
/adam_grads (B5-B7: the Adam arithmetic is the same op as for B0, and those
groups would triple a fixture of 28 M parameters). --stem-stride 1: the
stem conv of either module gets stride 1 (model.stem_stride = 1, the CIFAR
adaptation: PyTorch's own Conv2d, its stride attribute set after building).

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

# src/mix64.h and src/rng.h in Python: the stochastic-depth masks of the C model.
M64 = (1 << 64) - 1
SD_SALT = 0x5D0B


def mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def uniform_at(key, i):  # exact: a 24-bit integer times 2^-24
    return (mix64(key ^ ((i * 0xD1B54A32D192ED03) & M64)) >> 40) / 16777216.0


def sd_keep(drop_key, layer, n, p):
    """1 where image i of n keeps block `layer`'s branch: u >= p, p rounded to float as the C model stores it."""
    key = mix64(mix64(mix64(drop_key) ^ SD_SALT) ^ layer)
    p32 = float(np.float32(p))
    return [0.0 if uniform_at(key, i) < p32 else 1.0 for i in range(n)]


def use_effnet_masks(model, drop_key, dropped):
    """Replace each StochasticDepth's Bernoulli draw by effnet's mask; the rest
    of torchvision.ops.stochastic_depth (row mode) is kept line for line."""
    from torchvision.ops import StochasticDepth
    blocks = [b for stage in model.features[1:8] for b in stage]
    for layer, blk in enumerate(blocks):
        sd = blk.stochastic_depth
        assert isinstance(sd, StochasticDepth) and sd.mode == 'row'

        def forward(input, p=sd.p, layer=layer, training=lambda m=sd: m.training):
            if not training() or p == 0.0:
                return input
            survival_rate = 1.0 - p
            size = [input.shape[0]] + [1] * (input.ndim - 1)
            noise = torch.tensor(sd_keep(drop_key, layer, input.shape[0], p), dtype=input.dtype).reshape(size)
            dropped.append(int(input.shape[0] - noise.sum().item()))
            if survival_rate > 0.0:
                noise.div_(survival_rate)
            return input * noise
        sd.forward = forward


def build_model(a):
    if a.variant == 'seed':
        return effnet_ref.build(a.model, a.classes, dropout=0.0)
    import torchvision
    model = getattr(torchvision.models, a.model.replace('-', '_'))(num_classes=a.classes,
                                                                   stochastic_depth_prob=a.stochastic_depth)
    model.classifier[0].p = 0.0  # dropout off: p = 0 makes F.dropout the identity
    return model


def set_stem_stride(model, a):
    stem = model.stem[0] if a.variant == 'seed' else model.features[0][0]
    assert isinstance(stem, nn.Conv2d) and stem.stride == (2, 2) and stem.kernel_size == (3, 3)
    stem.stride = (a.stem_stride, a.stem_stride)  # F.conv2d reads it on every call


def randomise_bn(model):
    # Default BN state (w=1, b=0, mean=0, var=1) would hide bugs that swap or
    # drop these terms; perturb all of them. The same for conv biases (the
    # torchvision variant's SE fc1/fc2), which torchvision initialises to 0.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.zero_()


def put_state(f, prefix, tensors):
    for k, v in tensors.items():
        f.create_dataset(f'{prefix}/{k}', data=v.detach().cpu().numpy())


def put_float64(f, model, x, labels, a):
    # The same module in float64 from the same fp32 weights (exact in double):
    # the reference both PyTorch fp32 and effnet are measured against.
    m64 = model.double()
    if a.stochastic_depth > 0:
        use_effnet_masks(m64, a.drop_key, [])
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
    ap.add_argument('--variant', default='seed', choices=('seed', 'torchvision'))
    ap.add_argument('--no-adam', action='store_true')
    ap.add_argument('--stochastic-depth', type=float, default=0.0)
    ap.add_argument('--drop-key', type=int, default=0)
    ap.add_argument('--stem-stride', type=int, default=2, choices=(1, 2))
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    if a.stochastic_depth > 0 and (a.variant != 'torchvision' or not a.no_adam):
        ap.error('--stochastic-depth needs --variant torchvision and --no-adam')

    torch.set_num_threads(1)  # deterministic reductions
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(a.seed)
    model = build_model(a)
    set_stem_stride(model, a)
    randomise_bn(model)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution)
    labels = torch.randint(0, a.classes, (a.batch,), dtype=torch.int64)

    model64 = copy.deepcopy(model)  # before anything runs: same weights, same BN state
    dropped = []
    if a.stochastic_depth > 0:
        use_effnet_masks(model, a.drop_key, dropped)
    tmp = a.out + '.tmp'
    with h5py.File(tmp, 'w') as f:
        # str(): torch.__version__ is a str subclass that h5py cannot store
        f.attrs.update(model=a.model, resolution=a.resolution, batch=a.batch,
                       classes=a.classes, seed=a.seed, lr=LR,
                       weight_decay=WEIGHT_DECAY,
                       torch_version=str(torch.__version__), variant=a.variant,
                       stochastic_depth=a.stochastic_depth, drop_key=a.drop_key,
                       stem_stride=a.stem_stride)
        if a.variant == 'torchvision':
            import torchvision
            f.attrs['torchvision_version'] = str(torchvision.__version__)
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

        if a.stochastic_depth > 0:
            f.attrs['sd_dropped'] = sum(dropped)  # (block, image) pairs dropped in the train step
            f.attrs['sd_draws'] = len(dropped) * a.batch
        model.eval()
        with torch.no_grad():
            f['eval/logits'] = model(x).numpy()
        if a.no_adam:
            put_float64(f, model64, x, labels, a)
            os.replace(tmp, a.out)
            print(f'{a.out}: loss {loss.item():.6f}' + (f', {sum(dropped)} of {len(dropped) * a.batch} '
                  'block x image pairs dropped' if a.stochastic_depth > 0 else ''))
            return

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
        put_float64(f, model64, x, labels, a)
    os.replace(tmp, a.out)
    print(f'{a.out}: loss {losses[0]:.6f} -> {losses[2]:.6f}')


if __name__ == '__main__':
    main()
