#!/usr/bin/python3
"""summary.md of the one-command GPU check (tests/gpu/device_check.sh).

    dc_summary.py DIR [--state complete|env|early] [--reason TEXT] [--rehearse]
                  [--gpu] [--gpu-name NAME] [--secs S] [--budget S] [--limit CHARS]

DIR holds what the check wrote: results.tsv (every test and step), and where
they exist env_check.md, effnet_b0.json / torch_b0.json, effnet_b7.json /
torch_b7.json / effnet_b7.tried (the comparison), effnet_prof.json (effnet
bench --profile) and torch_b0.json's 'profile' (the PyTorch side of the per-op
table). Prints the summary on standard output.

The summary is what comes back whole in the last 12,000 characters of the
device machine's output, so it is kept under --limit characters (default
11,000): notes are shortened, then the notes of passing and skipped tests
dropped, then passing and skipped tests listed by name only, and as a last
resort the text is cut (saying so). The archive holds everything.
"""
import argparse
import csv
import json
import os
import sys
import time

FAMILIES = ['stem conv', '1x1 conv', 'depthwise', 'batchnorm+swish', 'squeeze-excite', 'dropout/add',
            'head/loss', 'optimizer']


def load(d, name):
    """A JSON file's object ({} when absent or empty; {'error': ...} when unreadable)."""
    p = os.path.join(d, name)
    try:
        t = open(p).read().strip()
        return json.loads(t) if t else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        return {'error': f'unreadable {name}: {e}'}


def fmt(v, d=1):
    return '-' if v is None else f'{v:.{d}f}'


def cell(s, n):
    s = str(s).replace('|', '/').replace('\n', ' ')
    return s if len(s) <= n else s[:n - 3] + '...'


def comparison(d, status):
    """effnet vs PyTorch, B0 and B7: img/s, step ms, peak GiB."""
    L = ['### effnet vs PyTorch eager (AMP bf16, channels_last), same run', '',
         '| model | res | batch | effnet img/s | PyTorch img/s | effnet / PyTorch | effnet step ms | PyTorch step ms '
         '| effnet peak GiB | PyTorch peak GiB | status |',
         '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']

    def gib(j, *keys):
        for k in keys:
            if j.get(k) is not None:
                return f'{j[k] / 1024:.2f}'
        return '-'
    for label, e, t in (('B0', 'effnet_b0', 'torch_b0'), ('B7 (largest batch)', 'effnet_b7', 'torch_b7')):
        je, jt = load(d, e + '.json'), load(d, t + '.json')
        res = je.get('resolution') or jt.get('resolution') or '-'
        be, bt = je.get('batch'), jt.get('batch')
        batch = str(be if be is not None else '-') if be == bt or bt is None else f'{be if be is not None else "-"} / {bt}'
        r = f"{je['img_per_s'] / jt['img_per_s']:.2f}x" if je.get('img_per_s') and jt.get('img_per_s') else '-'
        st = f"effnet {status.get(e, {}).get('status', 'not run')}, PyTorch {status.get(t, {}).get('status', 'not run')}"
        if jt.get('error'):
            st += f" ({cell(jt['error'], 80)})"
        L.append(f"| {label} | {res} | {batch} | {fmt(je.get('img_per_s'))} | {fmt(jt.get('img_per_s'))} | {r} | "
                 f"{fmt(je.get('step_ms'))} | {fmt(jt.get('step_ms'))} | {gib(je, 'peak_gpu_mem_mb', 'peak_rss_mb')} | "
                 f"{gib(jt, 'peak_mem_mb', 'peak_rss_mb')} | {st} |")
    tried_e = ''
    try:
        tried_e = open(os.path.join(d, 'effnet_b7.tried')).read().strip()
    except OSError:
        pass
    tried_t = ' '.join(f'{b}:{s}' for b, s in load(d, 'torch_b7.json').get('tried', []))
    L += ['', f'B7 batch search (largest first): effnet `{cell(tried_e, 120)}`; PyTorch `{cell(tried_t, 120)}`.', '']
    return L


def bound_frac(gflop, mb, ms, peak_gflops, peak_gbs):
    """achieved / min(peak, intensity x bandwidth), as eff_roofline_row does; None without a time."""
    if not ms or ms <= 0 or not mb:
        return None
    achieved = gflop / (ms / 1e3)                     # GFLOP/s
    mem_roof = (gflop * 1e9) / (mb * 1e6) * peak_gbs  # intensity (FLOP/B) x GB/s = GFLOP/s
    bound = min(peak_gflops, mem_roof)
    return achieved / bound if bound > 0 else None


def gbs(mb, ms):
    """MB per ms = GB/s; one decimal below 100."""
    if mb is None or not ms:
        return '-'
    v = mb / ms
    return fmt(v, 1 if v < 100 else 0)


def profile_table(d, status):
    """Per op family, effnet bench --profile and PyTorch's profiler side by side."""
    je, jt = load(d, 'effnet_prof.json'), load(d, 'torch_b0.json')
    tp = jt.get('profile') or {}
    rows = {r['family']: r for r in je.get('roofline', [])}
    pk = je.get('peaks') or {}
    pg, pb = pk.get('gflops'), pk.get('gbs')
    tera = (pg or 0) >= 1e4  # a GPU: TFLOP/s; the CPU (rehearsal): GFLOP/s
    u, div = ('TFLOP/s', 1e3) if tera else ('GFLOP/s', 1.0)
    L = ['### Per op family: effnet bench --profile vs PyTorch profiler (B0, same shapes)', '']
    if not rows and not tp.get('ms_per_step'):
        why = je.get('error') or tp.get('error') or 'neither side produced a profile'
        st = (f"effnet_prof {status.get('effnet_prof', {}).get('status', 'not run')}, "
              f"torch_b0 {status.get('torch_b0', {}).get('status', 'not run')}")
        return L + [f'No profile: {cell(why, 200)} ({st}).', '']
    if pg and pb:
        L.append(f"Roofs: {pb:.0f} GB/s, {pg / div:.1f} {u} ({cell(pk.get('source', '?'), 60)}); bytes: compulsory "
                 f"traffic, activations {pk.get('act_bytes', '?')} B. effnet: eager, stream synchronised around each "
                 f"op (wall ms); PyTorch: {tp.get('time', '-')}, {tp.get('steps', '-')} step(s)"
                 f"{' (profile error: ' + cell(tp['error'], 100) + ')' if tp.get('error') else ''}.")
    else:
        L.append('Roofs: unknown (no effnet profile); PyTorch ms only.')
    L += ['', f'| op family | GFLOP | MB | effnet ms | PyTorch ms | effnet {u} | PyTorch {u} | effnet GB/s | '
          'PyTorch GB/s | effnet % of bound | PyTorch % of bound | bound |',
          '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
    tms = tp.get('ms_per_step') or {}
    sums = [0.0, 0.0]
    for f in FAMILIES:
        r, t = rows.get(f, {}), tms.get(f)
        g, mb, e = r.get('gflop'), r.get('mb'), r.get('ms')
        sums[0] += e or 0
        sums[1] += t or 0

        def rate(x, ms):
            return fmt(x * 1e3 / ms / div, 2) if x is not None and ms else '-'
        fe = bound_frac(g, mb, e, pg, pb) if g is not None and pg else None
        ft = bound_frac(g, mb, t, pg, pb) if g is not None and pg else None
        L.append(f"| {f} | {fmt(g, 3)} | {fmt(mb, 1)} | {fmt(e, 2)} | {fmt(t, 2)} | {rate(g, e)} | {rate(g, t)} | "
                 f"{gbs(mb, e)} | {gbs(mb, t)} | "
                 f"{fmt(None if fe is None else 100 * fe, 1)} | {fmt(None if ft is None else 100 * ft, 1)} | "
                 f"{r.get('bound', '-')} |")
    step = je.get('step_ms')
    other_e = step - sums[0] if step else None
    L.append(f"| (other) | | | {fmt(other_e, 2)} | {fmt(tms.get('(other)'), 2)} | | | | | | | |")
    L.append(f"| step | | | {fmt(step, 2)} | {fmt(tp.get('total_ms_per_step'), 2)} | | | | | | | |")
    return L + ['']


def tests_table(rows, note_len, pass_notes, collapse):
    L = ['### Tests and steps', '']
    ok = [r for r in rows if r['status'] in ('pass', 'skip')]
    shown = [r for r in rows if not (collapse and r in ok)]
    if collapse:
        for st in ('pass', 'skip'):
            names = [r['name'] for r in ok if r['status'] == st]
            if names:
                L.append(f"{st} ({len(names)}): {' '.join(names)}")
        L.append('')
    L += ['| name | status | rc | s | note |', '|---|---|---:|---:|---|']
    for r in shown:
        note = r['note'] if pass_notes or r['status'] not in ('pass', 'skip') else ''
        L.append(f"| {r['name']} | {r['status']} | {r['rc']} | {r['seconds']} | {cell(note, note_len)} |")
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('dir')
    ap.add_argument('--state', default='complete', choices=['complete', 'env', 'early'])
    ap.add_argument('--reason', default='')
    ap.add_argument('--rehearse', action='store_true')
    ap.add_argument('--gpu', action='store_true')
    ap.add_argument('--gpu-name', default='none')
    ap.add_argument('--secs', default='?')
    ap.add_argument('--budget', default='?')
    ap.add_argument('--limit', type=int, default=11000)
    a = ap.parse_args()
    d = a.dir
    try:
        rows = list(csv.DictReader(open(os.path.join(d, 'results.tsv')), delimiter='\t'))
    except OSError:
        rows = []
    for r in rows:
        for k in ('name', 'status', 'rc', 'seconds', 'note'):
            r[k] = r.get(k) or ''
    status = {r['name']: r for r in rows}
    bad = [r['name'] for r in rows if r['status'] in ('fail', 'timeout')]
    verdict = {'complete': 'no test failed' if not bad else f'{len(bad)} FAILED: {" ".join(bad)}',
               'env': 'STOPPED at the environment check (only the PyTorch half may have run)',
               'early': f'STOPPED EARLY ({a.reason or "?"}): partial results'}[a.state]
    head = [f"# effnet device check: {a.gpu_name}, {time.strftime('%Y-%m-%d', time.gmtime())}, {a.secs} s "
            f"(budget {a.budget} s): {cell(verdict, 300)}"
            + (' -- REHEARSAL: tiny shapes' + ('' if a.gpu else ', the CPU stands in for the GPU') if a.rehearse else ''),
            '']
    try:
        head += [open(os.path.join(d, 'env_check.md')).read().strip(), '']
    except OSError:
        pass
    body = comparison(d, status) + profile_table(d, status)
    tail = ['', 'Everything else (logs/, *.json, env.txt, results.tsv): device-check.tar.gz next to this file.']
    for note_len, pass_notes, collapse in ((100, True, False), (60, True, False), (60, False, False),
                                           (40, False, True), (20, False, True)):
        text = '\n'.join(head + body + tests_table(rows, note_len, pass_notes, collapse) + tail)
        if len(text) <= a.limit:
            break
    if len(text) > a.limit:
        cut = f'\n... (summary cut to {a.limit} characters; the archive has all of it)'
        text = text[:a.limit - len(cut)] + cut
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
