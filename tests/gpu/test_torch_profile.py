#!/usr/bin/python3
"""bench_torch_gpu.py's per-op-family profile (the PyTorch side of the GPU
check's per-op table), on the CPU:

  1. attribution on made-up profiler events, the GPU way (kernel time): a
     forward kernel belongs to the innermost family range above it; a
     backward kernel to the family of the forward op whose sequence number
     its autograd node carries; a profiler range's own GPU annotation is not
     counted; what no family claims is '(other)';
  2. a real profile of B0 at 32x32, batch 2, on the CPU (self CPU time): every
     family gets time, and '(other)' -- autograd's bookkeeping, measured here
     at about 1% -- stays under 10% of the step.

    test_torch_profile.py   (no arguments)
"""
import collections
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_torch_gpu as b  # noqa: E402
import torch  # noqa: E402

fails = []
Kernel = collections.namedtuple('Kernel', 'name device duration')


def check(ok, msg):
    if not ok:
        fails.append(msg)
        print('FAIL:', msg)


class Ev:
    """The FunctionEvent fields the attribution reads."""
    def __init__(self, name, parent=None, seq=-1, kernels=(), cpu_us=0.0):
        self.name, self.cpu_parent, self.sequence_nr = name, parent, seq
        self.kernels, self.self_cpu_time_total = list(kernels), cpu_us
        self.device_type = 'DeviceType.CPU'


def test_fake_events():
    R = b.RANGE
    conv_rng = Ev(R + '1x1 conv')
    conv = Ev('aten::conv2d', conv_rng, seq=10, kernels=[Kernel('sm90_gemm', 0, 40.0)])
    cast = Ev('aten::_to_copy', conv_rng, kernels=[Kernel('copy_kernel', 0, 5.0)])
    conv_rng.kernels = [Kernel(R + '1x1 conv', 0, 45.0)]  # the range's GPU annotation: not a kernel
    se_rng = Ev(R + 'squeeze-excite')
    blk = Ev(R + 'dropout/add')
    add = Ev('aten::add', blk, seq=11, kernels=[Kernel('add_kernel', 0, 3.0)])
    se_rng.cpu_parent = blk
    mul = Ev('aten::mul', se_rng, seq=12, kernels=[Kernel('mul_kernel', 0, 7.0)])  # innermost: SE, not the block
    bwd = Ev('autograd::engine::evaluate_function: ConvolutionBackward0', seq=10)
    node = Ev('ConvolutionBackward0', bwd, seq=10)
    cbwd = Ev('aten::convolution_backward', node, kernels=[Kernel('dgrad', 0, 80.0), Kernel('wgrad', 0, 20.0)])
    mbwd = Ev('autograd::engine::evaluate_function: MulBackward0', seq=12)
    mk = Ev('aten::mul', Ev('MulBackward0', mbwd, seq=12), kernels=[Kernel('mul_bwd', 0, 9.0)])
    acc = Ev('autograd::engine::evaluate_function: torch::autograd::AccumulateGrad', seq=-1)
    stray = Ev('aten::zero_', Ev('torch::autograd::AccumulateGrad', acc), kernels=[Kernel('fill', 0, 2.0)])
    events = [conv_rng, conv, cast, se_rng, blk, add, mul, bwd, node, cbwd, mbwd, mk, acc, stray]
    totals, top = b.attribute(events, torch.device('cuda'))
    want = {'1x1 conv': 40 + 5 + 100, 'squeeze-excite': 7 + 9, 'dropout/add': 3, '(other)': 2}
    for f, us in want.items():
        check(abs(totals[f] - us) < 1e-9, f'{f}: {totals[f]} us, want {us}')
    check(sum(totals.values()) == sum(want.values()), f'total {sum(totals.values())}: the annotation was counted?')
    check(top and top[0][0] == 'aten::zero_', f'top unattributed {top}')
    print(f'fake events: {dict((k, v) for k, v in totals.items() if v)}')


def test_cpu_profile():
    r = subprocess.run([sys.executable, os.path.join(HERE, 'bench_torch_gpu.py'), '--device', 'cpu', '--modes', 'eager',
                        '--amp', 'bf16', '--threads', '2', '--model', 'efficientnet-b0', '--resolution', '32', '--batch',
                        '2', '--steps', '1', '--warmup', '1', '--profile-steps', '1'], capture_output=True, text=True,
                       timeout=300)
    check(r.returncode == 0, f'bench_torch_gpu.py exited {r.returncode}: {r.stderr[-400:]}')
    d = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith('{')][-1])
    p = d.get('profile') or {}
    ms = p.get('ms_per_step') or {}
    check(p.get('time') == 'CPU self time' and p.get('steps') == 1, f'profile header {p}')
    for f in b.FAMILIES:
        check(ms.get(f, 0) > 0, f'{f}: no time ({ms.get(f)})')
    tot = p.get('total_ms_per_step') or 0
    check(tot > 0 and ms.get('(other)', 1e9) < 0.10 * tot, f"(other) {ms.get('(other)')} ms of {tot}: over 10%")
    print(f"CPU profile: {tot:.1f} ms per step, (other) {ms.get('(other)')} ms")


def main():
    test_fake_events()
    test_cpu_profile()
    print('PASS: torch profile attribution' if not fails else f'FAIL: {len(fails)} problem(s)')
    return 1 if fails else 0


if __name__ == '__main__':
    sys.exit(main())
