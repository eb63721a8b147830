#!/usr/bin/env python3
"""Write float32 inputs with PyTorch's bfloat16 and float16 conversions of
each, as records (f32, u16 bf16 bits, u16 f16 bits), for `test_half --compare`.

The inputs: random floats over the whole exponent range, values near the
ties of both formats, the fp16 overflow and subnormal edges, and specials."""
import struct
import sys

import numpy as np
import torch


def main(path):
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=200000, dtype=np.uint64).astype(np.uint32)
    xs = [bits.view(np.float32)]
    # near ties: 16-bit values widened, plus half an ulp of the narrow type, +-1 float ulp
    for k in (16, 13):  # bf16 keeps the top 16 bits; fp16 normals 13 bits below a float's
        base = rng.integers(0, 2**32, size=50000, dtype=np.uint64).astype(np.uint32) & np.uint32(~((1 << k) - 1) & 0xFFFFFFFF)
        tie = base | np.uint32(1 << (k - 1))
        for d in (-1, 0, 1):
            xs.append((tie.astype(np.int64) + d).astype(np.uint32).view(np.float32))
    xs.append(np.linspace(-70000, 70000, 20001, dtype=np.float32))
    xs.append(np.float32(2.0) ** np.arange(-30, -10, 0.125, dtype=np.float32))
    xs.append(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.996, 65520, 2**-24, 2**-25, 3e38],
                       dtype=np.float32))
    x = np.concatenate(xs).astype(np.float32)
    t = torch.from_numpy(x)
    bf = t.to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16)
    h = t.to(torch.float16).view(torch.int16).numpy().astype(np.uint16)
    rec = np.zeros(len(x), dtype=[("x", "<f4"), ("bf", "<u2"), ("h", "<u2")])
    rec["x"], rec["bf"], rec["h"] = x, bf, h
    rec.tofile(path)
    print(f"half_reference: {len(x)} floats -> {path} (torch {torch.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
