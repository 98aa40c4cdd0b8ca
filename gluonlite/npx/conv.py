"""``mx.npx`` convolution, deconvolution and pooling (1-D, 2-D, 3-D), forward and backward.

On the CPU a channels-first, ungrouped convolution (every convolution of a ResNet) runs in
its own layout through ``_Columns``: im2col of cache-sized blocks straight from the padded
input and one BLAS call per block writing into the output, so no layout copies of the
input or output (see its docstring).

One layout serves every other op and the GPU: the padded input, channels last, split
into its stride phases (for stride 2 in 2-D: the four sub-images of even/odd rows and
columns) and flattened to rows of channels. In that layout every kernel tap ``j`` reads
the rows ``r + offsets[j]`` for output row ``r``, a fixed shift, for all images of the
batch at once:

- convolution gathers, per block of output rows, the taps' rows into a small column block
  (im2col restricted to a cache-sized block) and multiplies it with the weight in one
  BLAS call into the preallocated output;
- its input gradient is the same gather-and-multiply over the output gradient with the
  taps mirrored (a transposed convolution), so no scatter (col2im) is needed; the weight
  gradient multiplies the same column blocks with the output gradient;
- pooling reduces the shifted row slabs tap by tap (a loop over kernel taps, never over
  pixels or images).

Rows that fall between images or past the valid output are computed and dropped; they
cost ``prod(padded) / prod(out)`` extra work, a few percent for 3x3 kernels. float16 and
bfloat16 compute in float32 and round once. On a GPU the same code runs on CuPy, the
gather in ``kernels/conv.cu`` and the multiplications in cuBLAS; pooling's backward of
float32, float16 and bfloat16 data runs ``kernels/pool.cu`` instead of the tap loop (one
gather per input element, no phase-layout buffers, the same sums in the same order).

>>> import gluonlite as mx
>>> x = mx.np.ones((1, 1, 4, 4))
>>> w = mx.np.ones((2, 1, 3, 3))
>>> mx.npx.convolution(x, w, kernel=(3, 3), num_filter=2, no_bias=True).shape
(1, 2, 2, 2)
>>> mx.npx.pooling(x, kernel=(2, 2), stride=(2, 2), pool_type='avg').shape
(1, 1, 2, 2)
"""

from __future__ import annotations

import itertools
import math

import numpy
from numpy.lib.stride_tricks import as_strided

from .. import _backend, autograd
from ..autograd import record_op, requires_grad
from ..ndarray import linear_op, ndarray
from .nn import _check_same_device
from types import ModuleType
from typing import Any
from .._typing import DTypeLike, RawArray
from collections.abc import Callable, Iterator, Sequence

__all__ = ["convolution", "deconvolution", "pooling"]

# Elements of one column block: 2**18 float32 (1 MiB) stays in the L2 cache with the
# weight; wide layers (K * C in the thousands) still get at least _BLOCK_ROWS rows, as BLAS
# runs short, wide products slowly.
_BLOCK_ELEMS = 1 << 18
_BLOCK_ROWS = 256
# The CPU's channels-first column blocks (_Columns): up to 2**19 float32 (2 MiB: the block
# is still in the cache when BLAS packs it, on a machine whose L3 other processes share)
# and at least 1024 output positions, so the products stay large and the weight gradient's
# per-block sums few; measured best of 2**17..2**22 and 256..2048 on ResNet-18's layers.
_COL_ELEMS = 1 << 19
_COL_MIN = 1024
_LAYOUTS = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}
_POOL_TYPES = ("max", "avg", "sum")


# ---------------------------------------------------------------------------------------
# arguments


def _spatial_tuple(op: str, name: str, value: Any, nd: int, default: int) -> tuple[int, ...]:
    if value is None or (isinstance(value, (tuple, list)) and len(value) == 0):
        return (default,) * nd
    if isinstance(value, (int, numpy.integer)):
        return (int(value),) * nd
    t = tuple(int(v) for v in value)
    if len(t) != nd:
        raise ValueError(
            f"{op}: {name}={tuple(value)} has {len(t)} entries, expected {nd} for a {nd}-D kernel"
        )
    return t


def _channels_last(op: str, layout: str | None, nd: int) -> bool:
    if nd not in _LAYOUTS:
        raise ValueError(f"{op}: kernel must have 1, 2 or 3 dimensions, got {nd}")
    if layout is None or layout == _LAYOUTS[nd][0]:
        return False
    if layout == _LAYOUTS[nd][1]:
        return True
    raise ValueError(
        f"{op}: layout {layout!r} does not fit a {nd}-D kernel; expected "
        f"{_LAYOUTS[nd][0]!r} or {_LAYOUTS[nd][1]!r}"
    )


def _compute_dtype(dtype: numpy.dtype[Any]) -> numpy.dtype[Any]:
    return numpy.dtype(numpy.float32) if dtype.name in ("float16", "bfloat16") else dtype


# ---------------------------------------------------------------------------------------
# the phase layout


class _Grid:
    """Geometry of one convolution or pooling window over a batch.

    ``offsets[j]`` is the row shift of kernel tap ``j`` (C order over the kernel) in the
    phase layout of ``rows`` rows per phase; output row ``r`` (C order over
    ``(batch, *per_phase)``) is valid where its spatial index is below ``out``.
    """

    def __init__(
        self,
        batch: int,
        spatial: Sequence[int],
        kernel: Sequence[int],
        stride: Sequence[int],
        dilate: Sequence[int],
        pad_lo: Sequence[int],
        pad_hi: Sequence[int],
    ) -> None:
        self.batch, self.spatial, self.kernel = batch, tuple(spatial), tuple(kernel)
        self.stride, self.pad_lo = tuple(stride), tuple(pad_lo)
        self.padded = tuple(n + lo + hi for n, lo, hi in zip(spatial, pad_lo, pad_hi))
        self.out = tuple(
            (p - d * (k - 1) - 1) // s + 1
            for p, k, s, d in zip(self.padded, kernel, stride, dilate)
        )
        self.per_phase = tuple(-(-p // s) for p, s in zip(self.padded, stride))
        self.rows = batch * math.prod(self.per_phase)
        self.phases = math.prod(stride)
        row_stride = [math.prod(self.per_phase[i + 1 :]) for i in range(len(spatial))]
        offsets = []
        for tap in itertools.product(*(range(k) for k in kernel)):
            reach = [t * d for t, d in zip(tap, dilate)]
            phase = 0
            for a, s in zip(reach, stride):
                phase = phase * s + a % s
            shift = sum((a // s) * rs for a, s, rs in zip(reach, stride, row_stride))
            offsets.append(phase * self.rows + shift)
        self.offsets = numpy.array(offsets, dtype=numpy.int64)
        self.span = int(self.offsets.max())

    def phase_slices(self) -> Iterator[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:
        """Per phase: (phase index, per-phase slices, input slices) of the valid input."""
        for number, phase in enumerate(itertools.product(*(range(s) for s in self.stride))):
            inner, outer = [], []
            for p, s, lo, n in zip(phase, self.stride, self.pad_lo, self.spatial):
                first = max(0, -(-(lo - p) // s))  # first phase index inside the input
                start = p + s * first - lo
                count = len(range(start, n, s))
                inner.append(slice(first, first + count))
                outer.append(slice(start, start + s * (count - 1) + 1 if count else start, s))
            yield number, tuple(inner), tuple(outer)


def _to_phases(
    xp: ModuleType, x_cl: RawArray, grid: _Grid, fill: float, dtype: DTypeLike
) -> RawArray:
    """``x_cl`` (batch, *spatial, C) padded with ``fill`` in the phase layout: an array of
    ``phases * rows + span`` rows of C (the tail keeps every tap's read in bounds)."""
    c = x_cl.shape[-1]
    total = grid.phases * grid.rows
    buf = xp.empty((total + grid.span, c), dtype=dtype)
    buf[total:] = fill
    view = buf[:total].reshape((grid.phases, grid.batch) + grid.per_phase + (c,))
    for number, inner, outer in grid.phase_slices():
        target = view[number]
        if any(sl.stop - sl.start < n for sl, n in zip(inner, grid.per_phase)):
            target[...] = fill
        target[(slice(None),) + inner] = x_cl[(slice(None),) + outer]
    return buf


def _from_phases(
    xp: ModuleType, buf: RawArray, grid: _Grid, dtype: DTypeLike, channels_first: bool = False
) -> RawArray:
    """The inverse of ``_to_phases``: (batch, *spatial, C) from the phase layout, padding
    dropped; (batch, C, *spatial) with ``channels_first`` (one copy, not two)."""
    c = buf.shape[-1]
    view = buf[: grid.phases * grid.rows].reshape((grid.phases, grid.batch) + grid.per_phase + (c,))
    if channels_first:
        out = xp.empty((grid.batch, c) + grid.spatial, dtype=dtype)
        for number, inner, outer in grid.phase_slices():
            out[(slice(None), slice(None)) + outer] = xp.moveaxis(
                view[number][(slice(None),) + inner], -1, 1
            )
        return out
    out = xp.empty((grid.batch,) + grid.spatial + (c,), dtype=dtype)
    for number, inner, outer in grid.phase_slices():
        out[(slice(None),) + outer] = view[number][(slice(None),) + inner]
    return out


def _valid(full: RawArray, grid: _Grid) -> RawArray:
    """The valid outputs (batch, *out, C) of ``full`` (rows, C)."""
    c = full.shape[-1]
    view = full.reshape((grid.batch,) + grid.per_phase + (c,))
    return view[(slice(None),) + tuple(slice(0, n) for n in grid.out)]


def _embed(xp: ModuleType, y_cl: RawArray, grid: _Grid, dtype: DTypeLike) -> RawArray:
    """(rows, C) holding ``y_cl`` (batch, *out, C) at the valid rows and zeros elsewhere."""
    c = y_cl.shape[-1]
    full = xp.zeros((grid.rows, c), dtype=dtype)
    _valid(full, grid)[...] = y_cl
    return full


def _take_rows(xp: ModuleType, src: RawArray, index: Any, out: Any) -> None:
    if xp is numpy:
        # mode='clip' writes straight into out (mode='raise' buffers); indices are in range.
        numpy.take(src, index, axis=0, out=out, mode="clip")
    else:
        from .. import _kernels

        _kernels.gather_rows(src, index, out)


def _column_blocks(
    xp: ModuleType, src: RawArray, offsets: RawArray, rows: int, dtype: DTypeLike
) -> RawArray:
    """Yields ``(r0, n, block)``: the column block (n, K, width) of output rows r0..r0+n,
    ``block[r, j] = src[r0 + r + offsets[j]]``, cache-sized, in one reused buffer."""
    taps, width = len(offsets), src.shape[1]
    if taps == 1:  # a 1x1 kernel: the rows themselves, no copy
        off = int(offsets[0])
        yield 0, rows, src[off : off + rows].reshape(rows, 1, width)
        return
    step = min(rows, max(_BLOCK_ROWS, _BLOCK_ELEMS // max(1, taps * width)))
    base = xp.asarray(numpy.arange(step)[:, None] + offsets[None, :])
    col = xp.empty((step, taps, width), dtype=dtype)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        block = col[:n]
        _take_rows(xp, src, base[:n] + r0, block)
        yield r0, n, block


def _gather_matmul(
    xp: ModuleType, src: RawArray, offsets: RawArray, rows: int, wmat: RawArray, dtype: DTypeLike
) -> RawArray:
    """``out[r] = sum_j src[r + offsets[j]] @ w[g, :, j].T`` per group ``g``.

    ``src`` (rows + span, G * cin); ``wmat`` (G, cout, K * cin), tap-major along its last
    axis (used transposed: OpenBLAS runs the tall, narrow products of small layers about
    twice as fast with B in this order). Returns (rows, G * cout).
    """
    groups, cout, width_k = wmat.shape
    taps = len(offsets)
    cin = width_k // taps
    out = xp.empty((rows, groups * cout), dtype=dtype)
    if cin == 1 and groups > 1:  # depthwise: a multiply-add per tap, no GEMM
        view = out.reshape(rows, groups, cout)
        view[...] = 0
        for j, off in enumerate(offsets.tolist()):
            view += src[off : off + rows, :, None] * wmat[None, :, :, j]
        return out
    for r0, n, block in _column_blocks(xp, src, offsets, rows, dtype):
        if groups == 1:
            xp.matmul(block.reshape(n, taps * cin), wmat[0].T, out=out[r0 : r0 + n])
            continue
        for g in range(groups):
            part = block[:, :, g * cin : (g + 1) * cin].reshape(n, taps * cin)
            out[r0 : r0 + n, g * cout : (g + 1) * cout] = part @ wmat[g].T
    return out


def _gather_weight_grad(
    xp: ModuleType, src: RawArray, offsets: RawArray, dy: RawArray, groups: int, dtype: DTypeLike
) -> RawArray:
    """The gradient of ``_gather_matmul``'s ``wmat`` for output gradient ``dy``
    (rows, G * cout): (G, cout, K * cin)."""
    rows = dy.shape[0]
    taps, width = len(offsets), src.shape[1]
    cin, cout = width // groups, dy.shape[1] // groups
    if cin == 1 and groups > 1:
        dy3 = dy.reshape(rows, groups, cout)
        grads = [xp.einsum("rg,rgm->gm", src[off : off + rows], dy3) for off in offsets.tolist()]
        return xp.stack(grads, axis=2)
    dw = xp.zeros((groups, cout, taps * cin), dtype=dtype)
    for r0, n, block in _column_blocks(xp, src, offsets, rows, dtype):
        for g in range(groups):
            part = (
                block[:, :, g * cin : (g + 1) * cin].reshape(n, taps * cin)
                if groups > 1
                else block.reshape(n, taps * cin)
            )
            dw[g] += dy[r0 : r0 + n, g * cout : (g + 1) * cout].T @ part
    return dw


def _input_grad(
    xp: ModuleType, dfull: RawArray, grid: _Grid, wmat_t: RawArray, dtype: DTypeLike
) -> RawArray:
    """The input gradient (batch, *spatial, C) of a convolution whose output gradient is
    ``dfull`` (rows, G * cout, zero off the valid rows): per stride phase, the convolution
    of ``dfull`` with that phase's taps mirrored. ``wmat_t`` is (G, cin, K * cout), the
    weight's taps transposed (``_transposed_matrix``)."""
    rows, taps = grid.rows, len(grid.offsets)
    phase, shift = grid.offsets // rows, grid.offsets % rows
    reach = int(shift.max())
    src = xp.zeros((reach + rows, dfull.shape[1]), dtype=dtype)
    src[reach:] = dfull
    groups, cin, _ = wmat_t.shape
    per_tap = wmat_t.reshape(groups, cin, taps, -1)
    fill = xp.zeros if len(set(phase.tolist())) < grid.phases else xp.empty
    dbuf = fill((grid.phases * rows, groups * cin), dtype=dtype)
    for p in sorted(set(phase.tolist())):
        # Output row q of this phase takes dfull[q - shift_j] through tap j.
        mine = numpy.flatnonzero(phase == p)
        wmat_p = (
            wmat_t
            if len(mine) == taps
            else per_tap[:, :, xp.asarray(mine), :].reshape(groups, cin, -1)
        )
        dbuf[p * rows : (p + 1) * rows] = _gather_matmul(
            xp, src, reach - shift[mine], rows, wmat_p, dtype
        )
    return _from_phases(xp, dbuf, grid, dtype)


# ---------------------------------------------------------------------------------------
# channels-first convolution on the CPU: im2col in cache-sized blocks, no layout copies


class _Columns:
    """Column blocks of a channels-first, ungrouped convolution on NumPy.

    The input stays in its own layout (N, C, *spatial), zero-padded once. A block is a
    range of images (small images) or a range of the first output axis of one image
    (large ones); its columns, ``C * K`` rows (C order over channel and kernel tap) by
    the block's output positions, are one strided copy of the padded input, in a buffer
    reused across blocks. Every product is then a single BLAS call whose operands are
    already contiguous: the forward writes ``W @ col`` straight into the output's
    (N, F, positions) rows, so neither the input nor the output is transposed as a whole
    (small images transpose each block's output, see ``transpose``). The data gradient
    is the mirrored convolution of the output gradient (``mirrored``), whose columns give
    the weight gradient too (``backward``), or col2im.
    """

    def __init__(
        self,
        shape: Sequence[int],
        kernel: Sequence[int],
        stride: Sequence[int],
        dilate: Sequence[int],
        pad: Sequence[int],
        num_filter: int,
    ) -> None:
        self.batch, self.channels = shape[0], shape[1]
        self.spatial, self.kernel = tuple(shape[2:]), tuple(kernel)
        self.stride, self.dilate, self.pad = tuple(stride), tuple(dilate), tuple(pad)
        self.padded = tuple(n + 2 * p for n, p in zip(self.spatial, pad))
        self.out = tuple(
            (p - d * (k - 1) - 1) // s + 1
            for p, k, s, d in zip(self.padded, kernel, stride, dilate)
        )
        self.filters = int(num_filter)
        self.width = self.channels * math.prod(kernel)  # rows of a column block
        self.inner = math.prod(self.out[1:])  # positions per step of the first output axis
        positions = math.prod(self.out)
        want = max(_COL_MIN, _COL_ELEMS // self.width)  # positions per block
        if positions <= want:
            images = max(1, min(self.batch, want // positions))
            # as many images in every block (the last one too: no narrow product)
            self.images, self.steps = -(-self.batch // -(-self.batch // images)), self.out[0]
        else:
            self.images, self.steps = 1, max(1, min(self.out[0], want // self.inner))
        self.cols = self.images * self.steps * self.inner  # most positions of a block
        # Small images (fewer positions than column rows, the later stages of a ResNet):
        # each product runs over all images of a block at once, with the images axis
        # inside the columns, and the output (gradient) transposed between (F, images,
        # positions) and the array's (images, F, positions), a copy F / (C*K) the size of
        # the columns; per image, the products would be too narrow for BLAS, and the
        # weight gradient a sum of per-image products. Large images need no copy.
        self.transpose = self.images > 1 and self.width > positions

    def blocks(self) -> Iterator[tuple[int, int, int, int]]:
        """Yields ``(n0, n1, r0, r1)``: images n0..n1, first output axis r0..r1, in blocks
        of equal size (a short last block would make a narrow product)."""
        rows = self.out[0]
        parts = -(-rows // self.steps)
        step = -(-rows // parts)
        for n0 in range(0, self.batch, self.images):
            n1 = min(self.batch, n0 + self.images)
            for r0 in range(0, rows, step):
                yield n0, n1, r0, min(rows, r0 + step)

    def taps(self, padded: RawArray) -> RawArray:
        """The view (N, C, *kernel, *out) of ``padded`` (N, C, *padded) that the columns
        copy (im2col) and the input gradient adds into (col2im); writable when ``padded``
        is. Made once per array: a block is a slice of it (``block_view``)."""
        st = padded.strides
        shape = (self.batch, self.channels) + self.kernel + self.out
        strides = (
            (st[0], st[1])
            + tuple(a * d for a, d in zip(st[2:], self.dilate))
            + tuple(a * s for a, s in zip(st[2:], self.stride))
        )
        return as_strided(padded, shape, strides)

    def block_view(self, taps: RawArray, block: tuple[int, int, int, int]) -> RawArray:
        """The block's part (images, C, *kernel, steps, *out[1:]) of ``taps``."""
        n0, n1, r0, r1 = block
        return taps[(slice(n0, n1),) + (slice(None),) * (len(self.kernel) + 1) + (slice(r0, r1),)]

    def pad_input(self, x: RawArray, dtype: Any) -> RawArray:
        """``x`` zero-padded, in ``dtype`` (``x`` itself when nothing changes)."""
        if not any(self.pad):
            return x.astype(dtype, copy=False)
        xp = numpy.empty(x.shape[:2] + self.padded, dtype=dtype)
        for axis, (p, n) in enumerate(zip(self.pad, self.spatial), start=2):
            lead = (slice(None),) * axis
            xp[lead + (slice(0, p),)] = 0
            xp[lead + (slice(p + n, None),)] = 0
        xp[self.interior()] = x
        return xp

    def interior(self) -> tuple[slice, ...]:
        return (slice(None), slice(None)) + tuple(
            slice(p, p + n) for p, n in zip(self.pad, self.spatial)
        )

    def columns(
        self, buf: RawArray, taps: RawArray, block: tuple[int, int, int, int], images_first: bool
    ) -> RawArray:
        """The block's columns in ``buf``: (images, C*K, positions) when
        ``images_first``, else (C*K, images * positions)."""
        n0, n1, r0, r1 = block
        view = self.block_view(taps, block)
        nb, count = n1 - n0, (r1 - r0) * self.inner
        if not images_first:
            view = self.images_inner(view)
        col = buf[: nb * self.width * count].reshape(view.shape)
        numpy.copyto(col, view)
        return col.reshape((nb, self.width, count) if images_first else (self.width, nb * count))

    def images_inner(self, view: RawArray) -> RawArray:
        """``taps``' view with the images axis moved behind the kernel taps, so that
        (C, *kernel) and (images, *positions) flatten to a matrix."""
        nd = len(self.kernel)
        return view.transpose((*range(1, nd + 2), 0, *range(nd + 2, view.ndim)))

    def forward(
        self,
        xp: RawArray,
        wmat: RawArray,
        bias: RawArray | None,
        dtype: Any,
        partner: RawArray | None = None,
    ) -> tuple[RawArray, RawArray | None]:
        """``y`` (N, F, *out) of the padded input ``xp`` and ``wmat`` (F, C*K), and with
        ``partner`` (N, F, *out) also ``partner``'s products with the same columns,
        (F, C*K) summed over the batch (else None): for a mirrored convolution (see
        ``backward``), the weight gradient, at the cost of one product per block and no
        columns of its own."""
        y = numpy.empty((self.batch, self.filters) + self.out, dtype=dtype)
        y3 = y.reshape(self.batch, self.filters, -1)
        p3 = None if partner is None else partner.reshape(self.batch, self.filters, -1)
        buf = numpy.empty(self.width * self.cols, dtype=dtype)
        yt_buf: Any = numpy.empty(self.filters * self.cols, dtype=dtype) if self.transpose else None
        pt_buf: Any = None
        if self.transpose and p3 is not None:
            pt_buf = numpy.empty(self.filters * self.cols, dtype=dtype)
        taps = self.taps(xp)
        acc = part = None
        for block in self.blocks():
            n0, n1, r0, r1 = block
            target = y3[n0:n1, :, r0 * self.inner : r1 * self.inner]
            nb, count = target.shape[0], target.shape[2]
            if self.transpose:
                yt = yt_buf[: self.filters * nb * count].reshape(self.filters, nb * count)
                col = self.columns(buf, taps, block, False)
                numpy.matmul(wmat, col, out=yt)
                numpy.copyto(target, yt.reshape(self.filters, nb, count).transpose(1, 0, 2))
                if p3 is not None:
                    pt = pt_buf[: self.filters * nb * count].reshape(self.filters, nb, count)
                    numpy.copyto(
                        pt, p3[n0:n1, :, r0 * self.inner : r1 * self.inner].transpose(1, 0, 2)
                    )
                    part = numpy.matmul(pt.reshape(self.filters, nb * count), col.T, out=part)
            else:
                col = self.columns(buf, taps, block, True)
                numpy.matmul(wmat, col, out=target)
                if p3 is not None:
                    pb = p3[n0:n1, :, r0 * self.inner : r1 * self.inner]
                    part = numpy.matmul(pb, col.transpose(0, 2, 1))
                    part = part.sum(axis=0) if nb > 1 else part[0]
            if bias is not None:
                target += bias[:, None]
            if part is not None:
                if acc is None:
                    acc, part = part, None
                else:
                    acc += part
        return y, acc

    def backward(
        self,
        dy: RawArray,
        x: RawArray,
        xp: RawArray,
        wmat: RawArray,
        need_data: bool,
        need_weight: bool,
    ) -> tuple[RawArray | None, RawArray | None]:
        """(dx, dwmat) for the output gradient ``dy`` (N, F, *out) of the input ``x`` (xp
        padded); None where not needed.

        With a mirrored convolution (``mirrored``) one set of columns, those of the padded
        ``dy``, serves both gradients: the data gradient is their product with the mirrored
        weight, and the weight gradient (mirrored) their product with ``x``, since
        ``dW[f, c, k] = sum x[c, p] dy[f, p + pad - k]`` is what the mirrored convolution's
        columns hold at row (f, K - 1 - k)."""
        dtype = dy.dtype
        mirror = self.mirrored() if need_data else None
        if mirror is not None:
            dx, dwm = mirror.forward(
                mirror.pad_input(dy, dtype),
                self.mirrored_weight(wmat),
                None,
                dtype,
                partner=x if need_weight else None,
            )
            return dx, None if dwm is None else self.mirrored_weight(dwm, inverse=True)
        dy3 = dy.reshape(self.batch, self.filters, -1)
        buf = numpy.empty(self.width * self.cols, dtype=dtype)
        # col2im into the stride phases of the padded input gradient (for stride 2 in 2-D:
        # its four sub-images of even/odd rows and columns), where every tap's addition is
        # a shifted block with unit strides, not a strided scatter; interleaved at the end.
        grid = _Grid(
            self.batch, self.spatial, self.kernel, self.stride, self.dilate, self.pad, self.pad
        )
        phases: Any = None
        if need_data:
            phases = numpy.zeros(
                self.stride + (self.batch, self.channels) + grid.per_phase, dtype=dtype
            )
        taps = self.taps(xp)
        dw = part = None
        transpose = self.transpose
        dyt_buf: Any = numpy.empty(self.filters * self.cols, dtype=dtype) if transpose else None
        for block in self.blocks():
            n0, n1, r0, r1 = block
            nb, count = n1 - n0, (r1 - r0) * self.inner
            dyb = dy3[n0:n1, :, r0 * self.inner : r1 * self.inner]
            if transpose:
                dyt = dyt_buf[: self.filters * nb * count].reshape(self.filters, nb, count)
                numpy.copyto(dyt, dyb.transpose(1, 0, 2))
                dyt = dyt.reshape(self.filters, nb * count)
            if need_weight:
                if transpose:
                    col = self.columns(buf, taps, block, False)
                    part = numpy.matmul(dyt, col.T, out=part)
                else:
                    col = self.columns(buf, taps, block, True)
                    part = numpy.matmul(dyb, col.transpose(0, 2, 1))
                    part = part.sum(axis=0) if nb > 1 else part[0]
                if dw is None:
                    dw, part = part, None
                else:
                    dw += part
            if need_data:
                dcol = buf[: self.width * nb * count]
                if transpose:
                    numpy.matmul(wmat.T, dyt, out=dcol.reshape(self.width, nb * count))
                    dcol = dcol.reshape(
                        (self.channels,) + self.kernel + (nb, r1 - r0) + self.out[1:]
                    )
                else:
                    numpy.matmul(wmat.T, dyb, out=dcol.reshape(nb, self.width, count))
                    dcol = dcol.reshape(
                        (nb, self.channels) + self.kernel + (r1 - r0,) + self.out[1:]
                    )
                lead = () if transpose else (slice(None),)
                for tap in numpy.ndindex(*self.kernel):
                    # tap k of output o reads padded position o * s + k * d: phase
                    # (k * d) % s, position o + (k * d) // s within it
                    reach = [k * d for k, d in zip(tap, self.dilate)]
                    phase = tuple(a % st for a, st in zip(reach, self.stride))
                    shift = [a // st for a, st in zip(reach, self.stride)]
                    target = phases[phase][
                        (slice(n0, n1), slice(None), slice(r0 + shift[0], r1 + shift[0]))
                        + tuple(slice(h, h + n) for h, n in zip(shift[1:], self.out[1:]))
                    ]
                    if transpose:
                        target = target.swapaxes(0, 1)
                    target += dcol[lead + (slice(None),) + tap]
        dx = None
        if need_data:
            dx = numpy.empty((self.batch, self.channels) + self.spatial, dtype=dtype)
            flat = phases.reshape((-1, self.batch, self.channels) + grid.per_phase)
            for number, inner, outer in grid.phase_slices():
                dx[(slice(None), slice(None)) + outer] = flat[number][
                    (slice(None), slice(None)) + inner
                ]
        return dx, dw

    def mirrored(self) -> _Columns | None:
        """For stride 1: the convolution of the output gradient whose output is the data
        gradient (padding ``dilate * (k - 1) - pad``, the kernel mirrored, filters and
        channels swapped), so the data gradient is im2col and one product per block
        like the forward, without col2im's scattered additions (about three times the
        cost of the copy). None for strided convolutions, padding beyond the kernel's
        reach, or fewer output positions than filters: there the mirrored weight, a
        transposing copy (about three times a plain copy), costs more than col2im saves
        (measured on ResNet-18's 4x4 stage at batch 8)."""
        pad = tuple(d * (k - 1) - p for d, k, p in zip(self.dilate, self.kernel, self.pad))
        if max(self.stride) > 1 or min(pad) < 0 or self.batch * math.prod(self.out) < self.filters:
            return None
        return _Columns(
            (self.batch, self.filters) + self.out,
            self.kernel,
            self.stride,
            self.dilate,
            pad,
            self.channels,
        )

    def mirrored_weight(self, wmat: RawArray, inverse: bool = False) -> RawArray:
        """``wmat`` (F, C*K) as the mirrored convolution's (C, F*K), or with ``inverse``
        the other way round (the taps reversed and the first two axes swapped either way)."""
        taps = math.prod(self.kernel)
        a, b = (self.channels, self.filters) if inverse else (self.filters, self.channels)
        w = numpy.empty((b, a, taps), dtype=wmat.dtype)
        numpy.copyto(w, wmat.reshape(a, b, taps)[:, :, ::-1].transpose(1, 0, 2))
        return w.reshape(b, -1)


# ---------------------------------------------------------------------------------------
# convolution and deconvolution


def _to_cl(xp: ModuleType, x: RawArray, channels_last: bool) -> RawArray:
    return x if channels_last else xp.moveaxis(x, 1, -1)


def _from_cl(xp: ModuleType, y: RawArray, channels_last: bool) -> RawArray:
    return xp.ascontiguousarray(y if channels_last else xp.moveaxis(y, -1, 1))


def _weight_matrix(
    xp: ModuleType, w: RawArray, groups: int, channels_last: bool, compute: numpy.dtype[Any]
) -> RawArray:
    """Conv weight (F, C/G, *k) or (F, *k, C/G) as (G, F/G, K * C/G), tap-major: a
    reshape for channels-last weights, one transposing copy otherwise."""
    w = w.astype(compute, copy=False)
    if not channels_last:
        w = xp.moveaxis(w, 1, -1)
    f = w.shape[0]
    return xp.ascontiguousarray(w).reshape(groups, f // groups, -1)


def _transposed_matrix(xp: ModuleType, wmat: RawArray, taps: int) -> RawArray:
    """(G, cout, K * cin) -> (G, cin, K * cout): the taps of the input gradient."""
    groups, cout, width = wmat.shape
    cin = width // taps
    return xp.ascontiguousarray(
        wmat.reshape(groups, cout, taps, cin).transpose(0, 3, 2, 1)
    ).reshape(groups, cin, taps * cout)


def _weight_from_matrix(
    xp: ModuleType, dwmat: RawArray, w_shape: tuple[int, ...], channels_last: bool, dtype: DTypeLike
) -> RawArray:
    """The inverse of ``_weight_matrix`` for a gradient."""
    if channels_last:
        return dwmat.reshape(w_shape).astype(dtype, copy=False)
    f, cin = w_shape[0], w_shape[1]
    w = dwmat.reshape((f,) + tuple(w_shape[2:]) + (cin,))
    return xp.ascontiguousarray(xp.moveaxis(w, -1, 1)).astype(dtype, copy=False)


def _conv_args(
    op: str,
    data: ndarray,
    weight: ndarray,
    bias: ndarray | None,
    kernel: Any,
    stride: Any,
    dilate: Any,
    pad: Any,
    num_filter: int,
    num_group: int,
    no_bias: bool,
    layout: str | None,
    transposed: bool = False,
    adj: Any = None,
) -> Any:
    """Checks shared by convolution and deconvolution; returns the normalised geometry."""
    if no_bias:
        bias = None
    elif bias is None:
        raise ValueError(f"{op}: bias is None but no_bias=False; pass a bias or no_bias=True")
    device = _check_same_device(op, data, weight, bias)
    if kernel is None or len(tuple(kernel)) == 0:
        kernel = weight.shape[2:] if layout is None or str(layout)[1] == "C" else weight.shape[1:-1]
    kernel = tuple(int(k) for k in kernel)
    nd = len(kernel)
    cl = _channels_last(op, layout, nd)
    if data.ndim != nd + 2:
        raise ValueError(
            f"{op}: a {nd}-D kernel {kernel} needs {nd + 2}-D data "
            f"({_LAYOUTS.get(nd, ('?',))[cl]}), got data of shape {data.shape}"
        )
    stride = _spatial_tuple(op, "stride", stride, nd, 1)
    dilate = _spatial_tuple(op, "dilate", dilate, nd, 1)
    pad = _spatial_tuple(op, "pad", pad, nd, 0)
    adj = _spatial_tuple(op, "adj", adj, nd, 0)
    if min(kernel + stride + dilate) < 1 or min(pad + adj) < 0:
        raise ValueError(
            f"{op}: kernel {kernel}, stride {stride} and dilate {dilate} must "
            f"be positive and pad {pad} non-negative"
        )
    groups = int(num_group)
    channels = data.shape[-1] if cl else data.shape[1]
    spatial = data.shape[1:-1] if cl else data.shape[2:]
    if groups < 1 or channels % groups:
        raise ValueError(
            f"{op}: data of shape {data.shape} has {channels} channels, not "
            f"divisible by num_group={num_group}"
        )
    w_shape = weight.shape
    w_kernel = tuple(w_shape[1:-1] if cl else w_shape[2:])
    w_in = w_shape[-1] if cl else w_shape[1]
    if transposed:
        expect_first, expect_in = channels, int(num_filter) // groups
    else:
        expect_first, expect_in = int(num_filter), channels // groups
    if (
        len(w_shape) != nd + 2
        or w_kernel != kernel
        or w_shape[0] != expect_first
        or w_in != expect_in
        or int(num_filter) % groups
    ):
        want = (expect_first,) + ((*kernel, expect_in) if cl else (expect_in, *kernel))
        raise ValueError(
            f"{op}: weight of shape {weight.shape} does not fit data of shape "
            f"{data.shape} with kernel={kernel}, num_filter={num_filter}, "
            f"num_group={num_group}; expected {want}"
        )
    if bias is not None and bias.shape != (int(num_filter),):
        raise ValueError(f"{op}: bias of shape {bias.shape}, expected ({num_filter},)")
    return device, bias, kernel, stride, dilate, pad, adj, groups, cl, spatial


def convolution(
    data: Any = None,
    weight: Any = None,
    bias: ndarray | None = None,
    kernel: Any = None,
    stride: Any = None,
    dilate: Any = None,
    pad: Any = None,
    num_filter: int = 1,
    num_group: int = 1,
    workspace: int = 1024,
    no_bias: bool = False,
    cudnn_tune: str | None = None,
    cudnn_off: bool = False,
    layout: str | None = None,
) -> ndarray:
    """MXNet's ``Convolution``: 1-D, 2-D or 3-D, grouped (depthwise when ``num_group``
    equals the channels), dilated, strided, zero-padded.

    Args:
        data: ``(N, C, *spatial)`` (or channels last with ``layout='NHWC'`` etc.).
        weight: ``(num_filter, C / num_group, *kernel)`` (channels last:
            ``(num_filter, *kernel, C / num_group)``).
        bias: (num_filter,), unless ``no_bias``.
        kernel, stride, dilate, pad: per spatial axis (an int repeats).

    ``workspace``, ``cudnn_tune`` and ``cudnn_off`` are accepted and have no effect.
    """
    del workspace, cudnn_tune, cudnn_off
    op = "convolution"
    device, bias, kernel, stride, dilate, pad, _, groups, cl, spatial = _conv_args(
        op, data, weight, bias, kernel, stride, dilate, pad, num_filter, num_group, no_bias, layout
    )
    grid = _Grid(data.shape[0], spatial, kernel, stride, dilate, pad, pad)
    if min(grid.out) < 1:
        raise ValueError(
            f"{op}: kernel {kernel} with dilate {dilate} is larger than the "
            f"padded input {grid.padded} (data of shape {data.shape}, pad "
            f"{pad})"
        )
    xp, dtype = data._xp, data.dtype
    compute = _compute_dtype(dtype)
    inputs = (data, weight) if bias is None else (data, weight, bias)
    geometry = dict(
        kernel=kernel, stride=stride, dilate=dilate, pad=pad, num_group=groups, layout=layout
    )

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:
        # Recorded (create_graph): the input gradient is a deconvolution of g with the same
        # weight, the weight gradient a recorded op of (data, g), the bias' a sum.
        dx = dw = db = None
        if requires_grad(data):
            dx = deconvolution(
                g,
                weight,
                num_filter=data.shape[-1 if cl else 1],
                target_shape=spatial,
                no_bias=True,
                **geometry,
            )
        if requires_grad(weight):
            dw = _weight_grad(data, g, weight.shape, geometry)
        if bias is not None and requires_grad(bias):
            db = g.sum(axis=_non_channel_axes(g.ndim, cl))
        return (dx, dw, db)[: len(inputs)]

    if xp is numpy and groups == 1 and not cl:
        return _convolution_cpu(
            data, weight, bias, inputs, kernel, stride, dilate, pad, int(num_filter), compute, graph
        )
    with _backend.on(device):
        wmat = _weight_matrix(xp, weight._data, groups, cl, compute)
        buf = _to_phases(xp, _to_cl(xp, data._data, cl), grid, 0, compute)
        full = _gather_matmul(xp, buf, grid.offsets, grid.rows, wmat, compute)
        y = _valid(full, grid)
        if bias is not None:
            y += bias._data.astype(compute, copy=False)
        out = ndarray(_from_cl(xp, y, cl).astype(dtype, copy=False), device)

    def backward(g: RawArray) -> Any:
        with _backend.on(device):
            g_cl = _to_cl(xp, g.astype(compute, copy=False), cl)
            dfull = _embed(xp, g_cl, grid, compute)
            dx = dw = db = None
            if requires_grad(data):
                wmat_t = _transposed_matrix(xp, wmat, len(grid.offsets))
                dx = _from_cl(xp, _input_grad(xp, dfull, grid, wmat_t, compute), cl)
                dx = dx.astype(dtype, copy=False)
            if requires_grad(weight):
                dwmat = _gather_weight_grad(xp, buf, grid.offsets, dfull, groups, compute)
                dw = _weight_from_matrix(xp, dwmat, weight.shape, cl, dtype)
            if bias is not None and requires_grad(bias):
                db = dfull.sum(axis=0).astype(dtype, copy=False)
        return (dx, dw, db)[: len(inputs)]

    return record_op(out, inputs, backward, graph)


def _non_channel_axes(ndim: int, channels_last: bool) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if i != (ndim - 1 if channels_last else 1))


def _weight_grad(
    data: ndarray, dy: ndarray, w_shape: tuple[int, ...], geometry: dict[str, Any]
) -> ndarray:
    """The weight gradient of ``convolution(data, W)`` for output gradient ``dy``, as a
    recorded op of (data, dy) (``create_graph``). Bilinear: its gradient for ``h`` (shaped
    like W) is ``deconvolution(dy, h)`` for data and ``convolution(data, h)`` for dy."""
    cl = _channels_last("convolution", geometry["layout"], len(geometry["kernel"]))
    spatial = data.shape[1:-1] if cl else data.shape[2:]
    grid = _Grid(
        data.shape[0],
        spatial,
        geometry["kernel"],
        geometry["stride"],
        geometry["dilate"],
        geometry["pad"],
        geometry["pad"],
    )
    xp, dtype, device = data._xp, data.dtype, data._device
    compute = _compute_dtype(dtype)
    with _backend.on(device):
        buf = _to_phases(xp, _to_cl(xp, data._data, cl), grid, 0, compute)
        dfull = _embed(xp, _to_cl(xp, dy._data.astype(compute, copy=False), cl), grid, compute)
        dwmat = _gather_weight_grad(xp, buf, grid.offsets, dfull, geometry["num_group"], compute)
        out = ndarray(_weight_from_matrix(xp, dwmat, w_shape, cl, dtype), device)

    def vjp(h: ndarray) -> tuple[Any, Any]:
        dd = ddy = None
        if requires_grad(data):
            dd = deconvolution(
                dy,
                h,
                num_filter=data.shape[-1 if cl else 1],
                target_shape=spatial,
                no_bias=True,
                **geometry,
            )
        if requires_grad(dy):
            ddy = convolution(data, h, num_filter=w_shape[0], no_bias=True, **geometry)
        return dd, ddy

    def backward(h: RawArray) -> tuple[Any, ...]:
        with autograd.pause():
            grads = vjp(ndarray(h, device))
        return tuple(None if v is None else v._data for v in grads)

    return record_op(out, (data, dy), backward, lambda out, h: vjp(h))


def _convolution_cpu(
    data: ndarray,
    weight: ndarray,
    bias: ndarray | None,
    inputs: tuple[Any, ...],
    kernel: Any,
    stride: Any,
    dilate: Any,
    pad: Any,
    num_filter: int,
    compute: Any,
    graph: Any,
) -> ndarray:
    """``convolution`` of channels-first, ungrouped NumPy arrays through ``_Columns``."""
    dtype, device = data.dtype, data.device
    wmat = weight._data.astype(compute, copy=False).reshape(num_filter, -1)
    raw = data._data
    taken = None
    if max(kernel) == 1 and not any(pad) and max(stride) > 1:
        # A strided 1x1 convolution reads only the inputs at the stride's points: gathered
        # once, they are the input of a 1x1 convolution of stride 1 (whose columns are
        # contiguous copies, and which has a mirrored backward), and its data gradient is
        # scattered back to those points.
        taken = (slice(None), slice(None)) + tuple(
            slice(0, n, s) for n, s in zip(data.shape[2:], stride)
        )
        raw = numpy.ascontiguousarray(raw[taken], dtype=compute)
        stride = (1,) * len(kernel)
    cols = _Columns(raw.shape, kernel, stride, dilate, pad, num_filter)
    xp = cols.pad_input(raw, compute)
    b = None if bias is None else bias._data.astype(compute, copy=False)
    out = ndarray(cols.forward(xp, wmat, b, compute)[0].astype(dtype, copy=False), device)

    def backward(g: RawArray) -> tuple[Any, ...]:
        dy = numpy.ascontiguousarray(g, dtype=compute)
        x = numpy.ascontiguousarray(raw, dtype=compute)
        dx, dw = cols.backward(dy, x, xp, wmat, requires_grad(data), requires_grad(weight))
        if dx is not None and taken is not None:
            points, dx = dx, numpy.zeros(data.shape, dtype=compute)
            dx[taken] = points
        grads = (
            None if dx is None else dx.astype(dtype, copy=False),
            None if dw is None else dw.reshape(weight.shape).astype(dtype, copy=False),
        )
        if bias is None:
            return grads
        db = None
        if requires_grad(bias):
            db = dy.reshape(dy.shape[0], dy.shape[1], -1).sum(axis=(0, 2)).astype(dtype)
        return grads + (db,)

    return record_op(out, inputs, backward, graph)


def deconvolution(
    data: Any = None,
    weight: Any = None,
    bias: ndarray | None = None,
    kernel: Any = None,
    stride: Any = None,
    dilate: Any = None,
    pad: Any = None,
    adj: Any = None,
    target_shape: Any = None,
    num_filter: int = 1,
    num_group: int = 1,
    workspace: int = 512,
    no_bias: bool = True,
    cudnn_tune: str | None = None,
    cudnn_off: bool = False,
    layout: str | None = None,
) -> ndarray:
    """MXNet's ``Deconvolution`` (transposed convolution), the adjoint of ``convolution``.

    Args:
        data: ``(N, C, *spatial)``.
        weight: ``(C, num_filter / num_group, *kernel)``.
        adj: extra output size at the high end of each axis (``output_padding``).
        target_shape: the output's spatial shape; when given, ``adj`` is derived from it.

    The output has ``(in - 1) * stride - 2 * pad + dilate * (kernel - 1) + 1 + adj``
    elements per spatial axis.
    """
    del workspace, cudnn_tune, cudnn_off
    op = "deconvolution"
    device, bias, kernel, stride, dilate, pad, adj, groups, cl, spatial = _conv_args(
        op,
        data,
        weight,
        bias,
        kernel,
        stride,
        dilate,
        pad,
        num_filter,
        num_group,
        no_bias,
        layout,
        transposed=True,
        adj=adj,
    )
    base = tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + 1
        for n, s, p, d, k in zip(spatial, stride, pad, dilate, kernel)
    )
    if target_shape is not None and len(tuple(target_shape)):
        target = _spatial_tuple(op, "target_shape", target_shape, len(kernel), 0)
        adj = tuple(t - b for t, b in zip(target, base))
    if any(not 0 <= a < max(s, d) for a, s, d in zip(adj, stride, dilate)):
        raise ValueError(
            f"{op}: adj {adj} must be below stride {stride} or dilate "
            f"{dilate} (data of shape {data.shape})"
        )
    out_spatial = tuple(b + a for b, a in zip(base, adj))
    if min(out_spatial) < 1:
        raise ValueError(
            f"{op}: data of shape {data.shape} with kernel {kernel}, stride "
            f"{stride} and pad {pad} gives an empty output {out_spatial}"
        )
    # The convolution whose input gradient this is: input out_spatial, output spatial.
    grid = _Grid(data.shape[0], out_spatial, kernel, stride, dilate, pad, pad)
    xp, dtype = data._xp, data.dtype
    compute = _compute_dtype(dtype)
    with _backend.on(device):
        wmat = _weight_matrix(xp, weight._data, groups, cl, compute)
        x_cl = _to_cl(xp, data._data.astype(compute, copy=False), cl)
        xfull = _embed(xp, x_cl, grid, compute)
        y = _input_grad(xp, xfull, grid, _transposed_matrix(xp, wmat, len(grid.offsets)), compute)
        if bias is not None:
            y += bias._data.astype(compute, copy=False)
        out = ndarray(_from_cl(xp, y, cl).astype(dtype, copy=False), device)
    inputs = (data, weight) if bias is None else (data, weight, bias)

    def backward(g: RawArray) -> Any:
        with _backend.on(device):
            gbuf = _to_phases(xp, _to_cl(xp, g.astype(compute, copy=False), cl), grid, 0, compute)
            dx = dw = db = None
            if requires_grad(data):
                dfull = _gather_matmul(xp, gbuf, grid.offsets, grid.rows, wmat, compute)
                dx = _from_cl(xp, _valid(dfull, grid), cl).astype(dtype, copy=False)
            if requires_grad(weight):
                dwmat = _gather_weight_grad(xp, gbuf, grid.offsets, xfull, groups, compute)
                dw = _weight_from_matrix(xp, dwmat, weight.shape, cl, dtype)
            if bias is not None and requires_grad(bias):
                axes = tuple(i for i in range(g.ndim) if i != (g.ndim - 1 if cl else 1))
                db = g.astype(compute).sum(axis=axes).astype(dtype, copy=False)
        return (dx, dw, db)[: len(inputs)]

    geometry = dict(
        kernel=kernel, stride=stride, dilate=dilate, pad=pad, num_group=groups, layout=layout
    )

    def graph(out: ndarray, g: ndarray) -> tuple[Any, ...]:
        # Recorded (create_graph): deconvolution is convolution's input gradient, so its
        # own input gradient is a convolution of g, and its weight gradient is
        # convolution's weight gradient with the roles of input and output swapped.
        dx = dw = db = None
        if requires_grad(data):
            dx = convolution(
                g, weight, num_filter=data.shape[-1 if cl else 1], no_bias=True, **geometry
            )
        if requires_grad(weight):
            dw = _weight_grad(g, data, weight.shape, geometry)
        if bias is not None and requires_grad(bias):
            db = g.sum(axis=_non_channel_axes(g.ndim, cl))
        return (dx, dw, db)[: len(inputs)]

    return record_op(out, inputs, backward, graph)


# ---------------------------------------------------------------------------------------
# pooling


def _pool_windows(
    xp: ModuleType, grid: _Grid, count_include_pad: bool, compute: numpy.dtype[Any]
) -> Any:
    """Elements each output window averages over, broadcastable to (batch, *out, 1)."""
    ones = xp.ones((1,) + grid.spatial + (1,), dtype=compute)
    one = _Grid(
        1,
        grid.spatial,
        grid.kernel,
        grid.stride,
        (1,) * len(grid.spatial),
        grid.pad_lo,
        tuple(p - n - lo for p, n, lo in zip(grid.padded, grid.spatial, grid.pad_lo)),
    )
    if count_include_pad:
        # Padding counts, the extra cells of pooling_convention='full' do not.
        ones = xp.ones(
            (1,) + tuple(n + 2 * lo for n, lo in zip(grid.spatial, grid.pad_lo)) + (1,),
            dtype=compute,
        )
        one = _Grid(
            1,
            ones.shape[1:-1],
            grid.kernel,
            grid.stride,
            (1,) * len(grid.spatial),
            (0,) * len(grid.spatial),
            tuple(p - n for p, n in zip(grid.padded, ones.shape[1:-1])),
        )
    buf = _to_phases(xp, ones, one, 0, compute)
    count = xp.zeros((one.rows, 1), dtype=compute)
    for off in one.offsets.tolist():
        count += buf[off : off + one.rows]
    return xp.maximum(_valid(count, one), 1)


# Pooling's backward on GPUs runs kernels/pool.cu for float32, float16 and bfloat16 data;
# tests switch it off to compare with the array-op path.
_use_pool_kernels = True


def _pool_kernel_backward(
    data: ndarray,
    cl: bool,
    pool_type: str,
    kernel: Any,
    stride: Any,
    pad: Any,
    count_include_pad: Any,
) -> Callable[..., Any] | None:
    """The backward of one pooling call through kernels/pool.cu (one gather per input
    element, the windows' gradients in the array-op path's order), or None where the array
    ops serve (CPU, float64, the switch off)."""
    if not _use_pool_kernels or data._xp is numpy or data.size == 0:
        return None
    from .. import _kernels

    if _kernels.norm_ctype(data.dtype) is None:
        return None
    device, xp = data.device, data._xp
    raw = _backend.contiguous(xp, data._data)

    def backward(g: RawArray) -> tuple[RawArray]:
        with _backend.on(device):
            g = _backend.contiguous(xp, g.astype(raw.dtype, copy=False))
            return (
                _kernels.pool_backward(
                    raw, g, pool_type, kernel, stride, pad, cl, count_include_pad
                ),
            )

    return backward


def pooling(
    data: Any = None,
    kernel: Any = None,
    stride: Any = None,
    pad: Any = None,
    pool_type: str = "max",
    pooling_convention: str = "valid",
    global_pool: bool = False,
    cudnn_off: bool = False,
    p_value: int | None = None,
    count_include_pad: bool | None = None,
    layout: str | None = None,
) -> ndarray:
    """MXNet's ``Pooling``: ``max``, ``avg`` or ``sum`` over 1-D, 2-D or 3-D windows.

    Args:
        kernel, stride (default 1), pad (default 0): per spatial axis.
        pooling_convention: ``'valid'`` (output ``floor``) or ``'full'`` (``ceil``: the
            last window may reach past the padding).
        global_pool: pool over the whole spatial extent (``kernel`` ignored).
        count_include_pad: for ``avg``, whether padding counts in the divisor (default
            True, as in MXNet).

    ``p_value`` (``lp`` pooling) is not supported.
    """
    del cudnn_off
    op = "pooling"
    if pool_type not in _POOL_TYPES:
        raise ValueError(
            f"{op}: pool_type must be one of {_POOL_TYPES}, got {pool_type!r}"
            + (" (lp pooling is not supported)" if pool_type == "lp" else "")
        )
    if pooling_convention not in ("valid", "full"):
        raise ValueError(
            f"{op}: pooling_convention must be 'valid' or 'full', got {pooling_convention!r}"
        )
    nd = data.ndim - 2
    cl = _channels_last(op, layout, nd)
    spatial = data.shape[1:-1] if cl else data.shape[2:]
    device, xp, dtype = data.device, data._xp, data.dtype
    compute = _compute_dtype(dtype)
    if global_pool:
        axes = tuple(range(1, nd + 1)) if cl else tuple(range(2, nd + 2))
        size = math.prod(spatial)
        with _backend.on(device):
            raw = data._data.astype(compute, copy=False)
            if pool_type == "max":
                y = raw.max(axis=axes, keepdims=True)
            else:
                y = raw.sum(axis=axes, keepdims=True)
                if pool_type == "avg":
                    y = y / size
            out = ndarray(y.astype(dtype, copy=False), device)

        def global_backward(g: RawArray) -> Any:
            with _backend.on(device):
                g = g.astype(compute, copy=False)
                if pool_type == "max":
                    hit = raw == y
                    # The first maximum of each window takes the gradient, as in MXNet.
                    flat = (
                        hit.reshape(hit.shape[:1] + (-1,) + hit.shape[-1:])
                        if cl
                        else hit.reshape(hit.shape[:2] + (-1,))
                    )
                    first = xp.cumsum(flat, axis=1 if cl else 2) == 1
                    dx = (first & flat).reshape(raw.shape) * g
                else:
                    dx = xp.broadcast_to(g / size if pool_type == "avg" else g, raw.shape)
                return (xp.ascontiguousarray(dx).astype(dtype, copy=False),)

        def global_apply(h: RawArray) -> RawArray:
            # the pooling's Jacobian applied to h (data's shape)
            with _backend.on(device):
                h = h.astype(compute, copy=False)
                if pool_type == "max":
                    (dx,) = global_backward(xp.ones(y.shape, dtype=dtype))
                    v = (dx.astype(compute, copy=False) * h).sum(axis=axes, keepdims=True)
                else:
                    v = h.sum(axis=axes, keepdims=True)
                    if pool_type == "avg":
                        v = v / size
                return v.astype(dtype, copy=False)

        kernel_backward = _pool_kernel_backward(
            data, cl, pool_type, spatial, (1,) * nd, (0,) * nd, True
        )
        raw_backward = kernel_backward or global_backward
        return record_op(
            out,
            (data,),
            raw_backward,
            lambda out, g: (linear_op(g, lambda g_: raw_backward(g_)[0], global_apply),),
        )
    if kernel is None or len(tuple(kernel)) != nd:
        raise ValueError(
            f"{op}: kernel {kernel} must have one entry per spatial axis of "
            f"data of shape {data.shape}"
        )
    kernel = tuple(int(k) for k in kernel)
    stride = _spatial_tuple(op, "stride", stride, nd, 1)
    pad = _spatial_tuple(op, "pad", pad, nd, 0)
    if min(kernel + stride) < 1 or min(pad) < 0:
        raise ValueError(
            f"{op}: kernel {kernel} and stride {stride} must be positive, pad {pad} non-negative"
        )
    if any(p >= k for p, k in zip(pad, kernel)):
        raise ValueError(f"{op}: pad {pad} must be smaller than kernel {kernel}")
    if any(k > n + 2 * p for k, n, p in zip(kernel, spatial, pad)):
        raise ValueError(
            f"{op}: kernel {kernel} is larger than the padded input (data of "
            f"shape {data.shape}, pad {pad})"
        )
    pad_hi = pad
    if pooling_convention == "full":
        out = tuple(
            -(-(n + 2 * p - k) // s) + 1  # type: ignore[assignment]
            for n, p, k, s in zip(spatial, pad, kernel, stride)
        )
        pad_hi = tuple(
            max(p, (o - 1) * s + k - n - p)
            for o, s, k, n, p in zip(out, stride, kernel, spatial, pad)
        )
    grid = _Grid(data.shape[0], spatial, kernel, stride, (1,) * nd, pad, pad_hi)
    if count_include_pad is None:
        count_include_pad = True
    fill = -numpy.inf if pool_type == "max" else 0
    offsets = grid.offsets.tolist()
    rows = grid.rows
    with _backend.on(device):
        buf = _to_phases(xp, _to_cl(xp, data._data, cl), grid, fill, compute)
        if xp is numpy:
            full = buf[offsets[0] : offsets[0] + rows].copy()
            reduce = xp.maximum if pool_type == "max" else xp.add
            for off in offsets[1:]:
                reduce(full, buf[off : off + rows], out=full)
        else:
            from .. import _kernels

            full = _kernels.pool_reduce(buf, grid.offsets, rows, pool_type == "max")
        y = _valid(full, grid)
        count = None
        if pool_type == "avg":
            count = _pool_windows(xp, grid, count_include_pad, compute)
            y = y / count
        out = ndarray(_from_cl(xp, y, cl).astype(dtype, copy=False), device)

    def backward(g: RawArray) -> Any:
        with _backend.on(device):
            g_cl = _to_cl(xp, g.astype(compute, copy=False), cl)
            if count is not None:
                g_cl = g_cl / count
            dfull = _embed(xp, g_cl, grid, compute)
            dbuf = xp.zeros(buf.shape, dtype=compute)
            if pool_type == "max" and xp is numpy:
                taken = numpy.zeros(full.shape, dtype=bool)
                hit = numpy.empty(full.shape, dtype=bool)
                part = numpy.empty(full.shape, dtype=compute)
                # The product with the hits is twice as fast as where(), and the same for
                # finite gradients (an infinite one times False would be NaN).
                finite = bool(numpy.isfinite(dfull).all())
                for off in offsets:
                    # Scanning the taps in order, the first maximum takes the gradient:
                    # where this tap is a maximum not taken before.
                    numpy.equal(buf[off : off + rows], full, out=hit)
                    numpy.greater(hit, taken, out=hit)
                    if finite:
                        numpy.multiply(dfull, hit, out=part)
                    else:
                        part = numpy.where(hit, dfull, 0)
                    dbuf[off : off + rows] += part
                    taken |= hit
            elif pool_type == "max":
                taken = xp.zeros(full.shape, dtype=bool)
                for off in offsets:
                    # Scanning the taps in order, the first maximum takes the gradient.
                    hit = (buf[off : off + rows] == full) & ~taken
                    dbuf[off : off + rows] += xp.where(hit, dfull, 0)
                    taken |= hit
            else:
                for off in offsets:
                    dbuf[off : off + rows] += dfull
            if not cl:
                return (_from_phases(xp, dbuf, grid, compute, True).astype(dtype, copy=False),)
            dx = _from_phases(xp, dbuf, grid, compute)
            return (dx.astype(dtype, copy=False),)

    def apply(h: RawArray) -> RawArray:
        """The pooling's Jacobian applied to ``h`` (data's shape): the window sums (or
        averages) of h, or for max h at each window's first maximum."""
        with _backend.on(device):
            hbuf = _to_phases(xp, _to_cl(xp, h.astype(compute, copy=False), cl), grid, 0, compute)
            res = xp.zeros(full.shape, dtype=compute)
            taken = xp.zeros(full.shape, dtype=bool) if pool_type == "max" else None
            for off in offsets:
                if taken is None:
                    res += hbuf[off : off + rows]
                else:
                    hit = (buf[off : off + rows] == full) & ~taken
                    res += xp.where(hit, hbuf[off : off + rows], 0)
                    taken |= hit
            v = _valid(res, grid)
            if count is not None:
                v = v / count
            return _from_cl(xp, v, cl).astype(dtype, copy=False)

    kernel_backward = _pool_kernel_backward(
        data, cl, pool_type, kernel, stride, pad, count_include_pad
    )
    raw_backward = kernel_backward or backward
    # Recorded (create_graph): the backward is linear in g, its coefficients fixed by the
    # forward (the window selection), so it is a linear op whose transpose is apply().
    return record_op(
        out,
        (data,),
        raw_backward,
        lambda out, g: (linear_op(g, lambda g_: raw_backward(g_)[0], apply),),
    )
