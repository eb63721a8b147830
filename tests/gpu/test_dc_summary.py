#!/usr/bin/python3
"""tests/gpu/dc_summary.py, the GPU check's summary.md, on made-up results:

  1. the per-op table: effnet's and PyTorch's TFLOP/s, GB/s and % of bound
     from the same GFLOP and MB, against hand-computed figures;
  2. the size limit: with 64 failing tests, long notes and a long
     environment table the summary stays under --limit (what comes back
     whole in the device machine's last 12,000 characters of output), and
     still names every failing test;
  3. a missing profile is said, not hidden.

    test_dc_summary.py   (no arguments)
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
fails = []


def check(ok, msg):
    if not ok:
        fails.append(msg)
        print('FAIL:', msg)


def summary(d, *args):
    r = subprocess.run([sys.executable, os.path.join(HERE, 'dc_summary.py'), d] + list(args), capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0, f'dc_summary.py exited {r.returncode}: {r.stderr[-400:]}')
    return r.stdout


def write_results(d, rows):
    with open(os.path.join(d, 'results.tsv'), 'w') as f:
        f.write('name\tkind\tstatus\trc\tseconds\tnote\n')
        for r in rows:
            f.write('\t'.join(str(x) for x in r) + '\n')


def row_of(text, first):
    for ln in text.splitlines():
        if ln.startswith(f'| {first} |'):
            return [c.strip() for c in ln.strip('|').split('|')]
    return None


def test_profile_math(d):
    write_results(d, [('effnet_prof', 'bench', 'pass', 0, 3.0, ''), ('torch_b0', 'bench', 'pass', 0, 9.0, '')])
    fams = ['stem conv', '1x1 conv', 'depthwise', 'batchnorm+swish', 'squeeze-excite', 'dropout/add', 'head/loss',
            'optimizer']
    roof = [{'family': f, 'ms': 1.0, 'gflop': 1.0, 'mb': 100.0, 'bound': 'memory'} for f in fams]
    # 1x1 conv: 1000 GFLOP and 20000 MB in 10 ms -> 100 TFLOP/s, 2000 GB/s; intensity 50 FLOP/B, so the memory
    # roof allows 50 x 3350 = 167.5 TFLOP/s (< 989.4): memory bound, 100 / 167.5 = 59.7 %. PyTorch 20 ms: half.
    roof[1] = {'family': '1x1 conv', 'ms': 10.0, 'gflop': 1000.0, 'mb': 20000.0, 'bound': 'memory'}
    json.dump({'roofline': roof, 'step_ms': 30.0, 'peaks': {'gflops': 989400.0, 'gbs': 3350.0,
               'source': 'H100 SXM datasheet', 'act_bytes': 2}}, open(os.path.join(d, 'effnet_prof.json'), 'w'))
    tms = {f: 2.0 for f in fams}
    tms['1x1 conv'] = 20.0
    tms['(other)'] = 0.5
    json.dump({'img_per_s': 1000, 'profile': {'steps': 2, 'time': 'CUDA kernel time', 'ms_per_step': tms,
                                              'total_ms_per_step': 34.5}}, open(os.path.join(d, 'torch_b0.json'), 'w'))
    t = summary(d, '--gpu', '--gpu-name', 'NVIDIA H100 80GB HBM3')
    r = row_of(t, '1x1 conv')
    check(r is not None, 'no 1x1 conv row in the per-op table')
    if r:
        # | op family | GFLOP | MB | effnet ms | PyTorch ms | eTFLOP/s | tTFLOP/s | eGB/s | tGB/s | e% | t% | bound |
        check(r[1:11] == ['1000.000', '20000.0', '10.00', '20.00', '100.00', '50.00', '2000', '1000', '59.7', '29.9'],
              f'1x1 conv row {r}')
    check('| op family | GFLOP | MB | effnet ms | PyTorch ms | effnet TFLOP/s | PyTorch TFLOP/s |' in t,
          'the table is not in TFLOP/s for a GPU roof')
    check('Roofs: 3350 GB/s, 989.4 TFLOP/s (H100 SXM datasheet)' in t, 'no roofs line')
    o = row_of(t, '(other)')
    # effnet's (other): its step minus its families, 30 - (7 x 1 + 10) = 13
    check(o is not None and o[3] == '13.00' and o[4] == '0.50', f'(other) row {o}')
    print('profile table: TFLOP/s, GB/s and % of bound as computed by hand')


def test_limit(d):
    rows = [('env_check', 'setup', 'pass', 0, 1.0, 'x' * 300)]
    rows += [(f'gpu_some_long_test_name_{i:02d}', 'test', 'fail', 1, 12.5, 'error: ' + 'y' * 400) for i in range(64)]
    rows += [(f'passing_{i}', 'test', 'pass', 0, 1.0, 'z' * 300) for i in range(20)]
    write_results(d, rows)
    with open(os.path.join(d, 'env_check.md'), 'w') as f:
        f.write('### Environment check (1.0 s): ok\n\n| what | needed | found | status | fix |\n|---|---|---|---|---|\n')
        for i in range(14):
            f.write(f'| lib{i} | libsomething.so.{i} | /usr/local/cuda-13.0/targets/x86_64-linux/lib/libsomething.so.{i}.2.3 '
                    f'| ok | |\n')
    t = summary(d, '--limit', '11000')
    check(len(t) <= 11001, f'summary is {len(t)} characters, over the 11,000 limit')  # + print's newline
    missing = [i for i in range(64) if f'gpu_some_long_test_name_{i:02d}' not in t]
    check(not missing, f'failing tests not named in the shortened summary: {missing[:5]}')
    check('64 FAILED' in t, 'the title does not count the failures')
    print(f'size limit: {len(t)} characters for 85 tests (64 failing, long notes)')
    t = summary(d, '--limit', '3000')  # far too small: cut, and says so
    check(len(t) <= 3001 and 'summary cut to 3000 characters' in t, f'a forced cut must say so ({len(t)} chars)')


def test_missing(d):
    write_results(d, [('effnet_prof', 'bench', 'fail', 139, 2.0, 'SIGSEGV')])
    t = summary(d, '--state', 'early', '--reason', 'SIGTERM')
    check('No profile:' in t and 'effnet_prof fail' in t, 'a missing profile is not reported')
    check('STOPPED EARLY (SIGTERM)' in t, 'the early state is not in the title')
    print('missing profile and early stop: reported')


def main():
    for fn in (test_profile_math, test_limit, test_missing):
        with tempfile.TemporaryDirectory() as d:
            fn(d)
    print('PASS: dc_summary' if not fails else f'FAIL: {len(fails)} problem(s)')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
