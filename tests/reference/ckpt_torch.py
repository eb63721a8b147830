#!/usr/bin/python3
"""Move weights between effnet's HDF5 checkpoints and PyTorch.

    ckpt_torch.py export CKPT.h5 OUT.pt
        Load CKPT.h5's /model into tests/reference/effnet_ref.py's module with
        load_state_dict(strict=True) and torch.save its state_dict to OUT.pt.

    ckpt_torch.py import STATE.pt OUT.h5 --model NAME [--resolution R]
        Write a PyTorch state_dict (torch.save(model.state_dict(), ...)) as an
        effnet checkpoint: the root header and /model, as
        docs/checkpoint-format.md specifies, which `effnet eval`, `effnet ckpt`
        and fine-tuning accept. The state_dict is first loaded into
        effnet_ref.build(NAME, classes) with strict=True, so a wrong model,
        missing or extra keys, or wrong shapes are refused before anything is
        written. Classes come from classifier.1.weight; --resolution defaults to
        the model's own (224 for B0). Written to OUT.h5.tmp.<pid>, then renamed.

Needs h5py, numpy and torch (Debian: python3-h5py python3-torch).
Exit codes: 0 done, 1 error (message names the file), 2 usage.
See docs/checkpoint-tools.md.
"""
import argparse
import datetime
import hashlib
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import effnet_ref  # noqa: E402

FORMAT, SCHEMA = 'effnet-checkpoint', 1


class ToolError(Exception):
    pass


def _str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


USERBLOCK, MAGIC = 512, b'effnet-checkpoint-sha256 1\n'


def verify_checksum(path):
    """The checksum header effnet writes (docs/checkpoint-format.md): the
    SHA-256 and length of everything after the first 512 bytes. Files without
    it (older effnet, h5py-written) pass unchecked."""
    with open(path, 'rb') as fh:
        head = fh.read(USERBLOCK)
        if not head.startswith(MAGIC):
            return
        fields = dict(line.split(' ', 1) for line in head[len(MAGIC):].rstrip(b'\0').decode('ascii', 'replace').split('\n') if ' ' in line)
        digest, n = hashlib.sha256(), 0
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
            n += len(chunk)
    hint = "HINT: the file was damaged on disk or in a copy; use another checkpoint (best.h5, or an earlier one)"
    if str(n) != fields.get('bytes') or digest.hexdigest() != fields.get('sha256'):
        raise ToolError(f"checkpoint '{path}' is damaged or truncated: {n} bytes after the checksum header with "
                        f"SHA-256 {digest.hexdigest()[:16]}..., written as {fields.get('bytes')} bytes with "
                        f"{str(fields.get('sha256'))[:16]}...\n{hint}")


def seal(path):
    """Fill the user block (h5py leaves it zero) with effnet's checksum header."""
    with open(path, 'r+b') as fh:
        if fh.read(USERBLOCK) != bytes(USERBLOCK):
            raise ToolError(f"'{path}': the HDF5 user block is not empty")
        digest, n = hashlib.sha256(), 0
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
            n += len(chunk)
        head = MAGIC + f'sha256 {digest.hexdigest()}\nbytes {n}\n'.encode()
        fh.seek(0)
        fh.write(head + bytes(USERBLOCK - len(head)))


def read_checkpoint(path):
    """(model name, classes, resolution, state_dict of torch tensors)."""
    if not os.path.isfile(path):
        raise ToolError(f"checkpoint '{path}' not found (or not a file)")
    verify_checksum(path)
    try:
        f = h5py.File(path, 'r')
    except OSError as e:
        raise ToolError(f"cannot open checkpoint '{path}': {e}\nHINT: the file is not HDF5, or truncated or damaged")
    with f:
        a = f.attrs
        if _str(a.get('format', '')) != FORMAT:
            raise ToolError(f"'{path}' is not an effnet checkpoint (root attribute 'format' is "
                            f"{_str(a.get('format', '(missing)'))!r}, expected {FORMAT!r})")
        if int(a.get('schema_version', -1)) != SCHEMA:
            raise ToolError(f"checkpoint '{path}' has schema version {a.get('schema_version')}; this tool reads {SCHEMA}")
        model, classes, res = _str(a['model']), int(a['classes']), int(a['resolution'])
        if 'model' not in f or not isinstance(f['model'], h5py.Group):
            raise ToolError(f"checkpoint '{path}' has no group /model")
        sd = {}
        for k, d in f['model'].items():
            try:
                sd[k] = torch.from_numpy(np.array(d[()]))
            except OSError as e:
                raise ToolError(f"reading tensor '/model/{k}' from '{path}' failed: {e}\nHINT: the file is damaged")
    return model, classes, res, sd


def build_and_load(model, classes, sd, source, hint):
    if model not in effnet_ref.CONFIGS:
        raise ToolError(f"{source}: unknown model '{model}' (want one of {', '.join(effnet_ref.CONFIGS)})")
    net = effnet_ref.build(model, classes)
    want = net.state_dict()
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    shapes = [f'{k} {tuple(sd[k].shape)} (want {tuple(v.shape)})' for k, v in want.items()
              if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    problems = [f'{len(x)} {what}: {", ".join(x[:3])}{", ..." if len(x) > 3 else ""}'
                for x, what in ((missing, 'missing'), (unexpected, 'unexpected'), (shapes, 'wrong shape')) if x]
    if problems:
        raise ToolError(f"{source} does not fit {model} with {classes} classes (state_dict keys: {len(sd)}, "
                        f"{model}'s: {len(want)}):\n  " + "\n  ".join(problems) +
                        "\nHINT: " + hint)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # e.g. a dtype that cannot be copied
        raise ToolError(f"{source}: load_state_dict(strict=True) into {model} failed: {e}")
    return net


def atomic_write(out, write):
    """write(tmp_path), then rename onto out; the temporary file is removed on failure."""
    tmp = f'{out}.tmp.{os.getpid()}'
    try:
        write(tmp)
        with open(tmp, 'rb+') as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cmd_export(args):
    model, classes, _res, sd = read_checkpoint(args.ckpt)
    net = build_and_load(model, classes, sd, f"checkpoint '{args.ckpt}'",
                         'the file is incomplete or was edited; use another checkpoint (best.h5 or an earlier one)')
    state = net.state_dict()
    atomic_write(args.out, lambda tmp: torch.save(state, tmp))
    print(f'export: {args.ckpt} ({model}, {classes} classes, {len(state)} tensors) -> {args.out}')


def cmd_import(args):
    try:
        obj = torch.load(args.state, map_location='cpu')
    except Exception as e:  # torch raises many kinds (pickle, zip, EOF)
        raise ToolError(f"cannot load '{args.state}' with torch.load: {e}")
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ToolError(f"'{args.state}' does not hold a state_dict (a dict of tensors)\n"
                        "HINT: save it with torch.save(model.state_dict(), PATH)")
    if 'classifier.1.weight' not in obj:
        raise ToolError(f"'{args.state}' has no 'classifier.1.weight': not a state_dict of tests/reference/effnet_ref.py")
    classes = int(obj['classifier.1.weight'].shape[0])
    net = build_and_load(args.model, classes, obj, f"state_dict '{args.state}'",
                         'pass the model the weights were trained as (--model efficientnet-b0 .. b7)')
    res = args.resolution or effnet_ref.CONFIGS[args.model][2]
    state = net.state_dict()  # the module's order; the strict load checked the keys
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ToolError(f"'{args.state}': tensor '{k}' has a NaN or Inf; effnet refuses such a model")

    def text(f, name, value):  # as effnet writes strings: fixed-length UTF-8, no global heap
        b = value.encode()
        f.attrs.create(name, np.array(b, dtype=f'S{max(len(b), 1)}'), dtype=h5py.string_dtype('utf-8', max(len(b), 1)))

    def write(tmp):
        with h5py.File(tmp, 'w', libver='earliest', userblock_size=USERBLOCK) as f:
            text(f, 'format', FORMAT)
            f.attrs['schema_version'] = np.int64(SCHEMA)
            text(f, 'model', args.model)
            f.attrs['classes'] = np.int64(classes)
            f.attrs['resolution'] = np.int64(res)
            text(f, 'created', datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'))
            text(f, 'config', '')
            text(f, 'hdf5_version', str(h5py.version.hdf5_version))
            text(f, 'source', f'pytorch state_dict {os.path.basename(args.state)} (ckpt_torch.py import)')
            text(f, 'torch_version', str(torch.__version__))
            g = f.create_group('model')
            for k, v in state.items():
                if k.endswith('num_batches_tracked'):
                    g.create_dataset(k, data=np.int64(v.item()), dtype='<i8')
                else:
                    a = v.detach().to(torch.float32).contiguous().numpy()
                    # as effnet writes: float32, one chunk per tensor, Fletcher-32
                    g.create_dataset(k, data=a, dtype='<f4', chunks=a.shape if a.ndim else None,
                                     fletcher32=a.ndim > 0)
        seal(tmp)
    atomic_write(args.out, write)
    print(f'import: {args.state} ({args.model}, {classes} classes, resolution {res}, {len(state)} tensors) -> {args.out}')


def main(argv):
    p = argparse.ArgumentParser(prog='ckpt_torch.py', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    e = sub.add_parser('export', help='effnet checkpoint -> PyTorch state_dict (.pt)')
    e.add_argument('ckpt')
    e.add_argument('out')
    i = sub.add_parser('import', help='PyTorch state_dict (.pt) -> effnet checkpoint (.h5)')
    i.add_argument('state')
    i.add_argument('out')
    i.add_argument('--model', required=True, choices=list(effnet_ref.CONFIGS))
    i.add_argument('--resolution', type=int, default=0, help="resolution to record (default: the model's own)")
    args = p.parse_args(argv[1:])
    if args.cmd == 'import' and args.resolution < 0:
        p.error('--resolution must be positive')
    try:
        (cmd_export if args.cmd == 'export' else cmd_import)(args)
    except ToolError as err:
        print(f'ckpt_torch.py: error: {err}', file=sys.stderr)
        return 1
    except OSError as err:  # writing OUT: missing directory, disk full, permissions
        print(f'ckpt_torch.py: error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
