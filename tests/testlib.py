"""What the Python tests share: check() that records a failure and goes on, and run() that stops on a failed
command. Import it with tests/ on sys.path (the tests put it there themselves)."""
import subprocess
import sys

failures = []  # the messages of the failed checks; a test exits 1 when it is not empty


def check(cond, msg):
    print(('ok   ' if cond else 'FAIL ') + msg, flush=True)
    if not cond:
        failures.append(msg)
    return cond


def run(cmd, ok=True, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if ok and r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
        raise SystemExit(f'command failed ({r.returncode}): {" ".join(map(str, cmd))}')
    return r


def seed_test_split(data_dir):
    """A CIFAR shard directory's test split as the seed's ToTensor + Normalize gives it, NHWC float32, and labels."""
    import h5py
    import numpy as np
    mean = np.array([0.4914, 0.4822, 0.4465], np.float32)  # the seed's Normalize (data.normalize = seed)
    std = np.array([0.2023, 0.1994, 0.2010], np.float32)
    with h5py.File(f'{data_dir}/test-00000-of-00001.h5', 'r') as f:
        img, lab = f['images'][()], f['labels'][()].astype(np.int64)
    return (img.astype(np.float32) / np.float32(255) - mean) / std, lab


def torch_eval(model, x_nhwc, labels):
    """A PyTorch model's eval-mode loss (mean cross-entropy in float64), correct count and logits."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))))
        loss = F.cross_entropy(logits.double(), torch.from_numpy(labels), reduction='mean').item()
    correct = int((logits.argmax(1).numpy() == labels).sum())
    return loss, correct, logits.numpy()
