#!/usr/bin/python3
"""Checkpoints interchange with PyTorch, both ways (docs/checkpoint-format.md).

    test_checkpoint_pytorch.py TEST_CHECKPOINT_EXE REFERENCE_DIR

1. C -> PyTorch: the C side saves efficientnet-b0 with random weights and
   non-trivial BN state, and its eval-mode logits on a fixed input. We check
   the header, /train, /optimizer (keys and shapes match named_parameters),
   dtypes, then load /model into tests/reference/effnet_ref.py's module with
   load_state_dict(strict=True) and compare eval logits (rel err <= 2e-6).
2. PyTorch -> C: a PyTorch state_dict (random BN state, num_batches_tracked
   11) written in our layout with only the header and /model; the C side
   peeks, loads and reproduces PyTorch's eval logits (rel err <= 2e-6) and
   num_batches_tracked.
B0 at 32x32, batch 2.
"""
import os
import re
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn as nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import check, failures  # noqa: E402

MODEL, RES, BATCH, CLASSES = 'efficientnet-b0', 32, 2, 10
# Eval logits of two fp32 implementations (OpenBLAS GEMMs vs PyTorch's convs) from bit-identical weights:
# measured worst 3.5e-7 over 6 seeds x both directions x {default OpenBLAS kernel, Haswell} (this CPU, AMD EPYC,
# 2026-12-02); 2e-6 is 5.6x that. Was 1e-4 (300x the noise); a wrong tensor mapping gives O(1).
TOL = 2e-6


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def state_dict_from_h5(path):
    """The 6 lines docs/checkpoint-format.md shows."""
    with h5py.File(path, 'r') as f:
        return {k: torch.from_numpy(np.asarray(d[()])) for k, d in f['model'].items()}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f'command failed ({r.returncode}): {" ".join(cmd)}')
    return r.stdout


def main():
    exe, refdir = sys.argv[1], sys.argv[2]
    sys.path.insert(0, refdir)
    import effnet_ref  # noqa: E402

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(BATCH, 3, RES, RES)
    with tempfile.TemporaryDirectory(prefix='ckpt-pt-') as tmp:
        inp = os.path.join(tmp, 'input.h5')
        with h5py.File(inp, 'w') as f:
            f['input'] = x.permute(0, 2, 3, 1).contiguous().numpy()  # NHWC, as the C model reads

        # ---- 1. C -> PyTorch
        ck, out = os.path.join(tmp, 'c.h5'), os.path.join(tmp, 'c_logits.h5')
        run([exe, 'write-random', ck, '1234', inp, out])
        with h5py.File(out, 'r') as f:
            c_logits = f['logits'][()]
        model = effnet_ref.build(MODEL, CLASSES)
        params = dict(model.named_parameters())
        with h5py.File(ck, 'r') as f:
            # string attributes are fixed-length UTF-8 (no global heap): h5py gives bytes
            a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            check(a['format'] == 'effnet-checkpoint' and int(a['schema_version']) == 1,
                  f"header format={a['format']!r} schema_version={a['schema_version']}")
            check(a['model'] == MODEL and int(a['classes']) == CLASSES and int(a['resolution']) == RES,
                  f"header model={a['model']} classes={a['classes']} resolution={a['resolution']}")
            check(re.fullmatch(r'\d+\.\d+\.\d+', a['hdf5_version']) is not None,
                  f"hdf5_version {a['hdf5_version']} (h5py's library: {h5py.version.hdf5_version})")
            check(a['config'].startswith('[model]') and a['git_commit'] == 'test' and a['created'].endswith('Z'),
                  'config text and provenance attributes')
            t = f['train'].attrs
            check(int(t['global_step']) == 5 and int(t['seed']) == 1234 and int(t['world_size']) == 1
                  and abs(float(t['lr']) - 1e-3) < 1e-15,  # exact in effect: the double 1e-3 round-trips through HDF5
                  f"/train attributes {dict(t)}")
            o = f['optimizer']
            check(o.attrs['name'] == b'adam' and int(o.attrs['step']) == 5, f"/optimizer attrs {dict(o.attrs)}")
            for group in ('exp_avg', 'exp_avg_sq'):
                shapes = {k: tuple(d.shape) for k, d in o[group].items()}
                want = {k: tuple(p.shape) for k, p in params.items()}
                check(shapes == want, f'/optimizer/{group} keys and shapes == named_parameters')
            m = f['model']
            check(m['stem.0.weight'].dtype == np.dtype('<f4') and m['stem.1.num_batches_tracked'].dtype == np.int64
                  and m['stem.1.num_batches_tracked'].shape == (),
                  'tensors float32, num_batches_tracked int64 scalars')
        sd = state_dict_from_h5(ck)
        result = model.load_state_dict(sd, strict=True)
        check(not result.missing_keys and not result.unexpected_keys, 'load_state_dict(strict=True)')
        check(int(sd['head.1.num_batches_tracked']) == 3, 'num_batches_tracked == 3')
        model.eval()
        with torch.no_grad():
            pt_logits = model(x).numpy()
        e = rel_err(c_logits, pt_logits)
        check(e <= TOL, f'C -> PyTorch: eval logits rel err {e:.3e} (<= {TOL})')
        # Non-trivial: a state_dict that differs (default init) gives other logits.
        with torch.no_grad():
            e0 = rel_err(c_logits, effnet_ref.build(MODEL, CLASSES).eval()(x).numpy())
        check(e0 > 1e-2, f'sanity: an untrained model differs (rel err {e0:.2f})')  # measured 3.1-4.7: O(1), far above TOL

        # ---- 2. PyTorch -> C
        torch.manual_seed(7)
        model = effnet_ref.build(MODEL, CLASSES)
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)
                    mod.running_mean.normal_(0.0, 0.1)
                    mod.running_var.uniform_(0.5, 1.5)
                    mod.num_batches_tracked.fill_(11)
        model.eval()
        with torch.no_grad():
            pt_logits = model(x).numpy()
        py = os.path.join(tmp, 'py.h5')
        with h5py.File(py, 'w') as f:
            f.attrs.update({'format': 'effnet-checkpoint', 'schema_version': 1, 'model': MODEL,
                            'classes': CLASSES, 'resolution': RES})
            for k, v in model.state_dict().items():
                f.create_dataset(f'model/{k}', data=v.numpy())
        out2 = os.path.join(tmp, 'py_logits.h5')
        print(run([exe, 'eval', py, inp, out2]).strip())
        with h5py.File(out2, 'r') as f:
            c_logits, nbt = f['logits'][()], int(f['num_batches_tracked'][()])
        e = rel_err(c_logits, pt_logits)
        check(e <= TOL, f'PyTorch -> C: eval logits rel err {e:.3e} (<= {TOL})')
        check(nbt == 11, f'PyTorch -> C: num_batches_tracked {nbt} == 11')

    print(f'test_checkpoint_pytorch: {len(failures)} failed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
