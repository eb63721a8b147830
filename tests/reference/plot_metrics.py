#!/usr/bin/python3
"""Training curves from effnet's metrics.jsonl, as PNG.

    plot_metrics.py METRICS.jsonl OUT_DIR [--x step|epoch]

Writes to OUT_DIR (created if needed):
    loss.png        train loss (mean over each log interval), AVG_Loss (the epoch's running
                    mean, as the log prints it), test loss
    accuracy.png    test accuracy (%)
    lr.png          learning rate
    throughput.png  images/s, total and per rank

--x step (default) plots every logged row against the global step; --x epoch
averages the train rows of each epoch (loss, images/s; lr: the epoch's last)
and takes each epoch's last evaluation. A resumed run appends to the same
file and may log a step again: the last row for a step wins.

Needs matplotlib (Debian: python3-matplotlib); exit 2 with a message if it
is missing. Exit 1 on a bad metrics file (the message names the file and line).
See docs/checkpoint-tools.md.
"""
import argparse
import json
import os
import sys


def fail(msg, code=1):
    print(f'plot_metrics.py: error: {msg}', file=sys.stderr)
    sys.exit(code)


def load(path):
    """{'train': [row...], 'eval': [row...]}, each sorted by step, one row per step."""
    rows = {'train': {}, 'eval': {}}
    try:
        fh = open(path, encoding='utf-8')
    except OSError as e:
        fail(f"cannot read metrics file '{path}': {e.strerror}")
    with fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"'{path}' line {n} is not JSON ({e.msg}): {line[:80]!r}\n"
                     "HINT: metrics.jsonl holds one JSON object per line, as effnet train writes it")
            if not isinstance(r, dict) or r.get('type') not in rows:
                continue  # summary rows and anything newer
            if not isinstance(r.get('step'), int):
                fail(f"'{path}' line {n}: a '{r['type']}' row without an integer 'step'")
            rows[r['type']][r['step']] = r
    out = {k: [v[s] for s in sorted(v)] for k, v in rows.items()}
    if not out['train']:
        fail(f"'{path}' has no 'train' rows (nothing logged yet?)\n"
             "HINT: pass the metrics.jsonl of a run that logged at least one step (output.log_interval)")
    return out


def by_epoch(rows, keys, last_keys=()):
    """One row per epoch: the mean of `keys`, the last value of `last_keys`."""
    groups = {}
    for r in rows:
        groups.setdefault(r.get('epoch', 0), []).append(r)
    out = []
    for e in sorted(groups):
        g = groups[e]
        row = {'x': e}
        for k in keys:
            vals = [r[k] for r in g if isinstance(r.get(k), (int, float))]
            row[k] = sum(vals) / len(vals) if vals else None
        for k in last_keys:
            row[k] = g[-1].get(k)
        out.append(row)
    return out


def series(rows, key):
    pts = [(r['x'], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def main(argv):
    p = argparse.ArgumentParser(prog='plot_metrics.py', description=__doc__.split('\n\n')[0])
    p.add_argument('metrics')
    p.add_argument('out_dir')
    p.add_argument('--x', choices=('step', 'epoch'), default='step', help='x axis (default: step)')
    args = p.parse_args(argv[1:])
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        fail('matplotlib is not installed\nHINT: apt-get install python3-matplotlib (Debian/Ubuntu), '
             'or pip install matplotlib', 2)

    data = load(args.metrics)
    if args.x == 'step':
        train = [dict(r, x=r['step']) for r in data['train']]
        ev = [dict(r, x=r['step']) for r in data['eval']]
        xlabel = 'global step'
    else:
        train = by_epoch(data['train'], ('loss', 'img_per_s', 'img_per_s_per_rank'), ('lr', 'avg_loss'))
        ev = by_epoch(data['eval'], (), ('loss', 'accuracy'))
        xlabel = 'epoch'
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
        fail(f"cannot create output directory '{args.out_dir}': {e.strerror}")
    title = os.path.basename(os.path.dirname(os.path.abspath(args.metrics))) or args.metrics
    marker = 'o' if len(train) <= 50 else None

    def figure(name, ylabel, plots, logy=False, empty_note=None):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
        drawn, counts = 0, []
        for label, (xs, ys), style in plots:
            if xs:
                ax.plot(xs, ys, label=label, **style)
                drawn += 1
                counts.append(f'{label}: {len(xs)}')
        if not drawn and empty_note:
            ax.text(0.5, 0.5, empty_note, ha='center', va='center', transform=ax.transAxes, color='gray')
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f'{title}: {ylabel}')
        if logy and drawn:
            ax.set_yscale('log')
        ax.grid(True, alpha=0.3)
        if drawn > 1:
            ax.legend()
        fig.tight_layout()
        path = os.path.join(args.out_dir, name)
        try:
            fig.savefig(path)
        except OSError as e:
            fail(f"cannot write '{path}': {e.strerror}")
        plt.close(fig)
        print(f'wrote {path} ({"; ".join(counts) or "no data"})')

    loss_label = 'train loss (epoch mean)' if args.x == 'epoch' else 'train loss (log interval mean)'
    figure('loss.png', 'loss', [
        (loss_label, series(train, 'loss'), dict(lw=0.8, alpha=0.6, marker=marker, ms=3)),
        ('train AVG_Loss (epoch running mean)', series(train, 'avg_loss') if args.x == 'step' else ([], []), dict(lw=1.5)),
        ('test loss', series(ev, 'loss'), dict(lw=1.5, marker='s', ms=5)),
    ])
    figure('accuracy.png', 'test accuracy (%)', [
        ('test accuracy', series(ev, 'accuracy'), dict(lw=1.5, marker='s', ms=5, color='tab:green')),
    ], empty_note='no evaluation logged yet')
    figure('lr.png', 'learning rate', [
        ('lr', series(train, 'lr'), dict(lw=1.5, drawstyle='steps-post', color='tab:purple')),
    ])
    figure('throughput.png', 'images/s', [
        ('total', series(train, 'img_per_s'), dict(lw=1.2, marker=marker, ms=3)),
        ('per rank', series(train, 'img_per_s_per_rank'), dict(lw=1.2, marker=marker, ms=3)),
    ])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
