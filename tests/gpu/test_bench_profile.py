#!/usr/bin/python3
"""`effnet bench --profile` on the CPU backend: the per-op-family table the GPU
check reads (the same code prints it for --backend cuda, with the device's
datasheet roofs). With fixed roofs (--peak-gflops 1000 --peak-gbs 100):

  - JSON: 8 families in effnet's order, each with ms, GFLOP, MB and the
    achieved GFLOP/s = GFLOP / s, GB/s = MB / ms, the fractions of each roof
    and of the family's bound min(roof, intensity x bandwidth), all consistent
    with each other within the rounding of the printed numbers; the roofs and
    their source; profile_ms_per_step equal to the roofline's ms;
  - text: the roofline table's GFLOP/s and GB/s columns are GFLOP / ms and
    MB / ms of its own row, within the printed rounding.

    test_bench_profile.py EFFNET
"""
import json
import re
import subprocess
import sys

FAMILIES = ['stem conv', '1x1 conv', 'depthwise', 'batchnorm+swish', 'squeeze-excite', 'dropout/add',
            'head/loss', 'optimizer']
ARGS = ['bench', '--model', 'efficientnet-b0', '--resolution', '32', '--batch', '2', '--steps', '2', '--warmup', '1',
        '--threads', '1', '--profile', '--peak-gflops', '1000', '--peak-gbs', '100']
fails = []


def check(ok, msg):
    if not ok:
        fails.append(msg)
        print('FAIL:', msg)


def quotient_tol(num, den, q, dnum, dden, dq):
    """|printed q - printed num / printed den| allowed by the printing: num and
    den each off by up to dnum, dden (half a unit of their last digit), q by dq."""
    if den <= dden:
        return float('inf')
    return (dnum / (den - dden) + abs(num) * dden / (den * (den - dden))) * 1.01 + dq


def check_json(effnet):
    out = subprocess.run([effnet] + ARGS + ['--json'], capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, f'effnet bench --profile --json exited {out.returncode}: {out.stderr[-300:]}')
    d = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith('{')][-1])
    pk = d.get('peaks', {})
    check(pk.get('gflops') == 1000 and pk.get('gbs') == 100 and pk.get('act_bytes') == 4,
          f'peaks {pk}: want 1000 GFLOP/s, 100 GB/s, 4-byte activations')
    check('--peak-gflops' in pk.get('source', '') and '--peak-gbs' in pk.get('source', ''), f'source {pk.get("source")}')
    rows = d.get('roofline', [])
    check([r['family'] for r in rows] == FAMILIES, f'families {[r["family"] for r in rows]}')
    for r in rows:
        f, ms, g, mb = r['family'], r['ms'], r['gflop'], r['mb']
        check(abs(d['profile_ms_per_step'][f] - ms) <= 1e-3, f'{f}: profile_ms_per_step {d["profile_ms_per_step"][f]} '
              f'vs roofline ms {ms}')  # %.3f vs %.4f of the same number
        check(g > 0 and mb > 0 and ms > 0, f'{f}: gflop {g} mb {mb} ms {ms} must be positive')
        # printed: ms %.4f, gflop %.6f, mb %.4f, gflops / gbs %.3f, fractions %.5f
        gflops = g / (ms / 1e3)
        check(abs(r['gflops'] - gflops) <= quotient_tol(g, ms, 0, 5e-7, 5e-5, 0) * 1e3 + 5e-4,
              f'{f}: {r["gflops"]} GFLOP/s, want GFLOP/s {gflops:.4f}')
        check(abs(r['gbs'] - mb / ms) <= quotient_tol(mb, ms, mb / ms, 5e-5, 5e-5, 5e-4),
              f'{f}: {r["gbs"]} GB/s, want MB/ms {mb / ms:.4f}')
        check(abs(r['frac_gbs'] - r['gbs'] / 100) <= 1e-5 + 5e-6, f'{f}: frac_gbs {r["frac_gbs"]} vs {r["gbs"]} / 100')
        check(abs(r['frac_flops'] - r['gflops'] / 1000) <= 1e-5 + 5e-6, f'{f}: frac_flops {r["frac_flops"]}')
        ai = g * 1e9 / (mb * 1e6)
        bound = min(1000.0, ai * 100)
        want = 'memory' if ai * 100 < 1000 else 'compute'
        check(r['bound'] == want, f'{f}: bound {r["bound"]}, intensity {ai:.3f} FLOP/B says {want}')
        rel = 5e-7 / g + 5e-5 / mb  # intensity's relative rounding from the printed GFLOP and MB
        check(abs(r['frac_bound'] - r['gflops'] / bound) <= (r['gflops'] / bound) * (rel + 1e-5) + 1e-5,
              f'{f}: frac_bound {r["frac_bound"]} vs {r["gflops"]} / {bound:.3f}')
    print(f'json: {len(rows)} families consistent; 1x1 conv {rows[1]["gflops"]} GFLOP/s {rows[1]["gbs"]} GB/s')


def check_text(effnet):
    out = subprocess.run([effnet] + ARGS, capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, f'effnet bench --profile exited {out.returncode}: {out.stderr[-300:]}')
    lines = out.stdout.splitlines()
    head = [i for i, ln in enumerate(lines) if ln.startswith('roofline (per step')]
    check(len(head) == 1 and 'roofs: 1000.0 GFLOP/s, 100.0 GB/s' in lines[head[0]], 'no roofline header with the roofs')
    if not head:
        return
    check(lines[head[0] + 1].split() == ['op', 'family', 'ms', 'GFLOP', 'MB', 'GFLOP/s', 'GB/s', 'flop/B', '%FLOP',
                                          '%GB/s', 'of', 'its', 'bound'], f'table header: {lines[head[0] + 1]}')
    row = re.compile(r'^  (.{16}) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)% +([\d.]+)% +'
                     r'([\d.]+)% \((memory|compute)\)$')
    got = []
    for ln in lines[head[0] + 2: head[0] + 2 + len(FAMILIES)]:
        m = row.match(ln)
        check(m is not None, f'not a table row: {ln!r}')
        if not m:
            continue
        f = m.group(1).strip()
        ms, g, mb, gflops, gbs = (float(m.group(k)) for k in range(2, 7))
        got.append(f)
        if ms < 0.05:  # printed %.2f: too few digits left to check a quotient
            continue
        # printed: ms %.2f, GFLOP %.3f, MB %.1f, GFLOP/s %.1f, GB/s %.1f
        check(abs(gflops - g / ms * 1e3) <= quotient_tol(g, ms, 0, 5e-4, 5e-3, 0) * 1e3 + 0.05,
              f'{f}: GFLOP/s column {gflops} vs GFLOP/ms {g / ms * 1e3:.2f}')
        check(abs(gbs - mb / ms) <= quotient_tol(mb, ms, 0, 0.05, 5e-3, 0) + 0.05, f'{f}: GB/s column {gbs} vs MB/ms {mb / ms:.2f}')
        check(abs(float(m.group(9)) - gbs) <= 0.05 + 0.05, f'{f}: %GB/s {m.group(9)} vs GB/s {gbs} of a 100 GB/s roof')
    check(got == FAMILIES, f'table families {got}')
    print(f'text: the roofline table has {len(got)} families, columns consistent')


def main():
    effnet = sys.argv[1]
    check_json(effnet)
    check_text(effnet)
    print('PASS: bench --profile table' if not fails else f'FAIL: {len(fails)} problem(s)')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
