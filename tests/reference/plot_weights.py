#!/usr/bin/python3
"""Per-layer weight L2 norms of an effnet checkpoint, as PNG.

    plot_weights.py CKPT.h5 OUT.png

Top: the L2 norm of every conv and linear weight, in the network's order
(stem, blocks, head, classifier), coloured by kind (dense, expand, depthwise,
SE, project, linear). Bottom: the L2 norm of every BatchNorm weight (gamma)
and bias. Stage boundaries (a change of the block output width) are shaded.
Prints the five largest and smallest conv/linear norms.

Needs h5py and matplotlib (Debian: python3-h5py python3-matplotlib); exit 2
with a message if matplotlib is missing, 1 if the file is not a readable
effnet checkpoint. See docs/checkpoint-tools.md.
"""
import argparse
import os
import re
import sys

import numpy as np

SUB_ORDER = ['expand_conv', 'expand_bn', 'depthwise_conv', 'depthwise_bn', 'se.fc1', 'se.fc2',
             'project_conv', 'project_bn']
KIND = {'stem.0': 'dense conv', 'expand_conv': 'expand 1x1', 'depthwise_conv': 'depthwise', 'se.fc1': 'SE',
        'se.fc2': 'SE', 'project_conv': 'project 1x1', 'head.0': 'head 1x1', 'classifier.1': 'linear'}
COLORS = {'dense conv': 'tab:red', 'expand 1x1': 'tab:blue', 'depthwise': 'tab:orange', 'SE': 'tab:gray',
          'project 1x1': 'tab:green', 'head 1x1': 'tab:purple', 'linear': 'tab:brown'}


def fail(msg, code=1):
    print(f'plot_weights.py: error: {msg}', file=sys.stderr)
    sys.exit(code)


def order_key(name):
    """state_dict order without building the module: stem, blocks by index, head, classifier."""
    last = 0 if name.endswith('.weight') else 1
    m = re.match(r'blocks\.block_(\d+)\.(.+)\.(weight|bias)$', name)
    if m:
        sub = m.group(2)
        return (1, int(m.group(1)), SUB_ORDER.index(sub) if sub in SUB_ORDER else 99, last)
    top = {'stem.0': (0, 0), 'stem.1': (0, 1), 'head.0': (2, 0), 'head.1': (2, 1), 'classifier.1': (3, 0)}
    g, r = top.get(name.rsplit('.', 1)[0], (4, 0))
    return (g, 0, r, last)


def module_of(name):
    return name.rsplit('.', 1)[0]


def kind_of(name):
    mod = module_of(name)
    for k, v in KIND.items():
        if mod == k or mod.endswith('.' + k):
            return v
    return None


def main(argv):
    p = argparse.ArgumentParser(prog='plot_weights.py', description=__doc__.split('\n\n')[0])
    p.add_argument('ckpt')
    p.add_argument('out')
    args = p.parse_args(argv[1:])
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        fail('matplotlib is not installed\nHINT: apt-get install python3-matplotlib (Debian/Ubuntu), '
             'or pip install matplotlib', 2)
    import h5py

    try:
        f = h5py.File(args.ckpt, 'r')
    except (OSError, ValueError) as e:
        fail(f"cannot open checkpoint '{args.ckpt}': {e}\nHINT: pass a checkpoint written by effnet train")
    with f:
        fmt = f.attrs.get('format', '')
        fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
        if fmt != 'effnet-checkpoint' or 'model' not in f:
            fail(f"'{args.ckpt}' is not an effnet checkpoint (root attribute 'format' is {fmt or '(missing)'!r})")
        model = f.attrs.get('model', '?')
        model = model.decode() if isinstance(model, bytes) else str(model)
        names = sorted((k for k in f['model'] if k.endswith('.weight') or k.endswith('.bias')), key=order_key)
        norms, project_out = {}, {}
        for k in names:
            try:
                x = np.asarray(f['model'][k][()], np.float64)
            except OSError as e:
                fail(f"reading tensor '/model/{k}' from '{args.ckpt}' failed: {e}\nHINT: the file is damaged")
            norms[k] = float(np.linalg.norm(x))
            m = re.match(r'blocks\.block_(\d+)\.project_conv\.weight$', k)
            if m:
                project_out[int(m.group(1))] = x.shape[0]
    if not norms:
        fail(f"'{args.ckpt}' has no weights under /model")

    weights = [k for k in names if kind_of(k) and k.endswith('.weight')]
    bn = [k for k in names if kind_of(k) is None]  # BN weights and biases
    # stage boundaries: the block where the output width changes
    stages, prev = [], None
    for b in sorted(project_out):
        if project_out[b] != prev:
            stages.append(b)
            prev = project_out[b]

    def block_of(name):
        m = re.match(r'blocks\.block_(\d+)\.', name)
        return int(m.group(1)) if m else None

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7.5), dpi=100)
    for ax, keys in ((ax1, weights), (ax2, bn)):
        xs = np.arange(len(keys))
        # shade alternate stages
        for s, start in enumerate(stages):
            end = stages[s + 1] if s + 1 < len(stages) else None
            idx = [i for i, k in enumerate(keys) if block_of(k) is not None and block_of(k) >= start
                   and (end is None or block_of(k) < end)]
            if idx:
                if s % 2 == 0:
                    ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color='0.92', zorder=0)
                ax.text((idx[0] + idx[-1]) / 2, 1.0, f'stage {s + 1}', transform=ax.get_xaxis_transform(),
                        ha='center', va='bottom', fontsize=8)
        ax.set_xlim(-1, len(keys))
        ax.set_yscale('log')
        ax.grid(True, axis='y', alpha=0.3)
    for kind, color in COLORS.items():
        idx = [i for i, k in enumerate(weights) if kind_of(k) == kind]
        if idx:
            ax1.bar(idx, [norms[weights[i]] for i in idx], color=color, label=kind, width=0.8, zorder=2)
    ax1.set_ylabel('L2 norm')
    ax1.set_xlabel('conv / linear layer (network order)')
    ax1.legend(ncol=7, fontsize=8, loc='lower center', bbox_to_anchor=(0.5, -0.42))
    ax1.set_title(f'{os.path.basename(args.ckpt)} ({model}): weight L2 norm per layer', pad=16)
    gx = [i for i, k in enumerate(bn) if k.endswith('.weight')]
    bx = [i for i, k in enumerate(bn) if k.endswith('.bias')]
    ax2.scatter(gx, [norms[bn[i]] for i in gx], s=10, label='BN weight (gamma)', color='tab:blue', zorder=2)
    ax2.scatter(bx, [max(norms[bn[i]], 1e-12) for i in bx], s=10, label='BN bias (beta)', color='tab:orange',
                zorder=2)
    ax2.set_ylabel('L2 norm')
    ax2.set_xlabel('BatchNorm tensor (network order)')
    ax2.legend(fontsize=8)
    fig.tight_layout()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        fig.savefig(args.out)
    except OSError as e:
        fail(f"cannot write '{args.out}': {e.strerror}")
    plt.close(fig)
    ranked = sorted(weights, key=lambda k: norms[k])
    print(f'wrote {args.out}: {len(weights)} conv/linear weights, {len(bn)} BN tensors, {len(stages)} stages')
    print('largest:  ' + ', '.join(f'{k} {norms[k]:.3g}' for k in ranked[::-1][:5]))
    print('smallest: ' + ', '.join(f'{k} {norms[k]:.3g}' for k in ranked[:5]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
