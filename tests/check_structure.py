#!/usr/bin/python3
"""check_structure.py SRC_DIR: two rules of the code's shape (issue 27).

1. Every function in src/, data_tools/ and kernels/ (C, CUDA) fits on one
   screen: at most MAX_LINES lines from its signature to its closing brace,
   as Universal Ctags reports them (--fields=+ne). Exceptions are listed in
   ALLOW with the reason.
2. The files of src/train depend one way: trainer.c on nothing above it,
   step.c on trainer.c, setup.c and epoch.c on those two, and not on each
   other. A file "depends on" another when it calls a function defined there.
"""
import os
import re
import subprocess
import sys

MAX_LINES = 100
ALLOW = {
    # (file, function): why it stays long. Empty: every function fits.
}
# src/train's layers, lowest first; a file may call only functions of files in
# lower layers (the leaf modules elastic, threads, trace, signals, dirlock call none).
LAYERS = [["elastic.c", "threads.c", "trace.c", "signals.c", "dirlock.c", "data_pipeline.c"], ["trainer.c"], ["step.c"], ["setup.c", "epoch.c"]]


def functions(src):
    """(file, name, lines) of every C/CUDA function definition."""
    files = []
    for top in ("src", "data_tools", "kernels"):
        for d, _, names in os.walk(os.path.join(src, top)):
            files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h", ".cu", ".cuh"))]
    out = subprocess.run(["ctags", "--fields=+ne", "--kinds-C=f", "--kinds-C++=f", "--langmap=C++:+.cu.cuh",
                          "-o", "-"] + sorted(files), capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        f = line.split("\t")
        kv = dict(x.split(":", 1) for x in f[3:] if ":" in x)
        if "line" in kv and "end" in kv:
            found.append((os.path.relpath(f[1], src), f[0], int(kv["end"]) - int(kv["line"]) + 1))
    return found


def train_graph(src, defs):
    """file -> set of src/train files whose functions it calls."""
    tdir = os.path.join(src, "src", "train")
    owner = {name: os.path.basename(f) for f, name, _ in defs if f.startswith(os.path.join("src", "train"))}
    graph = {}
    for n in sorted(os.listdir(tdir)):
        if not n.endswith(".c"):
            continue
        text = re.sub(r"/\*.*?\*/|//[^\n]*", "", open(os.path.join(tdir, n)).read(), flags=re.S)
        called = set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", text))
        graph[n] = {owner[c] for c in called if c in owner and owner[c] != n}
    return graph


def main():
    src = sys.argv[1]
    defs = functions(src)
    bad = []
    long_ = sorted((lines, f, name) for f, name, lines in defs if lines > MAX_LINES)
    for lines, f, name in long_:
        if (f, name) not in ALLOW:
            bad.append(f"{f}: {name} is {lines} lines (at most {MAX_LINES}): split it into named steps")
    print(f"{len(defs)} functions in src/, data_tools/, kernels/; the longest: " +
          ", ".join(f"{name} {lines}" for lines, f, name in sorted(((l, f, n) for f, n, l in defs), reverse=True)[:5]))
    layer = {n: i for i, names in enumerate(LAYERS) for n in names}
    graph = train_graph(src, defs)
    for f, deps in sorted(graph.items()):
        if f not in layer:
            bad.append(f"src/train/{f} is in no layer of check_structure.py's LAYERS: add it")
            continue
        for d in sorted(deps):
            if layer.get(d, -1) >= layer[f]:
                bad.append(f"src/train/{f} calls into {d} (same or a higher layer): move the shared piece down "
                           f"(trainer.c) so the files depend one way")
        print(f"src/train/{f} -> {', '.join(sorted(deps)) or '-'}")
    for b in bad:
        print("FAIL", b)
    print("PASS" if not bad else f"{len(bad)} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
