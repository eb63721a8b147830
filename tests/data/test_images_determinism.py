#!/usr/bin/python3
"""images-to-h5: same input, same bytes; the output directory's guarantees.

1. A generated DIR/<class>/ tree of 300 images (nested folders, JPEG and PNG)
   converted with --threads 1 and --threads 4 gives byte-identical shards,
   index.txt and classes.txt, in the ragged layout (3 shards, 64-image
   batches: several per shard) and with --size 16 (1 shard, 256-image
   batches: two).
2. The sample order is torchvision ImageFolder's, split by the --val-fraction
   rule, and the labels are ImageFolder's targets.
3. A second conversion onto the same OUT without --force is refused and
   leaves it untouched (checksums and mtimes); --force replaces it (same
   bytes, new files); --force refuses a directory we did not write; an output
   inside the input is refused; no OUT.tmp.* is left anywhere.

usage: test_images_determinism.py IMAGES_TO_H5
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from images_common import Checks, Image, in_test_split, leftovers, np, read_split, run, tree_state  # noqa: E402

CONV = sys.argv[1]
check = Checks()


def make_tree(d, rng):
    """300 small images in 3 classes, some in nested folders whose names test the path order."""
    subdirs = ["", "", "", "sub", "sub-x", "sub/deep", "Z"]
    for i in range(300):
        cls = ["ant", "bee", "wasp"][i % 3]
        sub = subdirs[rng.integers(0, len(subdirs))]
        folder = os.path.join(d, cls, sub)
        os.makedirs(folder, exist_ok=True)
        h, w = (int(v) for v in rng.integers(6, 40, 2))
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        if i % 2:
            im.save(os.path.join(folder, f"img{i:03d}.jpg"), quality=90)
        else:
            im.save(os.path.join(folder, f"img{i:03d}.png"))


def files(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


def check_threads(tree, work, name, extra):
    outs = []
    for threads in (1, 4):
        out = os.path.join(work, f"{name}-t{threads}")
        r = run(CONV, "--input", tree, "--output", out, "--threads", threads, "--quiet", *extra)
        check(r.returncode == 0, f"{name} --threads {threads}: {r.stderr}")
        outs.append(out)
    a, b = files(outs[0]), files(outs[1])
    check(list(a) == list(b), f"{name}: same file names {list(a)} / {list(b)}")
    diff = [n for n in a if a[n] != b.get(n)]
    check(not diff, f"{name}: --threads 1 and 4 give byte-identical files (differ: {diff})")
    print(f"  {name}: {len(a)} files, {sum(map(len, a.values()))} bytes, identical for --threads 1 and 4")
    return outs[0]


def check_order(tree, out):
    from torchvision.datasets import ImageFolder
    ref = ImageFolder(tree)
    samples = [(os.path.relpath(p, tree), t) for p, t in ref.samples]
    for split, in_test in (("train", False), ("test", True)):
        items, _ = read_split(out, split)
        got = [(s, lab) for s, lab, _ in items]
        want = [(s, t) for s, t in samples if in_test_split(s, 0.1) == in_test]
        check(got == want, f"{split}: sources and labels in ImageFolder's order ({len(got)} vs {len(want)})")


def check_output_guards(tree, work, out, args):
    before = tree_state(out)
    r = run(CONV, "--input", tree, "--output", out, *args)
    check(r.returncode == 1 and "already exists" in r.stderr and "--force" in r.stderr,
          f"a second conversion without --force is refused: {r.stderr.strip()}")
    check(tree_state(out) == before, "the refused conversion left OUT untouched (checksums and mtimes)")
    r = run(CONV, "--input", tree, "--output", out, "--force", *args)
    check(r.returncode == 0, f"--force replaces OUT: {r.stderr}")
    after = tree_state(out)
    check({k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()},
          "the replacement has the same bytes (a second run reproduces the first)")
    check(all(after[k][1] != before[k][1] for k in before), "--force wrote new files")
    foreign = os.path.join(work, "foreign")
    os.makedirs(foreign)
    with open(os.path.join(foreign, "thesis.tex"), "w") as fh:
        fh.write("precious\n")
    r = run(CONV, "--input", tree, "--output", foreign, "--force", *args)
    check(r.returncode == 1 and "not a shard directory written by images-to-h5" in r.stderr and
          os.listdir(foreign) == ["thesis.tex"], f"--force refuses a directory we did not write: {r.stderr.strip()}")
    inner = os.path.join(tree, "ant", "shards")
    r = run(CONV, "--input", tree, "--output", inner, *args)
    check(r.returncode == 1 and "inside input" in r.stderr and not os.path.exists(inner),
          f"an output inside the input is refused: {r.stderr.strip()}")
    check(not leftovers(work, os.path.basename(out)) and not leftovers(os.path.join(tree, "ant"), "shards"),
          "no temporary directory left behind")


with tempfile.TemporaryDirectory() as work:
    tree = os.path.join(work, "bugs")
    make_tree(tree, np.random.default_rng(3))
    ragged = check_threads(tree, work, "ragged", ["--shards", 3])
    check_threads(tree, work, "fixed", ["--shards", 1, "--size", 16])
    check_order(tree, ragged)
    check_output_guards(tree, work, ragged, ["--shards", 3, "--quiet"])

check.finish("images-to-h5 determinism and output guards")
