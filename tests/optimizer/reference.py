"""MXNet 2's optimizer formulas written out in plain NumPy float64, one function per
optimizer, for the table-driven tests. Each ``step(w, g, s, t, lr, wd, hp, glob)`` returns
the new weight and updates the state dict ``s`` (``t`` is the parameter's update count,
``glob`` optimizer-wide numbers such as Nadam's momentum schedule)."""

import math

import numpy as np


def _grad(g, w, wd, hp, wd_first=False):
    g = hp.get("rescale_grad", 1.0) * g
    clip = hp.get("clip_gradient")
    if wd_first:
        g = g + wd * w
    if clip is not None:
        g = np.clip(g, -clip, clip)
    if not wd_first:
        g = g + wd * w
    return g


def _zeros(s, w, *names):
    for n in names:
        s.setdefault(n, np.zeros_like(w))


def sgd(w, g, s, t, lr, wd, hp, glob):
    g = _grad(g, w, wd, hp)
    if hp.get("momentum", 0.0) == 0:
        return w - lr * g
    _zeros(s, w, "mom")
    s["mom"] = hp["momentum"] * s["mom"] - lr * g
    return w + s["mom"]


def nag(w, g, s, t, lr, wd, hp, glob):
    g = _grad(g, w, wd, hp)
    m = hp.get("momentum", 0.9)
    if m == 0:
        return w - lr * g
    _zeros(s, w, "mom")
    s["mom"] = m * s["mom"] - lr * g
    return w + m * s["mom"] - lr * g


def signum(w, g, s, t, lr, wd, hp, glob):
    m, wd_lh = hp.get("momentum", 0.9), hp.get("wd_lh", 0.0)
    if m == 0:
        return (1 - lr * (wd + wd_lh)) * w - lr * np.sign(g)
    g = _grad(g, w, wd, hp)
    _zeros(s, w, "mom")
    s["mom"] = m * s["mom"] - (1 - m) * g
    return (1 - lr * wd_lh) * w + lr * np.sign(s["mom"])


def sgld(w, g, s, t, lr, wd, hp, glob):
    g = _grad(g, w, wd, hp)
    return w - lr / 2 * g + glob["rng"].normal(0, math.sqrt(lr), w.shape)


def dcasgd(w, g, s, t, lr, wd, hp, glob):
    g = _grad(g, w, wd, hp)
    s.setdefault("prev", glob["initial"])
    d = g + hp.get("lamda", 0.04) * g * g * (w - s["prev"])
    m = hp.get("momentum", 0.0)
    if m == 0:
        step = -lr * d
    else:
        _zeros(s, w, "mom")
        s["mom"] = m * s["mom"] - lr * d
        step = s["mom"]
    s["prev"] = w
    return w + step


def _adam_lr(lr, t, b1, b2):
    return lr * math.sqrt(1 - b2**t) / (1 - b1**t)


def adam(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("epsilon", 1e-8)
    g = _grad(g, w, wd, hp, wd_first=True)
    _zeros(s, w, "m", "v")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    return w - _adam_lr(lr, t, b1, b2) * s["m"] / (np.sqrt(s["v"]) + eps)


def adamw(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("epsilon", 1e-6)
    g = _grad(g, w, 0.0, hp)
    _zeros(s, w, "m", "v")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    eta = _adam_lr(lr, t, b1, b2) if hp.get("correct_bias", True) else lr
    return w - eta * (s["m"] / (np.sqrt(s["v"]) + eps) + wd * w)


def adamax(w, g, s, t, lr, wd, hp, glob):
    b1, b2 = hp.get("beta1", 0.9), hp.get("beta2", 0.999)
    g = _grad(g, w, wd, hp)
    _zeros(s, w, "m", "u")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["u"] = np.maximum(b2 * s["u"], np.abs(g))
    return w - lr / (1 - b1**t) * s["m"] / s["u"]


def nadam(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("epsilon", 1e-8)
    decay = hp.get("schedule_decay", 0.004)
    g = _grad(g, w, wd, hp)
    mt = b1 * (1 - 0.5 * 0.96 ** (t * decay))
    mt1 = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * decay))
    glob["m_schedule"] = glob.get("m_schedule", 1.0) * mt
    sched_next = glob["m_schedule"] * mt1
    _zeros(s, w, "m", "v")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    m_bar = mt1 * s["m"] / (1 - sched_next) + (1 - mt) * g / (1 - glob["m_schedule"])
    return w - lr * m_bar / (np.sqrt(s["v"] / (1 - b2**t)) + eps)


def adabelief(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("epsilon", 1e-6)
    g = _grad(g, w, wd, hp, wd_first=True)
    _zeros(s, w, "m", "v")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * (g - s["m"]) ** 2 + eps
    eta = _adam_lr(lr, t, b1, b2) if hp.get("correct_bias", True) else lr
    return w - eta * s["m"] / (np.sqrt(s["v"]) + eps)


def adagrad(w, g, s, t, lr, wd, hp, glob):
    g = _grad(g, w, wd, hp)
    _zeros(s, w, "h")
    s["h"] = s["h"] + g * g
    return w - lr * g / (np.sqrt(s["h"]) + hp.get("epsilon", 1e-6))


def adadelta(w, g, s, t, lr, wd, hp, glob):
    rho, eps = hp.get("rho", 0.9), hp.get("epsilon", 1e-6)
    g = _grad(g, w, wd, hp)
    _zeros(s, w, "ag", "ad")
    s["ag"] = rho * s["ag"] + (1 - rho) * g * g
    delta = np.sqrt(s["ad"] + eps) / np.sqrt(s["ag"] + eps) * g
    s["ad"] = rho * s["ad"] + (1 - rho) * delta * delta
    return w - lr * delta


def rmsprop(w, g, s, t, lr, wd, hp, glob):
    rho, eps, m = hp.get("rho", 0.9), hp.get("epsilon", 1e-8), hp.get("momentum", 0.9)
    g = _grad(g, w, wd, hp)
    _zeros(s, w, "mean", "var", "mom")
    s["var"] = rho * s["var"] + (1 - rho) * g * g
    if not hp.get("centered", False):
        w = w - lr * g / (np.sqrt(s["var"]) + eps)
    else:
        s["mean"] = rho * s["mean"] + (1 - rho) * g
        s["mom"] = m * s["mom"] - lr * g / np.sqrt(s["var"] - s["mean"] ** 2 + eps)
        w = w + s["mom"]
    cw = hp.get("clip_weights")
    return w if cw is None else np.clip(w, -cw, cw)


def ftrl(w, g, s, t, lr, wd, hp, glob):
    lamda1, beta = hp.get("lamda1", 0.01), hp.get("beta", 1.0)
    g = _grad(g, w, 0.0, hp)
    _zeros(s, w, "z", "n")
    s["z"] = s["z"] + g - (np.sqrt(s["n"] + g * g) - np.sqrt(s["n"])) / lr * w
    s["n"] = s["n"] + g * g
    return (
        -np.sign(s["z"])
        * np.maximum(np.abs(s["z"]) - lamda1, 0)
        / ((beta + np.sqrt(s["n"])) / lr + wd)
    )


def ftml(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.6), hp.get("beta2", 0.999), hp.get("epsilon", 1e-8)
    g = _grad(g, w, wd, hp)
    _zeros(s, w, "d", "v", "z")
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    d = (1 - b1**t) / lr * (np.sqrt(s["v"] / (1 - b2**t)) + eps)
    s["z"] = b1 * s["z"] + (1 - b1) * g - (d - b1 * s["d"]) * w
    s["d"] = d
    return -s["z"] / d


def _trust(r1, r2):
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = r1 / r2
    return ratio if np.isfinite(ratio) and ratio != 0 else 1.0


def _bounded_norm(w, hp):
    r1 = np.linalg.norm(w)
    if hp.get("lower_bound") is not None:
        r1 = max(r1, hp["lower_bound"])
    if hp.get("upper_bound") is not None:
        r1 = min(r1, hp["upper_bound"])
    return r1


def lamb(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("epsilon", 1e-6)
    g = _grad(g, w, 0.0, hp)
    _zeros(s, w, "m", "v")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    if hp.get("bias_correction", True):
        u = s["m"] / (1 - b1**t) / (np.sqrt(s["v"] / (1 - b2**t)) + eps)
    else:
        u = s["m"] / (np.sqrt(s["v"]) + eps)
    u = u + wd * w
    return w - lr * _trust(_bounded_norm(w, hp), np.linalg.norm(u)) * u


def lans(w, g, s, t, lr, wd, hp, glob):
    b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("epsilon", 1e-6)
    g = hp.get("rescale_grad", 1.0) * g
    g = g / np.linalg.norm(g)
    if hp.get("clip_gradient") is not None:
        g = np.clip(g, -hp["clip_gradient"], hp["clip_gradient"])
    _zeros(s, w, "m", "v")
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    r1 = _bounded_norm(w, hp)
    denom = np.sqrt(s["v"] / (1 - b2**t)) + eps
    u = s["m"] / (1 - b1**t) / denom + wd * w
    w = w - lr * b1 * _trust(r1, np.linalg.norm(u)) * u
    u = g / denom + wd * w
    return w - lr * (1 - b1) * _trust(r1, np.linalg.norm(u)) * u


def lars(w, g, s, t, lr, wd, hp, glob):
    name = glob["name"]
    if not name.endswith(("gamma", "beta", "bias")):
        w_norm = np.linalg.norm(w)
        g_norm = np.linalg.norm(hp.get("rescale_grad", 1.0) * g)
        ratio = w_norm / g_norm if g_norm else np.inf
        if np.isfinite(ratio) and ratio != 0:
            lr = (
                lr
                * hp.get("eta", 0.001)
                * w_norm
                / (g_norm + wd * w_norm + hp.get("epsilon", 1e-8))
            )
    return sgd(w, g, s, t, lr, wd, {**hp, "momentum": hp.get("momentum", 0.0)}, glob)
