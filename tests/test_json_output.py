#!/usr/bin/python3
"""Machine-readable output is valid JSON whatever the inputs are called (issue 17, 3).

    test_json_output.py --effnet EXE --converter EXE --src SRC --work DIR

Every command that takes --json (info, bench, bench-comm, eval, ckpt info,
ckpt stats, ckpt diff) and what `effnet train` writes (metrics.jsonl, the
output.trace files) runs on inputs whose names hold a quote, a backslash,
control characters and bytes that are not UTF-8 (invalid lead and
continuation bytes, an overlong form, a surrogate, a code point above
U+10FFFF, sequences cut short, one at the very end): the data directory,
the output directory (both also inside the checkpoint's config text), the
checkpoint paths, and an NCCL_* environment variable's name and value
(bench-comm records those). Each output must be one line, decode as strict
UTF-8 and parse with Python's json module, and each such string must come back
as Python's bytes.decode("utf-8", "replace") of the original: every maximal
invalid subpart is one U+FFFD, everything else is kept.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import check, failures  # noqa: E402

WEIRD = (b'q"uote b\\ack ctl\x01\x1f\x7f\ttab\nnl bad\xff\xfe lone\x80 overlong\xc0\xaf\xe0\x80\xaf '
         b'surrogate\xed\xa0\x80 big\xf4\x90\x80\x80 cut\xf0\x9f\x98 e\xcc\x81 ok\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 end\xe2\x82')
MPIRUN = ['mpirun', '--allow-run-as-root', '--oversubscribe', '--bind-to', 'none', '--mca', 'btl', 'self,vader',
          '--mca', 'btl_vader_single_copy_mechanism', 'none', '-x', 'OMP_NUM_THREADS=1']


def text(b):
    """What a JSON string built from the bytes b must read back as."""
    return b.decode('utf-8', 'replace')


def run(cmd, env=None, ok=True):
    r = subprocess.run([os.fsencode(c) if not isinstance(c, bytes) else c for c in cmd], capture_output=True, env=env,
                       timeout=600)
    if ok and r.returncode != 0:
        sys.stderr.write(r.stdout[-3000:].decode('utf-8', 'replace') + r.stderr[-3000:].decode('utf-8', 'replace'))
        raise SystemExit(f'command failed ({r.returncode}): {cmd!r}')
    return r


def parse_line(out, what):
    """out: a command's stdout whose last line is the JSON document."""
    line = out.rstrip(b'\n').split(b'\n')[-1]
    try:
        line.decode('utf-8')  # strict: json.loads(bytes) would also refuse
        d = json.loads(line)
    except ValueError as e:
        check(False, f'{what}: not valid JSON in UTF-8 ({e}): {line[:300]!r}')
        return None
    check(line.startswith(b'{') and line.endswith(b'}'), f'{what}: one JSON object on one line ({len(line)} bytes)')
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--effnet', required=True)
    ap.add_argument('--converter', required=True)
    ap.add_argument('--src', required=True)
    ap.add_argument('--work', required=True)
    a = ap.parse_args()
    work = os.fsencode(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environb, OMP_NUM_THREADS=b'1')
    data, out = work + b'/data ' + WEIRD, work + b'/run ' + WEIRD
    ckpt, copy = out + b'/last.h5', work + b'/' + WEIRD + b'.h5'
    effnet = os.fsencode(a.effnet)

    # ---- tiny data in a directory with the name
    run([sys.executable, os.path.join(a.src, 'tests/train/make_tiny_data.py'), work + b'/bin', '64'])
    run([a.converter, '--input', work + b'/bin', '--output', data, '--shards', '2', '--records-per-file', '64',
         '--quiet'])

    # ---- effnet info, bench: no free-form input, their output must parse all the same
    d = parse_line(run([effnet, 'info', '--json', '--model', 'efficientnet-b0']).stdout, 'info --json')
    check(d is not None and d['model'] == 'efficientnet-b0' and isinstance(d['width'], float), 'info --json fields')
    d = parse_line(run([effnet, 'bench', '--json', '--resolution', '32', '--batch', '2', '--steps', '1', '--threads', '1',
                        '--profile'], env=env).stdout, 'bench --json')
    check(d is not None and d['steps'] == 1 and d['img_per_s'] > 0 and len(d['profile_ms_per_step']) > 0,
          'bench --json fields')

    # ---- bench-comm: records NCCL_*/OMPI_MCA_*/UCX_* variables, name and value verbatim
    name, value = b'NCCL_EFFNET_TEST_' + WEIRD.replace(b'=', b''), b'v=' + WEIRD
    r = run([effnet, 'bench-comm', '--json', '--min-bytes', '8', '--max-bytes', '64', '--iters', '1', '--warmup', '0'],
            env={**env, name: value})
    d = parse_line(r.stdout, 'bench-comm --json')
    check(d is not None and d['environment'].get(text(name)) == text(value),
          f'bench-comm --json: the environment variable comes back as its UTF-8 reading ({text(name)!a})')
    check(d is not None and len(d['results']) == 8 and d['wrong_total'] == 0, 'bench-comm --json: 4 sizes x 2 calls')

    # ---- train: 2 ranks, 2 steps, traced, into the output directory with the name
    run(MPIRUN + ['-np', '2', effnet, 'train', '--config', os.path.join(a.src, 'configs/cpu-b0-32.ini'),
                  '--set', b'data.dir=' + data, '--set', b'output.dir=' + out, '--set', 'train.batch=8',
                  '--set', 'train.threads=1', '--set', 'output.log_interval=1', '--set', 'train.max_steps=2',
                  '--set', 'output.trace=true'], env=env)
    rows = []
    with open(out + b'/metrics.jsonl', 'rb') as f:
        for i, line in enumerate(f):
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                check(False, f'metrics.jsonl line {i + 1}: {e}: {line[:200]!r}')
    types = [r.get('type') for r in rows]
    check(types.count('train') == 2 and types.count('ranks') == 2 and
          types[-4:] == ['eval', 'checkpoint', 'checkpoint', 'summary'], f'metrics.jsonl: {len(rows)} lines parse, rows {types}')
    for r in (r for r in rows if r.get('type') == 'checkpoint'):  # what was written, as sha256sum sees it
        with open(out + b'/' + r['file'].encode(), 'rb') as f:
            blob = f.read()
        check(r['sha256'] == hashlib.sha256(blob).hexdigest() and r['bytes'] == len(blob) and r['step'] == 2,
              f"metrics.jsonl checkpoint row {r['file']}: sha256 and size match the file")
    for n in sorted(os.listdir(out)):
        if n.startswith(b'trace-rank'):
            try:
                ev = json.load(open(out + b'/' + n, 'rb'))
                check(len(ev) > 10 and ev[0]['name'] == 'process_name', f'{n.decode()}: {len(ev)} events parse')
            except ValueError as e:
                check(False, f'{n.decode()}: {e}')

    # ---- eval --json: the checkpoint path
    d = parse_line(run([effnet, 'eval', '--checkpoint', ckpt, '--data', data, '--json', '--batch', '16'], env=env).stdout,
                   'eval --json')
    check(d is not None and d['checkpoint'] == text(ckpt) and d['total'] == 64,
          'eval --json: "checkpoint" is the path as UTF-8 (U+FFFD for the bytes that are not)')

    # ---- ckpt info/stats/diff --json: file paths, and the config text that holds both directories
    shutil.copy(ckpt, copy)
    d = parse_line(run([effnet, 'ckpt', 'info', ckpt, '--json']).stdout, 'ckpt info --json')
    if d is not None:
        check(d['file'] == text(ckpt), 'ckpt info --json: "file" is the path')
        cfg = d['config']
        check(f'dir = {text(data)}\n' in cfg and f'dir = {text(out)}\n' in cfg,
              'ckpt info --json: the config text holds data.dir and output.dir, quote, backslash, control characters '
              'and all')
        check(d['train']['global_step'] == 2 and len(d['tensors']) == 328 and d['attributes']['world_size'] == '2',
              'ckpt info --json: training state and tensors')
    d = parse_line(run([effnet, 'ckpt', 'stats', copy, '--json']).stdout, 'ckpt stats --json')
    check(d is not None and d['file'] == text(copy) and len(d['tensors']) == 279, 'ckpt stats --json: "file" is the path')
    d = parse_line(run([effnet, 'ckpt', 'diff', ckpt, copy, '--json']).stdout, 'ckpt diff --json')
    check(d is not None and d['a'] == text(ckpt) and d['b'] == text(copy) and d['rel_change_params'] == 0
          and d['steps_apart'] == 0, 'ckpt diff --json: "a" and "b" are the paths; a copy differs by 0')

    # the replacement policy itself, on the name alone: maximal invalid subparts, as Python
    check('\ufffd' in text(WEIRD) and text(WEIRD).count('\ufffd') == 17 and 'ok\u00e9\u20ac\U0001F600' in text(WEIRD),
          f'the name has 17 invalid subparts and valid 2-, 3- and 4-byte characters: {text(WEIRD)!a}')
    if failures:
        print(f'{len(failures)} check(s) failed', file=sys.stderr)
        return 1
    print('PASS: every --json output, metrics.jsonl and the traces parse, names as UTF-8 with U+FFFD')
    return 0


if __name__ == '__main__':
    sys.exit(main())
