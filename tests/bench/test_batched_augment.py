#!/usr/bin/python3
"""train_pytorch.py --augment batched (BatchedSeedAugment) against the seed's PIL path (torchvision 0.14 on
Pillow 9.4), on the same inputs and the same per-image parameters.

Inputs: random CIFAR-like images (smooth colour fields plus noise), uniform noise, flat colours, greys,
saturated colours (channels in {0, 255}), few-level images (ties between channels: every branch of
Pillow's rgb2hsv) and greys whose luma mean is exactly k + 0.5 (contrast's int(mean + 0.5)), 32x32. The batched ops reproduce Pillow's integer and float expressions, so the
tolerance is zero: every check asserts that the uint8 (or normalised float32) results are equal, and
prints how many values differ (0 when it passes).

  1. each op with the pipeline's own parameters (SeedParams.draw) and with wider ones: factors in
     [0, 2] and exactly 0, 1, 2; hue in [-0.5, 0.5] with +-0.5 and 0; angles in [-400, 400] with 0, +-90,
     180, 270, 360 and tiny ones; every crop offset; Resize (bilinear) to 24, 32, 40, 64 and from a
     non-square input;
  2. exhaustively: rgb2hsv and hsv2rgb (the tables hue uses) on all 2^24 inputs against Pillow's
     convert("HSV") and convert("RGB") of an HSV image; saturation on all 2^24 colours;
  3. the whole pipeline: augment_u8 against the torchvision functional ops with the same parameters,
     and, from the same torch seed, the Compose's normalised tensors against the batched path's
     (bit-equal, and the global RNG left in the same state: the parameters are drawn alike);
  4. train_pytorch.py's loop on a tiny fake CIFAR-10 directory: --augment pil and --augment batched
     with the same seed give the same losses and accuracy, bit for bit.
    test_batched_augment.py [WORK_DIR]"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_pytorch as T  # noqa: E402

A = T.BatchedSeedAugment
failures = []


def check(name, got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bad = int((d > 0).sum())
    print(f"{name:44s} values {d.size:9d}  differing {bad:6d}  max |diff| {d.max():g}", flush=True)
    if bad:
        failures.append(name)


def images(rng, n_each=48, h=32, w=32):
    """N,H,W,3 uint8 test images and a name per group."""
    g = []
    # CIFAR-like: a smooth random colour field (bilinear upsampling of 4x4 noise) plus pixel noise
    low = rng.uniform(0, 255, (n_each, 3, 4, 4)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(low), size=(h, w), mode="bilinear",
                                             align_corners=False).permute(0, 2, 3, 1).numpy()
    g.append(("cifar-like", np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)))
    g.append(("uniform noise", rng.integers(0, 256, (n_each, h, w, 3), dtype=np.uint8)))
    flat = rng.integers(0, 256, (n_each, 1, 1, 3), dtype=np.uint8)
    flat[:6] = [[[[0, 0, 0]]], [[[255, 255, 255]]], [[[128, 128, 128]]], [[[255, 0, 0]]], [[[0, 255, 0]]],
                [[[1, 0, 255]]]]
    g.append(("flat colours", np.broadcast_to(flat, (n_each, h, w, 3)).copy()))
    g.append(("greys", np.repeat(rng.integers(0, 256, (n_each, h, w, 1), dtype=np.uint8), 3, -1)))
    g.append(("saturated", (rng.integers(0, 2, (n_each, h, w, 3)) * 255).astype(np.uint8)))
    g.append(("few levels (ties)", (rng.integers(0, 4, (n_each, h, w, 3)) * 85).astype(np.uint8)))
    # Contrast's grey is int(mean + 0.5): half the pixels grey a, half a + 1 make the mean exactly a + 0.5
    # (round half to even would give a for even a)
    a = rng.integers(0, 255, (n_each, 1, 1, 1))
    half = (rng.permuted(np.tile(np.arange(h * w) % 2, (n_each, 1)), axis=1).reshape(n_each, h, w, 1) + a)
    g.append(("half-integer luma means", np.repeat(half, 3, -1).astype(np.uint8)))
    return np.concatenate([x for _, x in g]), [name for name, _ in g]


def pil_each(x, fn):
    return np.stack([np.asarray(fn(Image.fromarray(x[k]), k)) for k in range(len(x))])


def ops(x, p, label):
    xt = torch.from_numpy(x)
    S = x.shape[1]
    aug = A(S, S, S)
    check(f"hflip ({label})", aug.hflip(xt, p.flip), pil_each(x, lambda im, k: TF.hflip(im) if p.flip[k] else im))
    check(f"rotate NEAREST fill 0 ({label})", aug.rotate(xt, p.angle),
          pil_each(x, lambda im, k: TF.rotate(im, p.angle[k], TF.InterpolationMode.NEAREST, False, None, 0)))
    check(f"pad 4 + crop ({label})", aug.pad_crop(xt, p.top, p.left),
          pil_each(x, lambda im, k: TF.crop(TF.pad(im, T.PAD, 0, "constant"), p.top[k], p.left[k], S, S)))
    for name, fn, vals in (("brightness", TF.adjust_brightness, p.brightness),
                           ("contrast", TF.adjust_contrast, p.contrast),
                           ("saturation", TF.adjust_saturation, p.saturation), ("hue", TF.adjust_hue, p.hue)):
        check(f"{name} ({label})", getattr(aug, name)(xt, vals), pil_each(x, lambda im, k: fn(im, vals[k])))
    check(f"colour jitter, per-image order ({label})", aug.color_jitter(xt, p),
          pil_each(x, lambda im, k: _jitter(im, p, k)))


def _jitter(im, p, k):
    for fn in p.order[k]:
        im = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)[fn](
            im, (p.brightness, p.contrast, p.saturation, p.hue)[fn][k])
    return im


def wide_params(rng, n, S):
    """Parameters beyond the pipeline's ranges, with the special values."""
    def u(lo, hi, special):
        v = rng.uniform(lo, hi, n).tolist()
        v[:len(special)] = special
        return v
    f = u(0.0, 2.0, [0.0, 1.0, 2.0, 0.5, 1e-7, 0.8, 1.2])
    order = [rng.permutation(4).tolist() for _ in range(n)]
    return T.SeedParams(flip=(rng.random(n) < 0.5).tolist(),
                        angle=u(-400.0, 400.0, [0.0, 90.0, -90.0, 180.0, 270.0, 360.0, -180.0, 1e-20, -1e-9, 45.0,
                                                15.0, -15.0, 0.5, -0.5]),
                        top=[k % (2 * T.PAD + 1) for k in range(n)], left=[(k // 9) % (2 * T.PAD + 1) for k in range(n)],
                        order=order, brightness=f, contrast=f[::-1], saturation=u(0.0, 2.0, [2.0, 0.0, 1.0]),
                        hue=u(-0.5, 0.5, [-0.5, 0.5, 0.0, -1e-9, 1e-9, 0.1, -0.1, 0.0039, -0.0039]))


def exhaustive():
    c = np.arange(1 << 24, dtype=np.uint32)
    allc = np.stack([c >> 16, (c >> 8) & 255, c & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    hs, rgb = A.hue_luts()
    pil_hsv = np.asarray(Image.fromarray(allc).convert("HSV")).reshape(-1, 3).astype(np.int32)
    check("rgb2hsv h, s: all 2^24 colours", np.stack([hs.numpy() >> 8, hs.numpy() & 255], -1), pil_hsv[:, :2])
    check("rgb2hsv v: the first 2^20 colours",
          A.rgb2hsv(torch.from_numpy(allc[:256]))[2].numpy().reshape(-1), pil_hsv[:256 * 4096, 2])
    pil_rgb = np.asarray(Image.merge("HSV", [Image.fromarray(allc[..., i]) for i in range(3)]).convert("RGB"))
    check("hsv2rgb: all 2^24 (h, s, v)", rgb.view(torch.uint8).view(-1, 4)[:, :3].numpy(), pil_rgb.reshape(-1, 3))
    for f in (0.8, 1.2, 0.0, 2.0):
        check(f"saturation {f}: all 2^24 colours", A.saturation(torch.from_numpy(allc[None]), [f])[0],
              np.asarray(TF.adjust_saturation(Image.fromarray(allc), f)))


def resize(rng):
    for (h, w), S in (((32, 32), 24), ((32, 32), 32), ((32, 32), 40), ((32, 32), 64), ((28, 36), 32)):
        x = rng.integers(0, 256, (24, h, w, 3), dtype=np.uint8)
        x[:4] = x[:4, :1, :1]  # flat images
        check(f"Resize(({S}, {S})) bilinear from {h}x{w}", A(h, w, S).resize(torch.from_numpy(x)),
              pil_each(x, lambda im, k: TF.resize(im, [S, S])))


def pipeline(x, S, seed):
    aug = A(x.shape[1], x.shape[2], S)
    torch.manual_seed(seed)
    p = T.SeedParams.draw(len(x), S)
    check(f"whole pipeline, uint8, S={S}", aug.augment_u8(torch.from_numpy(x), p),
          pil_each(x, lambda im, k: T.pil_apply(im, p, k, S)))
    # The Compose as the PIL path runs it, image by image, against the batched path's own draws, in batches
    tf = T.seed_train_transform(S)
    torch.manual_seed(seed)
    ref = torch.stack([tf(Image.fromarray(x[k])) for k in range(len(x))])
    ref_state = torch.get_rng_state()
    torch.manual_seed(seed)
    got = torch.cat([aug(torch.from_numpy(x[k:k + 64])) for k in range(0, len(x), 64)])
    check(f"whole pipeline, normalised float32, S={S}", got.numpy(), ref.numpy())
    if not torch.equal(torch.get_rng_state(), ref_state):
        print("  the batched path left the global RNG in another state than the PIL path")
        failures.append(f"RNG state after the pipeline, S={S}")


def training_loop(rng, work):
    """train_pytorch.py's main() on a tiny fake CIFAR-10, both paths, same seed: same numbers."""
    data = os.path.join(work, "cifar")
    os.makedirs(data)
    for name, n in [(f"data_batch_{k}.bin", 8) for k in range(1, 6)] + [("test_batch.bin", 20)]:
        rec = np.concatenate([rng.integers(0, 10, (n, 1)), rng.integers(0, 256, (n, 3072))], 1).astype(np.uint8)
        rec.tofile(os.path.join(data, name))
    lines = {}
    for mode in ("pil", "batched"):
        met = os.path.join(work, f"{mode}.jsonl")
        argv = sys.argv
        sys.argv = ["train_pytorch.py", "--data", data, "--batch", "8", "--epochs", "2", "--threads", "2",
                    "--channels-last", "--seed", "3", "--augment", mode, "--metrics", met, "--max-steps", "7"]
        try:
            T.main()
        finally:
            sys.argv = argv
        with open(met) as f:
            lines[mode] = [json.loads(s) for s in f]
    keys = ("epoch", "step", "train_loss", "test_loss", "accuracy", "lr")
    a, b = ([[d[k] for k in keys] for d in lines[m]] for m in ("pil", "batched"))
    print(f"training loop, pil     {a}\ntraining loop, batched {b}")
    if a != b or len(a) != 2:
        failures.append("training loop: --augment pil and batched differ")


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else None
    work = tempfile.mkdtemp(prefix="batched-augment-", dir=work)
    torch.set_num_threads(2)
    rng = np.random.default_rng(20261207)
    x, groups = images(rng)
    print(f"{len(x)} images, 32x32: {', '.join(groups)}")
    torch.manual_seed(1)
    ops(x, T.SeedParams.draw(len(x), 32), "pipeline's parameters")
    ops(x, wide_params(rng, len(x), 32), "wide parameters")
    resize(rng)
    exhaustive()
    pipeline(x, 32, 5)
    pipeline(x[::3], 40, 6)
    training_loop(rng, work)
    shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("FAIL:", "; ".join(failures))
        return 1
    print("OK: every check equal to the PIL path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
