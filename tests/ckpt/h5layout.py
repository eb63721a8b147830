#!/usr/bin/env python3
"""h5layout.py FILE [--drop-new]: an HDF5 checkpoint's layout without values:
every group and dataset (type class, shape) and every attribute (name, type
class), one per line, sorted. --drop-new leaves out the optional /train
attributes added after schema version 1 was first written (elastic resume's
batch split), so a new file can be compared with a committed listing of an
older one (tests/ckpt/layout-v1.txt, written by effnet 0.1.0 at 09f0260)."""
import sys
import h5py

NEW = {"/train@batch_per_rank", "/train@accum", "/train@global_batch", "/@hosts"}


def kind(t):
    return {0: "int", 1: "float", 3: "string"}.get(t.get_class(), f"class{t.get_class()}")


def attrs(lines, name, obj):
    for a in obj.attrs:
        lines.append(f"{name}@{a} {kind(obj.attrs.get_id(a).get_type())}")


def layout(path, drop_new):
    lines = []
    with h5py.File(path, "r") as f:
        attrs(lines, "/", f)

        def visit(name, obj):
            p = "/" + name
            if isinstance(obj, h5py.Dataset):
                lines.append(f"{p} dataset {kind(obj.id.get_type())} {list(obj.shape)}")
            else:
                lines.append(f"{p} group")
            attrs(lines, p, obj)
        f.visititems(visit)
    if drop_new:
        lines = [l for l in lines if l.split(" ")[0] not in NEW]
    return sorted(lines)


if __name__ == "__main__":
    print("\n".join(layout(sys.argv[1], "--drop-new" in sys.argv[2:])))
