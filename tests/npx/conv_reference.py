"""Direct NumPy transcriptions of convolution, deconvolution and pooling (loops over output
positions, float64) that the fast operators are checked against on tiny shapes."""

from __future__ import annotations

import itertools

import numpy


def convolution(x, w, b, stride, dilate, pad, groups):
    """x (N, C, *s), w (F, C/G, *k), channels first."""
    nd = x.ndim - 2
    xp = numpy.pad(x.astype(numpy.float64), [(0, 0), (0, 0)] + [(p, p) for p in pad])
    f, cg = w.shape[:2]
    kernel = w.shape[2:]
    out_sp = [
        (xp.shape[2 + i] - dilate[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(nd)
    ]
    y = numpy.zeros((x.shape[0], f) + tuple(out_sp))
    fg = f // groups
    for o in itertools.product(*(range(n) for n in out_sp)):
        for k in itertools.product(*(range(n) for n in kernel)):
            idx = tuple(o[i] * stride[i] + k[i] * dilate[i] for i in range(nd))
            patch = xp[(slice(None), slice(None)) + idx]  # (N, C)
            for g in range(groups):
                wk = w[(slice(g * fg, (g + 1) * fg), slice(None)) + k]  # (fg, cg)
                y[(slice(None), slice(g * fg, (g + 1) * fg)) + o] += (
                    patch[:, g * cg : (g + 1) * cg] @ wk.T
                )
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nd)
    return y


def deconvolution(x, w, b, stride, dilate, pad, adj, groups):
    """x (N, C, *s), w (C, F/G, *k): scatter each input pixel times the kernel."""
    nd = x.ndim - 2
    kernel = w.shape[2:]
    c, fg = w.shape[:2]
    cg = c // groups
    full = [
        (x.shape[2 + i] - 1) * stride[i] + dilate[i] * (kernel[i] - 1) + 1 + adj[i]
        for i in range(nd)
    ]
    y = numpy.zeros((x.shape[0], fg * groups) + tuple(full))
    for i in itertools.product(*(range(n) for n in x.shape[2:])):
        for k in itertools.product(*(range(n) for n in kernel)):
            idx = tuple(i[d] * stride[d] + k[d] * dilate[d] for d in range(nd))
            for g in range(groups):
                xin = x[(slice(None), slice(g * cg, (g + 1) * cg)) + i]  # (N, cg)
                wk = w[(slice(g * cg, (g + 1) * cg), slice(None)) + k]  # (cg, fg)
                y[(slice(None), slice(g * fg, (g + 1) * fg)) + idx] += xin @ wk
    y = y[(slice(None), slice(None)) + tuple(slice(p, n - p) for p, n in zip(pad, full))]
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nd)
    return y


def pooling(x, kernel, stride, pad, pool_type, full, count_include_pad):
    nd = x.ndim - 2
    sp = x.shape[2:]
    if full:
        out_sp = [-(-(sp[i] + 2 * pad[i] - kernel[i]) // stride[i]) + 1 for i in range(nd)]
    else:
        out_sp = [(sp[i] + 2 * pad[i] - kernel[i]) // stride[i] + 1 for i in range(nd)]
    y = numpy.zeros(x.shape[:2] + tuple(out_sp))
    for o in itertools.product(*(range(n) for n in out_sp)):
        lo = [o[i] * stride[i] - pad[i] for i in range(nd)]
        hi = [min(lo[i] + kernel[i], sp[i] + pad[i]) for i in range(nd)]
        size = numpy.prod([hi[i] - lo[i] for i in range(nd)])
        clo = [max(v, 0) for v in lo]
        chi = [min(h, n) for h, n in zip(hi, sp)]
        win = x[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in zip(clo, chi))]
        win = win.reshape(x.shape[:2] + (-1,)).astype(numpy.float64)
        if pool_type == "max":
            y[(slice(None), slice(None)) + o] = win.max(axis=-1)
        elif pool_type == "sum":
            y[(slice(None), slice(None)) + o] = win.sum(axis=-1)
        else:
            n = size if count_include_pad else win.shape[-1]
            y[(slice(None), slice(None)) + o] = win.sum(axis=-1) / n
    return y
