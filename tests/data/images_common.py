"""Shared helpers of the images-to-h5 tests (test_images_*.py): the PIL /
torchvision reference of one image, reading a converted output back with h5py,
and small image writers PIL lacks (16-bit RGB/RGBA PNG)."""
import hashlib
import os
import struct
import subprocess
import sys
import zlib

try:
    import h5py
    import numpy as np
    from PIL import Image, ImageOps
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode
except ImportError as e:
    print(f"FAIL: cannot import the reference ({e})\nHINT: apt-get install python3-h5py python3-numpy python3-pil "
          "python3-torchvision; run with /usr/bin/python3", file=sys.stderr)
    sys.exit(1)


class Checks:
    def __init__(self):
        self.failures, self.count = [], 0

    def __call__(self, cond, what):
        self.count += 1
        if not cond:
            self.failures.append(what)
            print("FAIL:", what if len(what) < 800 else what[:800] + " ...", file=sys.stderr)
        return cond

    def finish(self, name):
        if self.failures:
            print(f"{name}: {len(self.failures)} of {self.count} checks failed", file=sys.stderr)
            sys.exit(1)
        print(f"PASS: {name} ({self.count} checks)")


def run(conv, *args):
    return subprocess.run([conv, *map(str, args)], capture_output=True, text=True)


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def in_test_split(rel, fraction):
    """The converter's --val-fraction rule: first 8 bytes of SHA-256(relative path), big-endian, < f * 2^64."""
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") < fraction * 2.0 ** 64


def pil_rgb(path):
    """What torchvision's ImageFolder loader sees, with the EXIF orientation applied."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def resize_crop(im, size):
    """torchvision Resize(size, BOX) then CenterCrop(size), on a PIL RGB image."""
    return TF.center_crop(TF.resize(im, size, interpolation=InterpolationMode.BOX), size)


def reference(path, size=None, grey16=False):
    """uint8 HWC array the converter must store for this file. grey16: a 16-bit
    greyscale PNG, for which the converter keeps the high byte of each sample
    (PIL's convert('RGB') clips the 16-bit value at 255 instead)."""
    if grey16:
        with Image.open(path) as im:
            a = (np.asarray(ImageOps.exif_transpose(im)).astype(np.uint32) >> 8).astype(np.uint8)
        im = Image.fromarray(np.repeat(a[:, :, None], 3, axis=2), "RGB")
    else:
        im = pil_rgb(path)
    if size:
        im = resize_crop(im, size)
    return np.asarray(im, dtype=np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(path, arr):
    """A 16-bit RGB (HxWx3) or RGBA (HxWx4) PNG; arr is uint16."""
    h, w, c = arr.shape
    ctype = {3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)) +
            png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(data)


def read_index(out):
    """index.txt as (header dict key -> rest of line, list of shard line fields)."""
    head, shards = {}, []
    with open(os.path.join(out, "index.txt")) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            key, _, rest = line.partition(" ")
            if key == "shard":
                shards.append(rest.split(" "))
            elif key == "split":
                head["split " + rest.split(" ")[0]] = rest
            else:
                head[key] = rest
    return head, shards


def read_split(out, split):
    """[(source, label, HWC uint8 array)] of one split, in index order, and the shard attributes."""
    _, shards = read_index(out)
    items, attrs = [], []
    for sp, _k, _count, _first, _n, _nbytes, fname, _sha in shards:
        if sp != split:
            continue
        with h5py.File(os.path.join(out, fname), "r") as f:
            attrs.append(dict(f.attrs))
            labels = f["labels"][()]
            sources = [s.decode() for s in f["sources"][()]]
            if "images" in f:
                imgs = list(f["images"][()])
            else:
                pix, off, sz = f["pixels"][()], f["offsets"][()], f["sizes"][()]
                imgs = [pix[off[i]:off[i + 1]].reshape(sz[i][0], sz[i][1], 3) for i in range(len(labels))]
            items += list(zip(sources, labels.tolist(), imgs))
    return items, attrs


def tree_state(d):
    """relative name -> (sha256, mtime_ns) of every file under d."""
    state = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            state[os.path.relpath(p, d)] = (sha256(p), os.stat(p).st_mtime_ns)
    return state


def leftovers(parent, name):
    """Temporary or moved-aside directories the converter left beside OUT."""
    return sorted(n for n in os.listdir(parent) if n.startswith(name + ".tmp.") or n.startswith(name + ".old."))
