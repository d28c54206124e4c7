"""Measure the shapes data set: generation time, determinism, a linear baseline, a CNN.

    python scripts/shapes_baseline.py [--train 20000] [--val 2000] [--epochs 4] [--skip-cnn]

Not part of the package: a check that the data set is (a) fast to draw,
(b) out of reach of a linear model on raw pixels, (c) quickly learnable by a
small AlexNet (PyTorch on CPU, 2 threads).
"""
import argparse
import hashlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import importlib.util  # noqa: E402

# load the file directly, so this runs whatever state the rest of the package is in
_spec = importlib.util.spec_from_file_location(
    "shapes", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "minialex", "data", "shapes.py"))
shapes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shapes)


def logistic_baseline(xtr, ytr, xte, yte, l2_values=(0.0, 1e-4, 1e-3, 1e-2, 1e-1), steps=500):
    """Softmax regression on standardised raw pixels, full-batch Adam, best test accuracy over L2."""
    xtr = xtr.reshape(len(xtr), -1).astype(np.float64)     # (N, 3*H*W)
    xte = xte.reshape(len(xte), -1).astype(np.float64)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    N, D = xtr.shape
    K = 10
    onehot = np.eye(K)[ytr]
    results = {}
    for l2 in l2_values:
        W = np.zeros((D, K)); b = np.zeros(K)
        m = [np.zeros_like(W), np.zeros_like(b)]; v = [np.zeros_like(W), np.zeros_like(b)]
        lr, b1, b2 = 1e-2, 0.9, 0.999
        for t in range(1, steps + 1):
            z = xtr @ W + b
            z -= z.max(1, keepdims=True)
            p = np.exp(z); p /= p.sum(1, keepdims=True)
            g = (p - onehot) / N
            gW = xtr.T @ g + l2 * W
            gb = g.sum(0)
            for i, (param, grad) in enumerate(((W, gW), (b, gb))):
                m[i] = b1 * m[i] + (1 - b1) * grad
                v[i] = b2 * v[i] + (1 - b2) * grad * grad
                param -= lr * (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + 1e-8)
        loss = -np.log(p[np.arange(N), ytr] + 1e-12).mean()
        tr = ((xtr @ W + b).argmax(1) == ytr).mean()
        te = ((xte @ W + b).argmax(1) == yte).mean()
        results[l2] = (tr, te)
        print(f"  logistic l2={l2:g}: train loss {loss:.3f}, train acc {tr:.3f}, test acc {te:.3f}", flush=True)
    return max(te for _, te in results.values())


def cnn(xtr, ytr, xte, yte, epochs, batch, lr, width, threads=2, budget_s=None):
    import torch
    import torch.nn as nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    c1, c2, c3, c4, c5, f = width
    model = nn.Sequential(
        nn.Conv2d(3, c1, 5, padding=2), nn.ReLU(), nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2),
        nn.MaxPool2d(3, 2),                                   # 32 -> 15
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2),
        nn.MaxPool2d(3, 2),                                   # 15 -> 7
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, 2),                                   # 7 -> 3
        nn.Flatten(),
        nn.Linear(c5 * 9, f), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(f, f), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(f, 10),
    )
    nparams = sum(p.numel() for p in model.parameters())
    print(f"  CNN widths {width}: {nparams:,} parameters; batch {batch}, SGD momentum 0.9 lr {lr}, "
          f"wd 5e-4, {threads} threads", flush=True)
    mean = xtr.reshape(len(xtr), 3, -1).mean((0, 2)).astype(np.float32)
    std = xtr.reshape(len(xtr), 3, -1).std((0, 2)).astype(np.float32)
    prep = lambda a: torch.from_numpy(((a.astype(np.float32) - mean[:, None, None]) / std[:, None, None]))
    Xtr, Ytr, Xte, Yte = prep(xtr), torch.from_numpy(ytr), prep(xte), torch.from_numpy(yte)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    steps_total = epochs * ((len(Xtr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps_total, pct_start=0.15) if lr else None
    lossf = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    elapsed = 0.0
    accs = []
    for ep in range(1, epochs + 1):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xtr), generator=g)
        tot = 0.0
        for i in range(0, len(Xtr), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = lossf(model(Xtr[idx]), Ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
        dt = time.perf_counter() - t0
        elapsed += dt
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(Xte[i:i + 500]).argmax(1) for i in range(0, len(Xte), 500)])
        acc = (pred == Yte).float().mean().item()
        accs.append(acc)
        print(f"  epoch {ep}: train loss {tot / len(Xtr):.3f}, val acc {acc:.4f}, "
              f"{dt:.1f} s/epoch, {elapsed:.1f} s total", flush=True)
    conf = np.zeros((10, 10), dtype=int)
    np.add.at(conf, (yte, pred.numpy()), 1)
    print("  confusion (rows true):", *[f"{shapes.CLASSES[k]:>9s} {conf[k]}" for k in range(10)], sep="\n    ")
    return accs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=shapes.TRAIN_SIZE)
    ap.add_argument("--val", type=int, default=shapes.VAL_SIZE)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--width", type=str, default="48,96,128,128,96,512")
    ap.add_argument("--skip-logistic", action="store_true")
    ap.add_argument("--skip-cnn", action="store_true")
    a = ap.parse_args()

    t = time.perf_counter()
    xtr, ytr = shapes.load_shapes("train", n=a.train)
    gen = time.perf_counter() - t
    xte, yte = shapes.load_shapes("val", n=a.val)
    print(f"generate {a.train} train images: {gen:.2f} s ({a.train / gen:.0f} images/s, one core)")
    print("sha256 of train images[:1000]:", hashlib.sha256(xtr[:1000].tobytes()).hexdigest()[:16],
          " labels:", hashlib.sha256(ytr[:1000].tobytes()).hexdigest()[:16])
    if not a.skip_logistic:
        best = logistic_baseline(xtr, ytr, xte, yte)
        print(f"logistic regression, best test accuracy: {best:.3f}")
    if not a.skip_cnn:
        cnn(xtr, ytr, xte, yte, a.epochs, a.batch, a.lr, tuple(int(s) for s in a.width.split(",")))


if __name__ == "__main__":
    main()
