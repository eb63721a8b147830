#!/usr/bin/python3
"""images-to-h5 on ../shared/data/cifar10-jpeg.tar.gz (CIFAR-10 as an image
folder: train/<class>/NNNN.jpg, test/<class>/NNNN.jpg) against the binary
CIFAR-10 records made from the same archive by prepare_cifar10.sh.

The record order of the binary files (pack_cifar10_bin.py): the class-sorted,
file-sorted list of a split, permuted by numpy default_rng(20091231) (train)
or default_rng(20100101) (test). images-to-h5 stores a split in ImageFolder
order, which is that same sorted list, so binary record j is our sample
perm[j]. Labels and pixels must be IDENTICAL, not within one grey level: both
paths decode the same JPEG files with the same library and settings -- PIL
(which wrote the binary records) calls the system libjpeg-turbo (Debian's
python3-pil links libjpeg.so.62) with its defaults (integer ISLOW IDCT, fancy
upsampling), exactly what images-to-h5 does; the IDCT and upsampling are
integer arithmetic, so there is no rounding to differ. (A PIL built on another
JPEG library, e.g. IJG libjpeg 9 with its DCT-domain upsampling, could differ
by a grey level; this test would then say so.)

Converted twice: without --size (ragged layout, images 32x32 as stored) and
with --size 32 (fixed layout: Resize(32) of a 32x32 image is the identity).
A third conversion is interrupted with SIGINT: it must leave nothing behind.

Skipped (exit 77) when the archive is absent.
usage: test_images_cifar10.py IMAGES_TO_H5 SHARED_DATA_DIR
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CONV, SHARED = sys.argv[1], sys.argv[2]
ARCHIVE = os.path.join(SHARED, "cifar10-jpeg.tar.gz")
if not os.path.isfile(ARCHIVE):
    print(f"SKIP: {ARCHIVE} is absent; this test needs the CIFAR-10 JPEG archive of ../shared/data beside the project")
    sys.exit(77)

from images_common import Checks, leftovers, np, read_index, read_split, run  # noqa: E402

check = Checks()
SEEDS = {"train": 20091231, "test": 20100101}


def binary_dir():
    d = os.environ.get("CIFAR10_DIR", "")
    if d and os.path.isfile(os.path.join(d, "test_batch.bin")):
        return d
    script = os.path.join(SHARED, "prepare_cifar10.sh")
    target = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cifar-10-batches-bin")
    r = subprocess.run(["bash", script, target], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: {script} {target} failed: {r.stderr}", file=sys.stderr)
        sys.exit(1)
    return r.stdout.strip().splitlines()[-1]


def binary_split(src, split):
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(src, f), np.uint8).reshape(-1, 3073) for f in files])
    return raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), raw[:, 0].astype(np.int32)


def packer_order(tree, split):
    """pack_cifar10_bin.py's list before the shuffle: classes in its fixed order (= sorted), files sorted."""
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return [f"{split}/{c}/{f}" for c in classes for f in sorted(os.listdir(os.path.join(tree, split, c)))]


def compare(out, tree, src, layout):
    head, _ = read_index(out)
    check(head.get("layout") == layout and head.get("num_classes") == "10", f"{layout}: index layout, classes")
    for split in ("train", "test"):
        items, attrs = read_split(out, split)
        want_x, want_y = binary_split(src, split)
        n = len(want_y)
        check(len(items) == n, f"{layout} {split}: {len(items)} images, want {n}")
        if len(items) != n:
            continue
        check([s for s, _, _ in items] == packer_order(tree, split), f"{layout} {split}: sources in the packer's order")
        x = np.stack([img for _, _, img in items])
        y = np.array([lab for _, lab, _ in items], np.int32)
        perm = np.random.default_rng(SEEDS[split]).permutation(n)
        check(np.array_equal(y[perm], want_y), f"{layout} {split}: labels equal the binary records, record for record")
        same = x.shape == want_x.shape and np.array_equal(x[perm], want_x)
        worst = 0 if same else int(np.abs(x[perm].astype(int) - want_x).max()) if x.shape == want_x.shape else -1
        check(same, f"{layout} {split}: pixels identical to the binary records (max difference {worst})")
        print(f"  {layout} {split}: {n} images, labels and pixels identical to the binary records")


def interrupted(tree, work):
    out = os.path.join(work, "cut")
    p = subprocess.Popen([CONV, "--input", tree, "--output", out, "--shards", "4", "--threads", "2"],
                         stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    err = p.communicate()[1]
    if p.returncode == 0:
        print("  note: the conversion finished within 1 s, before SIGINT; the interruption was not exercised")
        return
    check(p.returncode == 1 and "interrupted by signal 2" in err, f"SIGINT stops the conversion: {err.strip()[-300:]}")
    check(not os.path.exists(out) and not leftovers(work, "cut"), "an interrupted conversion leaves nothing behind")


def scratch():
    """/dev/shm when it has room: creating 60,000 files on this VM's disk took 7-47 s (load-dependent), 0.9 s there."""
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > (2 << 30) and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    except OSError:
        pass
    return None


with tempfile.TemporaryDirectory(dir=scratch()) as work:
    src = binary_dir()
    tree = os.path.join(work, "cifar10")
    t0 = time.time()
    os.makedirs(tree)
    subprocess.run(["tar", "-xzf", ARCHIVE, "-C", tree], check=True)  # 5x faster than Python's tarfile here
    print(f"  extracted {ARCHIVE} in {time.time() - t0:.1f} s; binary records from {src}")
    for layout, extra in (("ragged", []), ("fixed", ["--size", 32])):
        out = os.path.join(work, f"h5-{layout}")
        t0 = time.time()
        r = run(CONV, "--input", tree, "--output", out, "--shards", 4, "--quiet", *extra)
        print(f"  {layout}: converted in {time.time() - t0:.1f} s")
        if check(r.returncode == 0, f"{layout} conversion: {r.stderr}"):
            compare(out, tree, src, layout)
        shutil.rmtree(out, ignore_errors=True)
    interrupted(tree, work)

check.finish("images-to-h5 on CIFAR-10 JPEGs vs the binary records")
