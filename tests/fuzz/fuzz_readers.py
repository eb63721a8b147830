#!/usr/bin/python3
"""Seeded mutations of real files through every command that reads them
(issue 23): a damaged file must give a clean error, never a crash.

    fuzz_readers.py FIXTURE_DIR --effnet EXE --data-check EXE [--cases N] [--seed S] [--keep DIR]

FIXTURE_DIR is ckpt_setup's (tests/ckpt/test_ckpt.py): run/last.h5 and the
shards in data/. Each case copies one file, changes 1-64 random bytes (one
case in eight truncates it instead), and runs the commands that open it:

  checkpoint (as written: with the checksum header)   ckpt info, ckpt stats,
  checkpoint without the header (an older effnet's,   ckpt diff, eval
    or h5py-written: HDF5 parses it unprotected)
  a shard (train or test), the shard index            eval, effnet-data-check

A case fails when a command dies by a signal (a crash), prints a sanitizer
report, exits non-zero without an "error" line, or -- for the checkpoint
with the header, where every change must be caught -- exits 0. The failing
file is kept (--keep, default a temporary directory that is printed) with
the command to reproduce it. N cases per target (default 12: the CI pass;
tests/soak/ runs thousands)."""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile

USERBLOCK, MAGIC = 512, b'effnet-checkpoint-sha256 1\n'


def mutate(data, rng):
    """1-64 changed bytes at random offsets, or (1 in 8) a truncation."""
    b = bytearray(data)
    if rng.random() < 0.125:
        return bytes(b[:rng.randrange(0, len(b))]), 'truncated'
    n = rng.randint(1, 64)
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= rng.randint(1, 255)  # never 0: every chosen byte changes
    return bytes(b), f'{n} bytes changed'


def run(cmd, env):
    try:
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors='replace', env=env,
                           timeout=120)
    except subprocess.TimeoutExpired:
        return 'hang', 'timed out after 120 s'
    err = r.stderr
    if r.returncode < 0 or r.returncode >= 128:
        return 'crash', f'exit {r.returncode} (signal)\n{err[-800:]}'
    if 'Sanitizer' in err or 'runtime error:' in err:
        return 'crash', f'sanitizer report\n{err[-1500:]}'
    if r.returncode != 0:
        return ('refused', err) if 'error' in err else ('silent', f'exit {r.returncode} without an error line\n{err[-800:]}')
    return 'accepted', ''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('fixture')
    ap.add_argument('--effnet', required=True)
    ap.add_argument('--data-check', required=True)
    ap.add_argument('--cases', type=int, default=12)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--keep')
    a = ap.parse_args()
    last, data = os.path.join(a.fixture, 'run', 'last.h5'), os.path.join(a.fixture, 'data')
    sealed = open(last, 'rb').read()
    if not sealed.startswith(MAGIC):
        sys.exit(f'{last} has no checksum header: run the ckpt_setup fixture with this build')
    keep = a.keep or tempfile.mkdtemp(prefix='effnet-fuzz-')
    work = tempfile.mkdtemp(prefix='effnet-fuzz-work-')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    rng = random.Random(a.seed)
    shards = sorted(f for f in os.listdir(data) if f.endswith('.h5')) + ['index.txt']

    def ckpt_cmds(p):
        return [[a.effnet, 'ckpt', 'info', p], [a.effnet, 'ckpt', 'stats', p], [a.effnet, 'ckpt', 'diff', last, p],
                [a.effnet, 'eval', '--checkpoint', p, '--data', data, '--subset', '16', '--threads', '1']]

    targets = {
        'checkpoint': (lambda: ('last.h5', sealed), ckpt_cmds, True),
        'checkpoint-no-header': (lambda: ('last.h5', sealed[USERBLOCK:]), ckpt_cmds, False),
        'shard': (lambda: (lambda f: (f, open(os.path.join(data, f), 'rb').read()))(rng.choice(shards)),
                  lambda d: [[a.effnet, 'eval', '--checkpoint', last, '--data', d, '--subset', '16', '--threads', '1'],
                             [a.data_check, os.path.join(d, 'index.txt'), '--split', 'all']], False),
    }
    counts, bad = {}, []
    for name, (pick, cmds, must_refuse) in targets.items():
        for case in range(a.cases):
            fname, orig = pick()
            blob, how = mutate(orig, rng)
            d = os.path.join(work, f'{name}-{case}')
            if name == 'shard':
                shutil.copytree(data, d)
                target = os.path.join(d, fname)
            else:
                os.makedirs(d)
                target = os.path.join(d, fname)
            with open(target, 'wb') as f:
                f.write(blob)
            for cmd in cmds(d if name == 'shard' else target):
                verdict, detail = run(cmd, env)
                if must_refuse and verdict == 'accepted':
                    verdict, detail = 'missed', 'exit 0 on a damaged file with a checksum header'
                counts[(name, verdict)] = counts.get((name, verdict), 0) + 1
                if verdict in ('crash', 'hang', 'silent', 'missed'):
                    kept = os.path.join(keep, f'{name}-{case}')
                    shutil.copytree(d, kept, dirs_exist_ok=True)
                    bad.append(f'{name} case {case} ({fname}, {how}): {verdict}: '
                               f'{" ".join(map(str, cmd)).replace(d, kept)}\n  {detail.strip()[:1500]}')
            shutil.rmtree(d)
    shutil.rmtree(work)
    print(f'{"target":22} {"refused":>8} {"accepted":>9} {"crash":>6} {"other":>6}')
    for name in targets:
        c = {v: counts.get((name, v), 0) for v in ('refused', 'accepted', 'crash', 'hang', 'silent', 'missed')}
        print(f'{name:22} {c["refused"]:8} {c["accepted"]:9} {c["crash"]:6} {c["hang"] + c["silent"] + c["missed"]:6}')
    for b in bad:
        print('FAIL', b)
    if not bad and not a.keep:
        shutil.rmtree(keep)
    print(f'{a.cases} cases per target, seed {a.seed}: {len(bad)} failure(s)' + (f'; files kept in {keep}' if bad else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
