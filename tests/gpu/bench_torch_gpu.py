#!/usr/bin/python3
"""Time PyTorch training steps of the seed EfficientNet on a GPU (or the CPU).

    python3 tests/gpu/bench_torch_gpu.py --model efficientnet-b0 \
        --resolution 224 --batch 128 --steps 30 --warmup 5 --amp bf16 \
        --modes eager,compile

The model is tests/reference/effnet_ref.py (the seed's architecture, train mode
with its own dropout). Each step: zero_grad, forward under torch.autocast
(--amp bf16|fp16|none; fp16 uses a GradScaler), CrossEntropyLoss, backward,
Adam(lr=1e-3, weight_decay=1e-4). Inputs are one synthetic batch in
channels_last (unless --no-channels-last), as `effnet bench` uses one
synthetic batch. Modes: eager, and compile (torch.compile of the model; the
first warm-up step includes compilation and is reported as compile_s).

Prints one JSON line per mode: framework, mode, img_per_s, step_ms,
peak_mem_mb (torch.cuda.max_memory_allocated, reset between modes; null on
the CPU) and error (null, or the exception as a string -- a failing mode,
e.g. torch.compile missing or raising, is reported, not raised). Exit status:
0 when every mode ran, 3 when some mode reported an error, 2 on bad arguments.

--profile-steps N: after the timed steps, N more under torch.profiler; the
JSON line gets 'profile': the kernel time per step (CPU time on the CPU) of
each of effnet's op families (the slots of `effnet bench --profile`: stem
conv, 1x1 conv, depthwise, batchnorm+swish, squeeze-excite, dropout/add,
head/loss, optimizer) and '(other)' for what no family claims. Forward ops
belong to the family of the innermost module they run in (forward hooks open
a profiler range per module); a backward op belongs to the family of the
forward op that made its autograd node (the profiler's sequence numbers).

--batches 64,48,32: the largest batch that fits, in one process (one CUDA
start-up): each batch in turn, largest first, until one runs; an out-of-memory
error or a try longer than --try-timeout seconds moves on to the next. The
line reports that batch, with 'tried': [[batch, 'ok'|'oom'|'timeout'|error]].
"""
import argparse
import contextlib
import gc
import json
import os
import resource
import signal
import sys
import time
import traceback

import torch
import torch.nn as nn
from torch.autograd.profiler import record_function

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'reference'))
import effnet_ref  # noqa: E402

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'none': None}


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def short_error(exc):
    """One line naming the exception; the last traceback frame for context."""
    msg = f'{type(exc).__name__}: {exc}'.strip().replace('\n', ' | ')
    tb = traceback.extract_tb(exc.__traceback__)
    where = f' (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})' if tb else ''
    if len(msg) > 600:
        msg = msg[:600] + '...'
    return msg + where


# effnet's op families (src/model.c eff_prof_names), in its order
FAMILIES = ['stem conv', '1x1 conv', 'depthwise', 'batchnorm+swish', 'squeeze-excite', 'dropout/add',
            'head/loss', 'optimizer']
RANGE = 'effnet-family:'


def module_families(model):
    """{module: family} for the modules whose forward makes up each family.
    Ranges nest: an op belongs to the innermost one (a block's own range
    holds only its residual add)."""
    fam = {model.stem[0]: 'stem conv', model.stem[1]: 'batchnorm+swish', model.stem[2]: 'batchnorm+swish',
           model.head[0]: '1x1 conv', model.head[1]: 'batchnorm+swish', model.head[2]: 'batchnorm+swish',
           model.avgpool: 'head/loss', model.classifier: 'head/loss'}
    for blk in model.blocks:
        fam[blk] = 'dropout/add'
        fam[blk.swish] = 'batchnorm+swish'
        fam[blk.depthwise_conv] = 'depthwise'
        fam[blk.depthwise_bn] = 'batchnorm+swish'
        fam[blk.se] = 'squeeze-excite'
        fam[blk.project_conv] = '1x1 conv'
        fam[blk.project_bn] = 'batchnorm+swish'
        fam[blk.dropout] = 'dropout/add'
        if blk.expand_ratio > 1:
            fam[blk.expand_conv] = '1x1 conv'
            fam[blk.expand_bn] = 'batchnorm+swish'
    return fam


def add_family_ranges(model):
    """Forward hooks: a profiler range named RANGE + family around each of
    module_families' modules. Returns the hook handles."""
    handles, open_ranges = [], {}

    def pre(mod, inputs, name):
        r = record_function(RANGE + name)
        r.__enter__()
        open_ranges.setdefault(id(mod), []).append(r)

    def post(mod, inputs, output):
        open_ranges[id(mod)].pop().__exit__(None, None, None)

    for mod, name in module_families(model).items():
        handles.append(mod.register_forward_pre_hook(lambda m, i, n=name: pre(m, i, n)))
        handles.append(mod.register_forward_hook(post))
    return handles


def event_cost_us(e, device):
    """The event's own time: its kernels' time on a GPU (profiler ranges'
    GPU annotations left out), its self CPU time on the CPU."""
    if device.type != 'cuda':
        return e.self_cpu_time_total
    if not hasattr(e, 'kernels'):  # a torch without the kernel list: its own device time
        return getattr(e, 'self_device_time_total', getattr(e, 'self_cuda_time_total', 0))
    return sum(k.duration for k in e.kernels if not k.name.startswith(RANGE))


def family_of(e, fwd):
    """The family of an event: the innermost family range above it; for a
    backward op, the family of the forward op with its node's sequence number."""
    a = e
    while a is not None:
        if a.name.startswith(RANGE):
            return a.name[len(RANGE):]
        if a.name.startswith('autograd::engine::evaluate_function'):
            return fwd.get(a.sequence_nr)
        a = a.cpu_parent
    return None


def attribute(events, device):
    """{family: microseconds} over the profiled events, '(other)' for the rest;
    and the names of the largest unattributed ops."""
    cpu = [e for e in events if str(getattr(e, 'device_type', 'CPU')).endswith('CPU')]
    fwd = {}
    for e in cpu:
        if e.sequence_nr is not None and e.sequence_nr >= 0 and not e.name.startswith('autograd::engine'):
            f = family_of(e, {})
            if f is not None:
                fwd.setdefault(e.sequence_nr, f)
    totals, other = {f: 0.0 for f in FAMILIES + ['(other)']}, {}
    for e in cpu:
        us = event_cost_us(e, device)
        if not us:
            continue
        f = family_of(e, fwd)
        if f not in totals:
            f = '(other)'
            other[e.name] = other.get(e.name, 0.0) + us
        totals[f] += us
    top = sorted(other.items(), key=lambda kv: -kv[1])[:5]
    return totals, [[n, round(us, 1)] for n, us in top]


def profile_steps(step, model, a, device):
    """a.profile_steps steps under torch.profiler: ms per step per family."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    handles = add_family_ranges(model)
    try:
        with profile(activities=acts) as prof:
            for _ in range(a.profile_steps):
                step()
            sync(device)
    finally:
        for h in handles:
            h.remove()
    totals, top_other = attribute(prof.events(), device)
    n = a.profile_steps
    return {'steps': n, 'time': 'CUDA kernel time' if device.type == 'cuda' else 'CPU self time',
            'ms_per_step': {f: round(us / 1e3 / n, 4) for f, us in totals.items()},
            'total_ms_per_step': round(sum(totals.values()) / 1e3 / n, 4),
            'top_other_us': top_other}


def run_mode(mode, a, device):
    """One mode from a fresh model and optimizer; returns the result dict."""
    res = {'framework': 'pytorch', 'torch_version': str(torch.__version__),
           'mode': mode, 'device': str(device),
           'gpu': torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
           'model': a.model, 'resolution': a.resolution, 'batch': a.batch,
           'amp': a.amp, 'channels_last': a.channels_last,
           'steps': a.steps, 'warmup': a.warmup,
           'img_per_s': None, 'step_ms': None, 'peak_mem_mb': None,
           'first_step_s': None, 'compile_s': None, 'final_loss': None, 'error': None}
    if device.type == 'cuda':
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:
        dtype = AMP_DTYPES[a.amp]
        if device.type == 'cpu' and a.amp == 'fp16':
            raise RuntimeError('--amp fp16 needs CUDA (autocast fp16 and GradScaler are CUDA-only here)')
        torch.manual_seed(a.seed)
        fmt = torch.channels_last if a.channels_last else torch.contiguous_format
        model = effnet_ref.build(a.model, a.classes).to(device=device, memory_format=fmt)
        model.train()
        criterion = nn.CrossEntropyLoss()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        scaler = torch.cuda.amp.GradScaler() if a.amp == 'fp16' else None
        x = torch.randn(a.batch, 3, a.resolution, a.resolution, device=device)
        x = x.contiguous(memory_format=fmt)
        y = torch.randint(0, a.classes, (a.batch,), device=device)

        fwd = model
        if mode == 'compile':
            if not hasattr(torch, 'compile'):
                raise RuntimeError(f'torch.compile does not exist in torch {torch.__version__} (needs 2.0+)')
            fwd = torch.compile(model, mode=a.compile_mode)

        def step():
            with record_function(RANGE + 'optimizer'):
                opt.zero_grad(set_to_none=True)
            amp = (torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None
                   else contextlib.nullcontext())
            with amp:
                out = fwd(x)
                with record_function(RANGE + 'head/loss'):
                    loss = criterion(out, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                with record_function(RANGE + 'optimizer'):
                    scaler.step(opt)
                    scaler.update()
            else:
                loss.backward()
                with record_function(RANGE + 'optimizer'):
                    opt.step()
            return loss

        t0 = time.perf_counter()
        loss = step()  # first step: allocator, cuDNN autotuning, compilation
        sync(device)
        res['first_step_s'] = round(time.perf_counter() - t0, 3)
        if mode == 'compile':
            res['compile_s'] = res['first_step_s']
        for _ in range(max(a.warmup - 1, 0)):
            loss = step()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        sync(device)
        elapsed = time.perf_counter() - t0
        res['img_per_s'] = round(a.batch * a.steps / elapsed, 3)
        res['step_ms'] = round(1e3 * elapsed / a.steps, 3)
        res['final_loss'] = round(float(loss.detach().float().item()), 6)
        if res['final_loss'] != res['final_loss']:
            res['error'] = 'loss is NaN'
        if a.profile_steps > 0 and mode == 'eager':
            try:
                res['profile'] = profile_steps(step, model, a, device)
            except Exception as exc:  # the timing stands; the profile reports its own error
                res['profile'] = {'error': short_error(exc)}
    except Exception as exc:  # reported, not raised: the caller compares modes
        res['error'] = short_error(exc)
    if device.type == 'cuda':
        try:
            res['peak_mem_mb'] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        except Exception:  # e.g. the device is gone after an error
            pass
    else:
        res['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return res


class TryTimeout(Exception):
    pass


def search(a, device, mode):
    """The largest batch of a.batches that runs; one JSON line."""
    tried, res = [], None
    def on_alarm(signum, frame):
        raise TryTimeout()
    signal.signal(signal.SIGALRM, on_alarm)
    for b in [int(x) for x in a.batches.split(',') if x]:
        a.batch = b
        if a.try_timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, a.try_timeout)
        try:
            r = run_mode(mode, a, device)
        except TryTimeout:
            r = {'error': 'timeout'}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        err = r.get('error') or ''
        if 'TryTimeout' in err:
            err = 'timeout'
        if not err:
            tried.append([b, 'ok'])
            res = r
            break
        oom = 'out of memory' in err.lower() or 'OutOfMemoryError' in err
        tried.append([b, 'oom' if oom else err[:200]])
        if device.type == 'cuda':
            gc.collect()
            torch.cuda.empty_cache()
    if res is None:
        res = {'framework': 'pytorch', 'torch_version': str(torch.__version__), 'mode': mode, 'device': str(device),
               'model': a.model, 'resolution': a.resolution, 'batch': None, 'img_per_s': None, 'step_ms': None,
               'peak_mem_mb': None, 'error': 'no batch of ' + a.batches + ' ran'}
    res['tried'] = tried
    print(json.dumps(res), flush=True)
    return 0 if res.get('error') is None else 3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='efficientnet-b0', choices=sorted(effnet_ref.CONFIGS))
    ap.add_argument('--resolution', type=int, default=224)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--warmup', type=int, default=5,
                    help='untimed steps first; at least one always runs (it compiles, autotunes)')
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--amp', choices=sorted(AMP_DTYPES), default='bf16')
    ap.add_argument('--modes', default='eager,compile', help='comma list of eager, compile')
    ap.add_argument('--compile-mode', default='default',
                    help="torch.compile mode: default, reduce-overhead, max-autotune")
    ap.add_argument('--device', default='cuda', help='cuda, cuda:N or cpu')
    ap.add_argument('--threads', type=int, default=0, help='CPU threads (0: torch default)')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--no-channels-last', dest='channels_last', action='store_false')
    ap.add_argument('--batches', default='',
                    help='comma list, largest first: report the largest that runs (overrides --batch)')
    ap.add_argument('--try-timeout', type=float, default=0, help='seconds per --batches try (0: none)')
    ap.add_argument('--profile-steps', type=int, default=0,
                    help='eager mode: this many more steps under torch.profiler, kernel time per op family')
    a = ap.parse_args()
    modes = [m for m in a.modes.split(',') if m]
    bad = [m for m in modes if m not in ('eager', 'compile')]
    if bad or not modes:
        ap.error(f'unknown mode(s) {bad}: use eager, compile')
    if a.steps < 1 or a.batch < 1 or a.resolution < 8:
        ap.error('--steps and --batch must be >= 1, --resolution >= 8')
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    device = torch.device(a.device)
    errors = 0
    if device.type == 'cuda' and not torch.cuda.is_available():
        for m in modes:
            print(json.dumps({'framework': 'pytorch', 'torch_version': str(torch.__version__),
                              'mode': m, 'device': a.device, 'img_per_s': None, 'step_ms': None,
                              'peak_mem_mb': None,
                              'error': 'CUDA not available to PyTorch (torch.version.cuda='
                                       f'{torch.version.cuda}, no visible device)'}), flush=True)
        return 3
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # let cuDNN pick its algorithms, as a tuned run would
    if a.batches:
        return search(a, device, modes[0])
    for m in modes:
        res = run_mode(m, a, device)
        errors += res['error'] is not None
        print(json.dumps(res), flush=True)
    return 3 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
