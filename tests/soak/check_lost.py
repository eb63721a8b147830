#!/usr/bin/python3
"""check_lost.py OUTPUT_DIR EFFNET [--reference FILE] [--file last.h5]: was
anything lost?

"Nothing lost" (issue 23) means: the checkpoint that is there loads, its
SHA-256 is the one the run logged when it wrote the file (the latest
"checkpoint" row for it in metrics.jsonl), and -- with --reference, where
the project promises a bit-exact continuation -- its /model and /optimizer
equal the reference run's, bit for bit. Prints one line "lost=0 ..." or
"lost=1 <why>"; exits 0 or 1. A file that verifies but was never logged (the
writer died between the rename and the log line) prints lost=0 with a note."""
import argparse
import hashlib
import json
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('outdir')
    ap.add_argument('effnet')
    ap.add_argument('--file', default='last.h5')
    ap.add_argument('--reference')
    a = ap.parse_args()
    path = os.path.join(a.outdir, a.file)
    if not os.path.exists(path):
        print(f'lost=1 {path} does not exist')
        return 1
    r = subprocess.run([a.effnet, 'ckpt', 'info', path, '--json'], capture_output=True, text=True)
    if r.returncode != 0:
        print(f'lost=1 {path} does not load: {r.stderr.strip()[:300]}')
        return 1
    info = json.loads(r.stdout)
    with open(path, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    rows = []
    mpath = os.path.join(a.outdir, 'metrics.jsonl')
    if os.path.exists(mpath):
        for line in open(mpath, errors='replace'):
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if row.get('type') == 'checkpoint' and row.get('file') == a.file:
                rows.append(row)
    note = ''
    if not rows or rows[-1]['sha256'] != sha:
        if any(r['sha256'] == sha for r in rows[:-1]):
            print(f'lost=1 {a.file} is an older logged version (step {info["train"]["global_step"]}), not the '
                  f'latest logged one (step {rows[-1]["step"]})')
            return 1
        note = ' (verified, but its write was never logged: the writer died right after the rename)'
    if a.reference:
        import h5py
        import numpy as np
        x, y = h5py.File(path, 'r'), h5py.File(a.reference, 'r')
        for g in ('/model', '/optimizer'):
            kx, ky = [], []
            x[g].visititems(lambda k, o: kx.append(k) if isinstance(o, h5py.Dataset) else None)
            y[g].visititems(lambda k, o: ky.append(k) if isinstance(o, h5py.Dataset) else None)
            diff = [k for k in kx if kx != ky or not np.array_equal(x[g][k][()], y[g][k][()])]
            if kx != ky or diff:
                print(f'lost=1 {a.file} differs from the uninterrupted reference in {g}: {len(diff)} tensors, '
                      f'e.g. {diff[:3]}')
                return 1
        note += ', bit-identical to the uninterrupted run'
    print(f'lost=0 {a.file} at step {info["train"]["global_step"]} verifies (sha256 {sha[:16]}...){note}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
