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
  --augment batched         the seed's augmentation on whole batches (BatchedSeedAugment below) instead of
                            PIL image by image (pil, the default): the same per-image parameters from the same
                            RNG draws, and the same pixels as Pillow 9.4 (tests/bench/test_batched_augment.py);
                            a run with the same seed sees the same batches either way
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


# ---- The seed's augmentation as batched tensor operations (--augment batched) -------------------
#
# The PIL path runs the torchvision pipeline below image by image. The batched path draws the same
# per-image parameters from the same global torch RNG in the same order (flip, angle, crop top and
# left, ColorJitter's order and factors, via torchvision's own get_params), so a run with the same
# seed sees the same parameters, and applies them to the whole batch with tensor operations that
# reproduce Pillow's integer and float arithmetic (the same expressions as src/data/augment.c and
# src/data/resample.c, which match Pillow 9.4 bit for bit). tests/bench/test_batched_augment.py
# checks each operation and the whole pipeline against PIL on the same inputs and parameters.

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
PAD = 4


def seed_train_transform(S):
    """The seed's torchvision training pipeline (the PIL path)."""
    return transforms.Compose([transforms.Resize((S, S)), transforms.RandomHorizontalFlip(p=0.5),
                               transforms.RandomRotation(15), transforms.RandomCrop(S, padding=PAD),
                               transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1),
                               transforms.ToTensor(), transforms.Normalize(mean=MEAN, std=STD)])


def _find(tf, cls):
    return next(t for t in tf.transforms if isinstance(t, cls))


class SeedParams:
    """Per-image parameters of the seed pipeline for n images, drawn from the global torch RNG in
    exactly the order the PIL path draws them (image by image: RandomHorizontalFlip, RandomRotation,
    RandomCrop's top then left, ColorJitter's permutation and brightness, contrast, saturation, hue)."""

    def __init__(self, flip, angle, top, left, order, brightness, contrast, saturation, hue):
        self.flip, self.angle, self.top, self.left, self.order = flip, angle, top, left, order
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __len__(self):
        return len(self.angle)

    @classmethod
    def draw(cls, n, S, tf=None):
        tf = tf or seed_train_transform(S)
        fl, rot = _find(tf, transforms.RandomHorizontalFlip), _find(tf, transforms.RandomRotation)
        cr, cj = _find(tf, transforms.RandomCrop), _find(tf, transforms.ColorJitter)
        padded = torch.empty(3, S + 2 * PAD, S + 2 * PAD)  # only its shape is read
        out = [[] for _ in range(9)]
        for _ in range(n):
            out[0].append(bool(torch.rand(1) < fl.p))  # RandomHorizontalFlip.forward
            out[1].append(rot.get_params(rot.degrees))
            i, j, _, _ = cr.get_params(padded, cr.size)
            out[2].append(i)
            out[3].append(j)
            o, b, c, s, h = cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
            out[4].append(o.tolist())
            for k, v in enumerate((b, c, s, h)):
                out[5 + k].append(v)
        return cls(*out)

    def subset(self, idx):
        return SeedParams(*[[v[i] for i in idx] for v in (self.flip, self.angle, self.top, self.left, self.order,
                                                          self.brightness, self.contrast, self.saturation, self.hue)])


def pil_apply(img, p, k, S):
    """The PIL path with given parameters: image k of SeedParams p applied to the PIL image `img` with
    torchvision's functional ops, as the Compose of seed_train_transform does; returns the uint8 image."""
    from torchvision.transforms import functional as TF
    img = TF.resize(img, [S, S])
    if p.flip[k]:
        img = TF.hflip(img)
    img = TF.rotate(img, p.angle[k], transforms.InterpolationMode.NEAREST, False, None, 0)
    img = TF.pad(img, PAD, 0, "constant")
    img = TF.crop(img, p.top[k], p.left[k], S, S)
    for fn in p.order[k]:
        if fn == 0:
            img = TF.adjust_brightness(img, p.brightness[k])
        elif fn == 1:
            img = TF.adjust_contrast(img, p.contrast[k])
        elif fn == 2:
            img = TF.adjust_saturation(img, p.saturation[k])
        else:
            img = TF.adjust_hue(img, p.hue[k])
    return img


# Pillow Resample.c: precompute_coeffs + normalize_coeffs_8bpc, for the whole axis.
_PRECISION_BITS = 32 - 8 - 2
_FILTERS = {"bilinear": (lambda x: 1.0 - abs(x) if abs(x) < 1.0 else 0.0, 1.0)}


def _resample_matrix(in_size, out_size, filt="bilinear"):
    fn, support = _FILTERS[filt]
    scale = filterscale = float(in_size) / out_size
    if filterscale < 1.0:
        filterscale = 1.0
    support = support * filterscale
    ss = 1.0 / filterscale
    m = np.zeros((out_size, in_size), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [fn((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        for x in range(xmax):
            w = k[x] / ww if ww != 0.0 else k[x]
            m[xx, xmin + x] = int(-0.5 + w * (1 << _PRECISION_BITS)) if w < 0 else int(0.5 + w * (1 << _PRECISION_BITS))
    return torch.from_numpy(m).double()  # integers below 2^23: exact, and so are the sums below


def _resample_pass(x, m, dim):
    # sum of uint8 * int32 weight, + 2^21, >> 22, clipped (Pillow's clip8): exact in float64
    s = torch.tensordot(x.double(), m, dims=([dim], [1])).movedim(-1, dim) + float(1 << (_PRECISION_BITS - 1))
    return (s.to(torch.int64) >> _PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


def _luma(x):
    """Pillow's rgb2l (ITU-R 601-2 in 16-bit fixed point) of an N,H,W,3 uint8 tensor, as int32."""
    x = x.to(torch.int32)
    return (x[..., 0] * 19595 + x[..., 1] * 38470 + x[..., 2] * 7471 + 0x8000) >> 16


def _blend(base, x, alpha):
    """ImagingBlend(base, x, alpha) with C float alpha: (uint8)(base + alpha * (x - base)), clipped."""
    t = base.to(torch.float32) + alpha * (x.to(torch.int32) - base).to(torch.float32)
    return t.clamp_(0.0, 255.0).to(torch.uint8)


def _alpha(f):
    return torch.tensor(f, dtype=torch.float32).view(-1, 1)


_LEVELS = torch.arange(256, dtype=torch.int32).view(1, 256)


def _apply_lut(x, lut):
    """out[n, ...] = lut[n, x[n, ...]]: per-image 256-entry tables on N,H,W,3 uint8."""
    return torch.gather(lut, 1, x.reshape(x.shape[0], -1).to(torch.int64)).view(x.shape)


def _round_half_up(x):
    """C round() for x >= 0 (half away from zero), exactly. (No input of hsv2rgb lands on an exact half, so
    torch.round would give the same tables; this is Pillow's rule, kept in case that changes.)"""
    r = torch.floor(x)
    return r + (x - r >= 0.5).to(x.dtype)


class BatchedSeedAugment:
    """The seed pipeline on N,H,W,3 uint8 tensors. Each method takes a batch and per-image parameters."""

    def __init__(self, in_h, in_w, S):
        self.in_h, self.in_w, self.S = in_h, in_w, S
        self.need_h, self.need_v = in_w != S, in_h != S  # Pillow's need_horizontal / need_vertical
        self.mx = _resample_matrix(in_w, S) if self.need_h else None
        self.my = _resample_matrix(in_h, S) if self.need_v else None
        self.mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
        yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
        self.yy, self.xx = yy.reshape(1, -1).to(torch.int64), xx.reshape(1, -1).to(torch.int64)
        self.tf = seed_train_transform(S)  # its transforms' parameters and get_params are the PIL path's

    def resize(self, x):
        """Image.resize((S, S), BILINEAR): horizontal pass, uint8, then vertical pass (ImagingResample)."""
        if self.need_h:
            x = _resample_pass(x, self.mx, 2)
        if self.need_v:
            x = _resample_pass(x, self.my, 1)
        return x

    @staticmethod
    def hflip(x, flip):
        f = torch.as_tensor(flip, dtype=torch.bool).view(-1, 1, 1, 1)
        return torch.where(f, x.flip(2), x)

    @staticmethod
    def _gather(x, yin, xin):
        """out[n, p] = x[n, yin[n, p], xin[n, p]] where inside, else 0 (fill)."""
        n, h, w, c = x.shape
        ok = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
        idx = torch.where(ok, yin * w + xin, torch.zeros_like(xin))
        out = torch.gather(x.reshape(n, h * w, c), 1, idx.unsqueeze(-1).expand(-1, -1, c))
        return out.masked_fill_(~ok.unsqueeze(-1), 0)

    def rotate(self, x, angles):
        """Image.rotate(angle, NEAREST, fillcolor=0) per image (Pillow 9.4 Image.rotate and Geometry.c
        affine_fixed, as in src/data/augment.c eff_img_rotate_nearest)."""
        n, h, w, c = x.shape
        fx, aff = np.zeros((n, 6), np.int64), np.zeros(n, bool)
        sy, sx = np.repeat(np.arange(h), w), np.tile(np.arange(w), h)
        src_y, src_x = np.tile(sy, (n, 1)), np.tile(sx, (n, 1))  # identity by default
        cx, cy = w / 2.0, h / 2.0
        for k, angle in enumerate(angles):
            a = angle % 360.0
            if a == 0:
                continue
            if a == 180:
                src_y[k], src_x[k] = h - 1 - sy, w - 1 - sx
                continue
            if a in (90, 270) and w == h:  # Transpose.ROTATE_90 / ROTATE_270
                src_y[k], src_x[k] = (sx, w - 1 - sy) if a == 90 else (h - 1 - sx, sy)
                continue
            rad = -math.radians(a)
            m = [round(math.cos(rad), 15), round(math.sin(rad), 15), 0.0,
                 round(-math.sin(rad), 15), round(math.cos(rad), 15), 0.0]
            m[2], m[5] = m[0] * -cx + m[1] * -cy + m[2], m[3] * -cx + m[4] * -cy + m[5]
            m[2] += cx
            m[5] += cy
            if m[1] == 0 and m[3] == 0:  # ImagingScaleAffine with scale 1 and no shift
                continue
            for px, py in ((0, 0), (w, h), (0, h), (w, 0)):  # check_fixed: else Pillow's float path
                if not (abs(px * m[0] + py * m[1] + m[2]) < 32768.0 and abs(px * m[3] + py * m[4] + m[5]) < 32768.0):
                    raise ValueError("rotate: image too large for Pillow's fixed-point path")
            fix = lambda v: math.floor(v * 65536.0 + 0.5)  # noqa: E731
            fx[k] = (fix(m[0]), fix(m[1]), fix(m[2] + m[0] * 0.5 + m[1] * 0.5),
                     fix(m[3]), fix(m[4]), fix(m[5] + m[3] * 0.5 + m[4] * 0.5))
            aff[k] = True
        yin, xin = torch.from_numpy(src_y), torch.from_numpy(src_x)
        if aff.any():
            aff = torch.from_numpy(aff)
            f = torch.from_numpy(fx).unsqueeze(-1)[aff]
            gy = torch.from_numpy(sy).unsqueeze(0)
            gx = torch.from_numpy(sx).unsqueeze(0)
            # affine_fixed: xx = a2 + y*a1 + x*a0, yy = a5 + y*a4 + x*a3 in 16.16, source = (yy >> 16, xx >> 16)
            xin[aff] = (f[:, 2] + gy * f[:, 1] + gx * f[:, 0]) >> 16
            yin[aff] = (f[:, 5] + gy * f[:, 4] + gx * f[:, 3]) >> 16
        return self._gather(x, yin, xin).view(n, h, w, c)

    def pad_crop(self, x, top, left):
        """RandomCrop(S, padding=4): pad with 0 by 4, then crop S x S at (top, left)."""
        n, h, w, c = x.shape
        t = torch.as_tensor(top, dtype=torch.int64).view(-1, 1)
        lf = torch.as_tensor(left, dtype=torch.int64).view(-1, 1)
        return self._gather(x, self.yy + t - PAD, self.xx + lf - PAD).view(n, self.S, self.S, c)

    @staticmethod
    def brightness(x, f):
        """ImageEnhance.Brightness: blend with black (a table per image)."""
        return _apply_lut(x, _blend(torch.zeros(x.shape[0], 1, dtype=torch.int32), _LEVELS, _alpha(f)))

    @staticmethod
    def contrast(x, f):
        """ImageEnhance.Contrast: blend with the grey int(mean of the L image + 0.5)."""
        n = x.shape[0]
        s = _luma(x).view(n, -1).sum(1, dtype=torch.int64)
        mean = s.to(torch.float64) / float(x.shape[1] * x.shape[2])  # ImageStat: sum / count in double
        m = torch.floor(mean + 0.5).to(torch.int32).view(n, 1)
        return _apply_lut(x, _blend(m, _LEVELS, _alpha(f)))

    @staticmethod
    def saturation(x, f):
        """ImageEnhance.Color: blend with the image's L conversion."""
        return _blend(_luma(x).unsqueeze(-1), x, _alpha(f).view(-1, 1, 1, 1))

    @staticmethod
    def rgb2hsv(x):
        """Pillow's convert("HSV") (Convert.c rgb2hsv_row) of N,...,3 uint8: (h, s, v) as int32 in 0..255."""
        r, g, b = (x[..., i].to(torch.int32) for i in range(3))
        maxc = torch.maximum(torch.maximum(r, g), b)
        minc = torch.minimum(torch.minimum(r, g), b)
        grey = maxc == minc
        f32, f64 = torch.float32, torch.float64
        cr = (maxc - minc).to(f32)
        cr = torch.where(grey, torch.ones_like(cr), cr)  # grey pixels get h = s = 0 below
        s = cr / maxc.clamp(min=1).to(f32)
        rc, gc, bc = ((maxc - v).to(f32) / cr for v in (r, g, b))
        # h = bc - gc in float; h = 2.0 + rc - bc and 4.0 + gc - rc in double, stored in a float
        h = torch.where(r == maxc, bc - gc,
                        torch.where(g == maxc, ((2.0 + rc.to(f64)) - bc.to(f64)).to(f32),
                                    ((4.0 + gc.to(f64)) - rc.to(f64)).to(f32)))
        hx = h.to(f64) / 6.0 + 1.0
        h = torch.where(hx >= 1.0, hx - 1.0, hx).to(f32)  # fmod(hx, 1.0): hx lies in [5/6, 11/6]
        zero = torch.zeros_like(maxc)
        uh = torch.where(grey, zero, (h.to(f64) * 255.0).to(torch.int32).clamp(0, 255))  # CLIP8((int)(h * 255.0))
        us = torch.where(grey, zero, (s.to(f64) * 255.0).to(torch.int32).clamp(0, 255))
        return uh, us, maxc

    @staticmethod
    def hsv2rgb(uh, us, uv):
        """Pillow's convert("RGB") of an HSV image (Convert.c hsv2rgb) from int32 h, s, v: N,...,3 uint8."""
        f32, f64 = torch.float32, torch.float64
        hd = uh.to(f32).to(f64) * 6.0 / 255.0  # (float)h * 6.0 / 255.0 in double
        i = torch.floor(hd)
        fr = (hd - i.to(f32).to(f64)).to(f32)  # f = ... - (float)i, stored in a float
        fs = (us.to(f32).to(f64) / 255.0).to(f32)
        v = uv.to(f32).to(f64)
        p = _round_half_up(v * (1.0 - fs.to(f64))).clamp(0, 255).to(torch.uint8)
        q = _round_half_up(v * (1.0 - (fs * fr).to(f64))).clamp(0, 255).to(torch.uint8)  # fs * f in float
        t = _round_half_up(v * (1.0 - fs.to(f64) * (1.0 - fr.to(f64)))).clamp(0, 255).to(torch.uint8)
        vv = uv.to(torch.uint8)
        sel = i.to(torch.int64) % 6
        table = torch.stack([torch.stack(c, -1) for c in ((vv, t, p), (q, vv, p), (p, vv, t), (p, q, vv),
                                                          (t, p, vv), (vv, p, q))], -2)  # ...,6,3
        out = torch.gather(table, -2, sel.view(*sel.shape, 1, 1).expand(*sel.shape, 1, 3)).squeeze(-2)
        return torch.where((us == 0).unsqueeze(-1), vv.unsqueeze(-1).expand_as(out), out)

    _hue_luts = None

    @classmethod
    def hue_luts(cls):
        """rgb2hsv and hsv2rgb above for every input, as int32 tables: h << 8 | s by r << 16 | g << 8 | b, and
        the RGB bytes (and a zero byte) by h << 16 | s << 8 | v (128 MB, built once per process in seconds)."""
        if cls._hue_luts is None:
            hs, rgb, step = torch.empty(1 << 24, dtype=torch.int32), torch.zeros(1 << 24, 4, dtype=torch.uint8), 1 << 20
            for c0 in range(0, 1 << 24, step):
                c = torch.arange(c0, c0 + step, dtype=torch.int32)
                u8 = torch.stack([c >> 16, (c >> 8) & 255, c & 255], -1).to(torch.uint8)
                uh, us, _ = cls.rgb2hsv(u8)
                hs[c0:c0 + step] = uh << 8 | us
                rgb[c0:c0 + step, :3] = cls.hsv2rgb(c >> 16, (c >> 8) & 255, c & 255)
            cls._hue_luts = hs, rgb.view(torch.int32).view(-1)
        return cls._hue_luts

    @classmethod
    def hue(cls, x, f):
        """torchvision's adjust_hue for PIL images: convert("HSV"), h += np.uint8(f * 255) modulo 256
        (numpy's cast of a negative float: truncation, then modulo 256), convert back; through hue_luts."""
        hs, rgb = cls.hue_luts()
        shift = torch.tensor([int(np.uint8(v * 255)) for v in f], dtype=torch.int32).view(-1, 1, 1)
        r, g, b = (x[..., i].to(torch.int32) for i in range(3))
        t = torch.index_select(hs, 0, (r << 16 | g << 8 | b).view(-1).to(torch.int64)).view(r.shape)
        v = torch.maximum(torch.maximum(r, g), b)
        k = (((t >> 8) + shift) & 255) << 16 | (t & 255) << 8 | v
        out = torch.index_select(rgb, 0, k.view(-1).to(torch.int64))
        return out.view(torch.uint8).view(*x.shape[:-1], 4)[..., :3]

    def color_jitter(self, x, p):
        """ColorJitter with each image's own order of the four adjustments."""
        order = torch.tensor(p.order, dtype=torch.int64).view(-1, 4)
        ops = ((self.brightness, p.brightness), (self.contrast, p.contrast), (self.saturation, p.saturation),
               (self.hue, p.hue))
        x = x.clone()
        for k in range(4):
            for fn_id, (fn, vals) in enumerate(ops):
                idx = (order[:, k] == fn_id).nonzero().view(-1)
                if len(idx):
                    x[idx] = fn(x[idx], [vals[i] for i in idx.tolist()])
        return x

    def augment_u8(self, x, p):
        """The uint8 result of the seed pipeline (before ToTensor) for N,H,W,3 uint8 x and SeedParams p."""
        x = self.hflip(self.resize(x), p.flip)
        x = self.pad_crop(self.rotate(x, p.angle), p.top, p.left)
        return self.color_jitter(x, p)

    def to_tensor(self, x):
        """ToTensor then Normalize: N,C,H,W float32 (channels-last strides)."""
        return x.permute(0, 3, 1, 2).to(torch.float32).div(255).sub_(self.mean).div_(self.std)

    def __call__(self, x):
        """Draws the batch's parameters (same RNG order as the PIL path) and augments it, on one thread: these
        small ops gain little from a second one and, with the other core busy, wait on it (measured up to 10x
        slower on 2 threads than on 1 on this 2-core machine under load)."""
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.to_tensor(self.augment_u8(x, SeedParams.draw(x.shape[0], self.S, self.tf)))
        finally:
            torch.set_num_threads(n)


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
    ap.add_argument("--augment", choices=["pil", "batched"], default="pil",
                    help="pil: the seed's torchvision pipeline per image; batched: the same transforms on whole batches")
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
    norm = transforms.Normalize(mean=MEAN, std=STD)
    tf_train = seed_train_transform(S)
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
    aug = None
    if a.augment == "batched":
        # The same DataLoader and sampler (so the same RNG draws and sample order), over indices; the
        # batch's raw images are gathered at once and augmented by BatchedSeedAugment in the loop.
        xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
        tl = torch.utils.data.DataLoader(range(len(ytr)), batch_size=a.batch, shuffle=True, num_workers=0,
                                         collate_fn=lambda idx: (xt[idx], yt[idx]))
        aug = BatchedSeedAugment(xtr.shape[1], xtr.shape[2], S)
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
            if aug is not None:
                x = aug(x)
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
                           "channels_last": a.channels_last, "augment": a.augment, "schedule": a.schedule, "threads": a.threads})
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
