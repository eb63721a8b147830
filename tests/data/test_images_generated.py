#!/usr/bin/python3
"""images-to-h5 on a tree generated here with PIL: every image mode it must
convert, and every kind of bad input.

1. Good images -- RGB JPEGs of mixed sizes (4:2:0, 4:4:4, progressive, an
   upper-case .JPG), greyscale JPEG, CMYK JPEG (random K), EXIF orientations
   1-8 on JPEG and one on a PNG eXIf chunk, palette PNGs (8-bit, 4-bit with
   tRNS), 1-bit, L, LA, RGBA, 16-bit greyscale, 16-bit RGB and RGBA PNGs, a
   5x3 image (upscaled), files in subfolders and behind symlinks -- equal the
   PIL/torchvision reference exactly: ImageOps.exif_transpose -> convert('RGB')
   (ragged layout), then Resize(S, BOX) -> CenterCrop(S) (--size S).
   The one stated deviation: a 16-bit greyscale PNG stores the high byte of
   each sample; PIL's convert('RGB') clips the 16-bit value at 255 (checked
   here too, so the deviation cannot silently disappear).
2. Bad input -- a truncated JPEG, a text file named .jpg, an empty .png, a PNG
   with a CRC error, a directory symlink loop, a self-referencing file symlink,
   an empty class directory: without --skip-bad each alone stops the
   conversion with its path and reason and leaves nothing behind; with
   --skip-bad the rest is converted and skipped.txt lists exactly these.
3. Format: index.txt and classes.txt lines and checksums, shard attributes,
   dtypes, chunking, Fletcher-32, the --val-fraction split rule, ImageFolder
   order, train mean/std.

usage: test_images_generated.py IMAGES_TO_H5
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from images_common import (Checks, Image, h5py, in_test_split, np, read_index, read_split, reference,  # noqa: E402
                           leftovers, run, sha256, write_png16)

CONV = sys.argv[1]
check = Checks()
S = 24          # --size: 640x427 -> 35x24, crop offset round(5.5) = 6; 61x50 -> 29x24, round(2.5) = 2
FRACTION = 0.5  # --val-fraction: about half of ~35 files in each split
# train_mean/train_std: exactly the double formula on exact integer sums (mean = s1/n, var = s2/n - mean^2, /255),
# which Python reproduces bit for bit; and against numpy's float mean()/std() of the pixels/255, which rounds every
# value and sum: measured worst 4.1e-15 (AMD EPYC, 2026-12-07, this tree); 1e-13 allows 24x.
STAT_TOL = 1e-13


def rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth(rng, h, w, c=3):
    """Blocky content, so that JPEG/palette images are not pure noise."""
    small = rng.integers(0, 256, ((h + 3) // 4, (w + 3) // 4, c), dtype=np.uint8)
    return np.repeat(np.repeat(small, 4, 0), 4, 1)[:h, :w]


def exif_with(orientation):
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex


def make_good(d, rng, extra):
    """Good files of classes cat, dog, fish; returns {relpath: 'grey16' or ''}."""
    good = {}

    def save(rel, im, kind="", **kw):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        im.save(p, **kw)
        good[rel] = kind

    save("cat/big.jpg", Image.fromarray(smooth(rng, 427, 640)), quality=90)
    save("cat/ratio.jpg", Image.fromarray(smooth(rng, 50, 61)), quality=85, subsampling=0)
    save("cat/prog.jpg", Image.fromarray(smooth(rng, 70, 33)), quality=80, progressive=True)
    save("cat/UPPER.JPG", Image.fromarray(smooth(rng, 31, 45)))
    save("cat/grey.jpeg", Image.fromarray(smooth(rng, 40, 52, 1)[:, :, 0], "L"))
    save("cat/cmyk.jpg", Image.fromarray(smooth(rng, 36, 44, 4), "CMYK"), quality=92)
    for o in range(1, 9):
        save(f"cat/orient/o{o}.jpg", Image.fromarray(smooth(rng, 30, 41)), quality=90, exif=exif_with(o))
    save("cat/sub/nested.png", Image.fromarray(rgb(rng, 26, 29)))
    save("cat/sub-x/dash.png", Image.fromarray(rgb(rng, 25, 27)))
    save("dog/palette.png", Image.fromarray(smooth(rng, 33, 47)).convert("P", palette=Image.ADAPTIVE, colors=200))
    save("dog/pal4.png", Image.fromarray(smooth(rng, 29, 38)).convert("P", palette=Image.ADAPTIVE, colors=12),
         bits=4, transparency=3)
    save("dog/bits1.png", Image.fromarray(rng.integers(0, 2, (27, 35), dtype=np.uint8) * 255, "L").convert("1"))
    save("dog/grey.png", Image.fromarray(rng.integers(0, 256, (40, 25), dtype=np.uint8), "L"))
    save("dog/la.png", Image.fromarray(rng.integers(0, 256, (30, 30, 2), dtype=np.uint8), "LA"))
    save("dog/rgba.png", Image.fromarray(rng.integers(0, 256, (28, 50, 4), dtype=np.uint8), "RGBA"))
    save("dog/exif6.png", Image.fromarray(rgb(rng, 22, 37)), exif=exif_with(6))
    save("dog/tiny.png", Image.fromarray(rgb(rng, 3, 5)))
    g16 = Image.fromarray(rng.integers(0, 65536, (26, 31), dtype=np.uint16).astype(np.uint16), "I;16")
    save("dog/grey16.png", g16, kind="grey16")
    for rel, c in (("dog/rgb16.png", 3), ("dog/rgba16.png", 4)):
        write_png16(os.path.join(d, rel), rng.integers(0, 65536, (23, 34, c), dtype=np.uint16))
        good[rel] = ""
    save("fish/a.jpg", Image.fromarray(smooth(rng, 64, 48)))
    save("fish/b.png", Image.fromarray(rgb(rng, 48, 64)))
    os.makedirs(extra)
    Image.fromarray(rgb(rng, 20, 21)).save(os.path.join(extra, "outside.png"))
    os.symlink(extra, os.path.join(d, "fish", "linked"))
    good["fish/linked/outside.png"] = ""
    os.symlink("a.jpg", os.path.join(d, "fish", "alias.jpg"))
    good["fish/alias.jpg"] = ""
    with open(os.path.join(d, "cat", "notes.txt"), "w") as fh:
        fh.write("not an image, ignored\n")
    return good


def make_bad(d, rng):
    """{relpath: reason keyword} of the bad entries, created under d."""
    os.makedirs(os.path.join(d, "bird"), exist_ok=True)
    p = os.path.join(d, "bird", "ok.jpg")
    Image.fromarray(smooth(rng, 64, 64)).save(p, quality=95)
    data = open(p, "rb").read()
    bad = {}

    def put(rel, content, why):
        with open(os.path.join(d, rel), "wb") as fh:
            fh.write(content)
        bad[rel] = why

    put("bird/truncated.jpg", data[: len(data) * 6 // 10], "truncated JPEG")
    put("bird/notes.jpg", b"this is not an image\n", "not a JPEG or PNG file")
    put("bird/empty.png", b"", "empty file")
    import io
    buf = io.BytesIO()
    Image.fromarray(rgb(rng, 16, 16)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    png[png.index(b"IEND") - 8] ^= 0x55  # the IDAT chunk's CRC field; the data stays intact (PIL decodes this file)
    put("bird/crc.png", bytes(png), "CRC error")
    os.symlink(".", os.path.join(d, "bird", "loop"))
    bad["bird/loop"] = "symbolic link loop"
    os.symlink("self.jpg", os.path.join(d, "bird", "self.jpg"))
    bad["bird/self.jpg"] = "symbolic link loop"
    os.makedirs(os.path.join(d, "empty_class"))
    with open(os.path.join(d, "empty_class", "README"), "w") as fh:
        fh.write("no images here\n")
    bad["empty_class"] = "holds no .jpg"
    return bad, "bird/ok.jpg"


def check_default_stops(work, rng):
    """Each bad entry alone, without --skip-bad: exit 1, its path and reason, nothing left behind."""
    full = os.path.join(work, "full")
    for rel, why in sorted(BAD.items()):
        d = os.path.join(work, "one")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "aaa"))
        Image.fromarray(rgb(rng, 8, 8)).save(os.path.join(d, "aaa", "x.png"))
        Image.fromarray(rgb(rng, 8, 8)).save(os.path.join(d, "aaa", "y.png"))
        src = os.path.join(full, rel)
        dst = os.path.join(d, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
        if rel.startswith("bird/"):  # the class needs one good image, or it would also be an empty class
            shutil.copy(os.path.join(full, GOOD_IN_BIRD), os.path.join(d, GOOD_IN_BIRD))
        out = os.path.join(work, "out-one")
        r = run(CONV, "--input", d, "--output", out, "--shards", 1, "--size", 8, "--val-fraction", 0.5, "--quiet")
        msg = r.stderr
        check(r.returncode == 1, f"{rel}: exit status {r.returncode}, want 1")
        check(f"'{d}/{rel}'" in msg and why in msg, f"{rel}: the error names the path and '{why}': {msg.strip()}")
        check("--skip-bad" in msg, f"{rel}: the error suggests --skip-bad")
        check(not os.path.exists(out) and not leftovers(work, "out-one"), f"{rel}: nothing left behind")


def check_format(out, layout, n_classes, n_skipped):
    head, shards = read_index(out)
    check(head.get("format") == "effnet-images-h5" and head.get("schema_version") == "1", "index format lines")
    check(head.get("dataset") == "full" and head.get("layout") == layout and head.get("channels") == "3", "index dataset/layout")
    hw = str(S) if layout == "fixed" else "0"
    check(head.get("height") == hw and head.get("width") == hw, f"index height/width {hw}")
    check(head.get("num_classes") == str(n_classes), "index num_classes")
    cls_name, cls_sha = head.get("classes", " ").split(" ")
    check(cls_name == "classes.txt" and sha256(os.path.join(out, "classes.txt")) == cls_sha, "classes.txt checksum")
    check(open(os.path.join(out, "classes.txt")).read() == "bird\ncat\ndog\nempty_class\nfish\n", "classes.txt content")
    check(head.get("skipped") == f"skipped.txt {n_skipped}", f"index skipped line ({head.get('skipped')})")
    for sp, k, count, first, n, nbytes, fname, digest in shards:
        path = os.path.join(out, fname)
        check(fname == f"{sp}-{int(k):05d}-of-{int(count):05d}.h5", f"shard name {fname}")
        check(os.path.getsize(path) == int(nbytes) and sha256(path) == digest, f"{fname}: size and SHA-256 match the index")
        with h5py.File(path, "r") as f:
            a = f.attrs
            check(a["format"] == b"effnet-images-h5" and int(a["schema_version"]) == 1 and a["dataset"] == b"full",
                  f"{fname}: format attributes")
            check(a["split"] == sp.encode() and int(a["shard_index"]) == int(k) and int(a["shard_count"]) == int(count)
                  and int(a["first_index"]) == int(first), f"{fname}: shard attributes")
            total = int(head[f"split {sp}"].split(" ")[1])
            check(int(a["num_examples"]) == total and int(a["num_classes"]) == n_classes, f"{fname}: num_examples, num_classes")
            check(a["layout"] == (b"NHWC" if layout == "fixed" else b"ragged"), f"{fname}: layout attribute")
            check(a["first_index"].dtype == np.int64 and a["num_examples"].dtype == np.int64 and
                  a["num_classes"].dtype == np.int32, f"{fname}: attribute types")
            names = ["labels", "sources"] + (["images"] if layout == "fixed" else ["pixels", "offsets", "sizes"])
            check(sorted(f.keys()) == sorted(names), f"{fname}: datasets {sorted(f.keys())}")
            check(all(f[x].fletcher32 and f[x].chunks for x in names), f"{fname}: every dataset chunked with Fletcher-32")
            check(f["labels"].dtype == np.int32 and f["labels"].shape == (int(n),), f"{fname}: labels int32 [n]")
            if layout == "fixed":
                check(list(a["image_shape"]) == [S, S, 3] and a["image_shape"].dtype == np.int32, f"{fname}: image_shape")
                check(f["images"].dtype == np.uint8 and f["images"].shape == (int(n), S, S, 3), f"{fname}: images uint8")
            else:
                check("image_shape" not in a, f"{fname}: no image_shape in the ragged layout")
                off, sz = f["offsets"][()], f["sizes"][()]
                check(f["offsets"].dtype == np.int64 and off.shape == (int(n) + 1,) and off[0] == 0 and
                      off[-1] == f["pixels"].shape[0], f"{fname}: offsets int64 [n+1] spanning pixels")
                check(f["sizes"].dtype == np.int32 and sz.shape == (int(n), 2) and
                      (np.diff(off) == sz[:, 0].astype(np.int64) * sz[:, 1] * 3).all(), f"{fname}: sizes match offsets")


def check_pixels(out, good, size):
    tr, attrs = read_split(out, "train")
    te, _ = read_split(out, "test")
    classes = open(os.path.join(out, "classes.txt")).read().split()
    got = {src: (lab, img) for src, lab, img in tr + te}
    check(set(got) == set(good), f"converted files == good files (extra {sorted(set(got) - set(good))}, "
                                 f"missing {sorted(set(good) - set(got))})")
    check(all(not in_test_split(s, FRACTION) for s, _, _ in tr) and all(in_test_split(s, FRACTION) for s, _, _ in te),
          "the --val-fraction split follows the SHA-256 rule")
    for split in (tr, te):
        keys = [(lab, os.path.dirname(s), os.path.basename(s)) for s, lab, _ in split]
        check(keys == sorted(keys), "ImageFolder order: class, then directory path, then file name")
    worst = 0
    for src, kind in sorted(good.items()):
        lab, img = got.get(src, (None, None))
        if img is None:
            continue
        check(classes[lab] == src.split("/")[0], f"{src}: label {lab}")
        want = reference(os.path.join(TREE, src), size, grey16=(kind == "grey16"))
        same = img.shape == want.shape and np.array_equal(img, want)
        if not same and img.shape == want.shape:
            worst = max(worst, int(np.abs(img.astype(int) - want).max()))
        check(same, f"{src} (--size {size}): pixels equal PIL's (shape {img.shape} vs {want.shape})")
    px = np.concatenate([img.reshape(-1, 3) for _, _, img in tr]).astype(np.int64)
    n, s1, s2 = len(px), [int(v) for v in px.sum(0)], [int(v) for v in (px * px).sum(0)]
    exact_mean = [a / n / 255.0 for a in s1]
    exact_std = [max(b / n - (a / n) ** 2, 0.0) ** 0.5 / 255.0 for a, b in zip(s1, s2)]
    check(list(attrs[0]["train_mean"]) == exact_mean and list(attrs[0]["train_std"]) == exact_std,
          f"train_mean/train_std are the exact-sum formula: {attrs[0]['train_mean']} {attrs[0]['train_std']}")
    f = px / 255.0
    err = max(np.abs(f.mean(0) - attrs[0]["train_mean"]).max(), np.abs(f.std(0) - attrs[0]["train_std"]).max())
    check(err < STAT_TOL, f"train_mean/train_std equal numpy's within {STAT_TOL} (worst {err:.2e})")
    check(all(np.array_equal(a["train_mean"], attrs[0]["train_mean"]) for a in attrs), "same train_mean in every shard")
    print(f"  --size {size}: {len(tr)} train + {len(te)} test images equal to PIL; stats error {err:.1e}")


def check_grey16_deviation():
    """PIL's own convert('RGB') of the 16-bit greyscale PNG clips (the reason for the deviation)."""
    p = os.path.join(TREE, "dog/grey16.png")
    with Image.open(p) as im:
        clipped = np.asarray(im.convert("RGB"))[:, :, 0]
        raw = np.asarray(im)
    check(np.array_equal(clipped, np.minimum(raw, 255)), "PIL 9.4 clips 16-bit greyscale at 255 in convert('RGB')")


with tempfile.TemporaryDirectory() as work:
    rng = np.random.default_rng(26)
    TREE = os.path.join(work, "full")
    os.makedirs(TREE)
    GOOD = make_good(TREE, rng, os.path.join(work, "extra"))
    BAD, GOOD_IN_BIRD = make_bad(TREE, rng)
    GOOD[GOOD_IN_BIRD] = ""
    check_default_stops(work, rng)
    # whole tree, default: stops at the first bad entry in scan order (bird/ sorts first)
    r = run(CONV, "--input", TREE, "--output", os.path.join(work, "o"), "--shards", 2, "--quiet")
    check(r.returncode == 1 and f"{TREE}/bird/" in r.stderr and not os.path.exists(os.path.join(work, "o")),
          f"whole tree without --skip-bad stops: {r.stderr.strip()}")
    for size in (None, S):
        out = os.path.join(work, f"out-{size}")
        extra = ["--size", size] if size else []
        r = run(CONV, "--input", TREE, "--output", out, "--shards", 2, "--val-fraction", FRACTION, "--skip-bad",
                "--threads", 2, *extra)
        if not check(r.returncode == 0, f"--skip-bad conversion (--size {size}) succeeds: {r.stderr}"):
            continue
        check("note: ignored 2 files" in r.stderr, f"the note counts the ignored files: {r.stderr}")
        check(f"skipped {len(BAD)} bad files" in r.stderr, "the skipped count is reported")
        lines = open(os.path.join(out, "skipped.txt")).read().splitlines()
        listed = dict(line.split("\t", 1) for line in lines)
        check(sorted(listed) == sorted(BAD) and lines == sorted(lines), f"skipped.txt lists the bad entries, sorted: {lines}")
        check(all(BAD[p] in listed.get(p, "") for p in BAD), f"skipped.txt reasons: {listed}")
        check_format(out, "fixed" if size else "ragged", 5, len(BAD))
        check_pixels(out, GOOD, size)
    check_grey16_deviation()

check.finish("images-to-h5 on generated images")
