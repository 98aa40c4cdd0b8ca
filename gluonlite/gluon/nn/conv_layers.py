"""``mx.gluon.nn`` convolution, pooling, padding and pixel-shuffle layers (1-D, 2-D, 3-D).

The classes of one family differ only in their number of spatial axes, so each family is
one base class and the public names are rows of a table (``_FAMILIES``) at the bottom.

>>> import gluonlite as mx
>>> net = mx.gluon.nn.Sequential()
>>> net.add(mx.gluon.nn.Conv2D(4, kernel_size=3, padding=1), mx.gluon.nn.MaxPool2D(),
...         mx.gluon.nn.GlobalAvgPool2D())
>>> net.initialize()
>>> net(mx.np.ones((2, 3, 8, 8))).shape
(2, 4, 1, 1)
>>> net[0]
Conv2D(3 -> 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
"""

from __future__ import annotations

import numpy

from ... import _backend, np as _np, npx
from ...autograd import record_op
from ...ndarray import ndarray
from ..block import Block, HybridBlock
from ..parameter import Parameter
from .activations import Activation
from collections.abc import Sequence, Callable
from typing import TYPE_CHECKING, Any
from ..._typing import DTypeLike, RawArray
from ...initializer import InitLike

__all__ = ["ReflectionPad2D"]  # the table below adds the rest

_LAYOUTS = {1: "NCW", 2: "NCHW", 3: "NCDHW"}


def _tuple(value: Any, nd: int) -> tuple[int, ...]:
    if isinstance(value, (int, numpy.integer)):
        return (int(value),) * nd
    return tuple(int(v) for v in value)


def _named(block: Block, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, a ValueError re-raised with the layer's name in front."""
    try:
        return call(*args, **kwargs)
    except ValueError as e:
        raise ValueError(f"{type(block).__name__}: {e}") from None


class _Conv(HybridBlock):
    """Convolution over ``_nd`` spatial axes (``Conv1D``, ``Conv2D``, ``Conv3D``).

    Args:
        channels: output channels (``num_filter``).
        kernel_size, strides, padding, dilation: an int or one per spatial axis.
        groups: channel groups (``groups == in_channels == channels``: depthwise).
        layout: ``'NCW'``/``'NCHW'``/``'NCDHW'`` or channels last (``'NHWC'``...).
        activation: applied to the output (see ``Activation``).
        in_channels: 0 defers the weight's shape to the first input.

    The weight has shape ``(channels, in_channels // groups, *kernel_size)`` (channels
    first), the bias ``(channels,)``.
    """

    _nd = 2
    _transposed = False

    def __init__(
        self,
        channels: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        layout: str | None = None,
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: InitLike = None,
        bias_initializer: InitLike = "zeros",
        in_channels: int = 0,
        output_padding: int | Sequence[int] = 0,
        dtype: DTypeLike = "float32",
    ) -> None:
        super().__init__()
        nd = self._nd
        name = type(self).__name__
        self._channels, self._in_channels = int(channels), int(in_channels)
        self._kernel = _tuple(kernel_size, nd)
        self._strides, self._padding = _tuple(strides, nd), _tuple(padding, nd)
        self._dilation, self._adj = _tuple(dilation, nd), _tuple(output_padding, nd)
        if any(
            len(t) != nd
            for t in (self._kernel, self._strides, self._padding, self._dilation, self._adj)
        ):
            raise ValueError(
                f"{name}: kernel_size, strides, padding, dilation and "
                f"output_padding need {nd} entries each"
            )
        self._groups = int(groups)
        self._layout = layout or _LAYOUTS[nd]
        if len(self._layout) != nd + 2 or self._layout not in (
            _LAYOUTS[nd],
            "N" + _LAYOUTS[nd][2:] + "C",
        ):
            raise ValueError(
                f"{name}: layout {layout!r} does not fit {nd} spatial axes; "
                f"expected {_LAYOUTS[nd]!r} or {'N' + _LAYOUTS[nd][2:] + 'C'!r}"
            )
        if self._channels <= 0 or self._groups <= 0 or self._channels % self._groups:
            raise ValueError(
                f"{name}: channels={channels} must be positive and divisible by groups={groups}"
            )
        if self._in_channels % self._groups:
            raise ValueError(
                f"{name}: in_channels={in_channels} is not divisible by groups={groups}"
            )
        self.weight = Parameter(
            "weight",
            shape=self._weight_shape(self._in_channels),
            dtype=dtype,
            init=weight_initializer,
            allow_deferred_init=True,
        )
        self.bias = (
            Parameter(
                "bias",
                shape=(self._channels,),
                dtype=dtype,
                init=bias_initializer,
                allow_deferred_init=True,
            )
            if use_bias
            else None
        )
        self.act = Activation(activation) if activation is not None else None

    def _channels_last(self) -> bool:
        return self._layout[-1] == "C"

    def _weight_shape(self, in_channels: int) -> tuple[int, ...]:
        if self._transposed:
            first, inner = in_channels, self._channels // self._groups
        else:
            first, inner = self._channels, in_channels // self._groups
        if self._channels_last():
            return (first,) + self._kernel + (inner,)
        return (first, inner) + self._kernel

    def infer_shape(self, x: ndarray, *args: Any) -> None:
        if x.ndim != self._nd + 2:
            raise ValueError(
                f"{type(self).__name__}: expected {self._nd + 2}-D input "
                f"({self._layout}), got shape {x.shape}"
            )
        in_channels = x.shape[-1] if self._channels_last() else x.shape[1]
        if in_channels % self._groups:
            raise ValueError(
                f"{type(self).__name__}: input of shape {x.shape} has "
                f"{in_channels} channels, not divisible by groups="
                f"{self._groups}"
            )
        self.weight.shape = self._weight_shape(in_channels)

    def forward(self, x: ndarray) -> Any:
        device = x.device
        op = npx.deconvolution if self._transposed else npx.convolution
        extra = {"adj": self._adj} if self._transposed else {}
        out = _named(
            self,
            op,
            x,
            self.weight.data(device),
            None if self.bias is None else self.bias.data(device),
            kernel=self._kernel,
            stride=self._strides,
            dilate=self._dilation,
            pad=self._padding,
            num_filter=self._channels,
            num_group=self._groups,
            no_bias=self.bias is None,
            layout=self._layout,
            **extra,
        )
        return out if self.act is None else self.act(out)

    def __repr__(self) -> str:
        shape = self.weight.shape
        known = shape is not None and all(n > 0 for n in shape)
        in_channels = None
        if known:
            in_channels = (
                shape[0]  # type: ignore[index]
                if self._transposed
                else ((shape[-1] if self._channels_last() else shape[1]) * self._groups)  # type: ignore[index]
            )
        parts = [
            f"{in_channels} -> {self._channels}",
            f"kernel_size={self._kernel}",
            f"stride={self._strides}",
        ]
        if any(self._padding):
            parts.append(f"padding={self._padding}")
        if any(d != 1 for d in self._dilation):
            parts.append(f"dilation={self._dilation}")
        if any(self._adj):
            parts.append(f"output_padding={self._adj}")
        if self._groups != 1:
            parts.append(f"groups={self._groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.act is not None:
            parts.append(repr(self.act))
        return f"{type(self).__name__}({', '.join(parts)})"


class _ConvTranspose(_Conv):
    """Transposed convolution (``Conv1DTranspose``, ...): the adjoint of ``_Conv``.

    Arguments as for the convolution, plus ``output_padding`` (extra output at the high end
    of each axis). The weight has shape ``(in_channels, channels // groups, *kernel_size)``.
    """

    _transposed = True

    def __init__(
        self,
        channels: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1,
        padding: int | Sequence[int] = 0,
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        layout: str | None = None,
        activation: str | None = None,
        use_bias: bool = True,
        weight_initializer: InitLike = None,
        bias_initializer: InitLike = "zeros",
        in_channels: int = 0,
        dtype: DTypeLike = "float32",
    ) -> None:
        super().__init__(
            channels,
            kernel_size,
            strides,
            padding,
            dilation,
            groups,
            layout,
            activation,
            use_bias,
            weight_initializer,
            bias_initializer,
            in_channels,
            output_padding,
            dtype,
        )


class _Pool(HybridBlock):
    """Pooling over ``_nd`` spatial axes: ``MaxPool2D``, ``AvgPool2D``, ... and the global
    variants.

    Args:
        pool_size: window, an int or one per axis; strides default to it.
        padding: zeros (avg) or -inf (max) around the input.
        ceil_mode: ``pooling_convention='full'`` (the last window may be partial).
        count_include_pad: (avg) whether padding counts in the divisor.
    """

    _nd = 2
    _pool_type = "max"
    _global = False

    def __init__(
        self,
        pool_size: int | Sequence[int] = 2,
        strides: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        ceil_mode: bool = False,
        layout: str | None = None,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        nd = self._nd
        self._size = _tuple(pool_size, nd)
        self._strides = self._size if strides is None else _tuple(strides, nd)
        self._padding = _tuple(padding, nd)
        self._ceil = bool(ceil_mode)
        self._layout = layout or _LAYOUTS[nd]
        self._count_include_pad = count_include_pad

    def forward(self, x: ndarray) -> Any:
        return _named(
            self,
            npx.pooling,
            x,
            kernel=self._size,
            stride=self._strides,
            pad=self._padding,
            pool_type=self._pool_type,
            pooling_convention="full" if self._ceil else "valid",
            global_pool=self._global,
            count_include_pad=self._count_include_pad,
            layout=self._layout,
        )

    def __repr__(self) -> str:
        if self._global:
            return f"{type(self).__name__}(layout={self._layout})"
        return (
            f"{type(self).__name__}(size={self._size}, stride={self._strides}, "
            f"padding={self._padding}, ceil_mode={self._ceil}"
            + (f", count_include_pad={self._count_include_pad}" if self._pool_type == "avg" else "")
            + ")"
        )


class _MaxPool(_Pool):
    """Max pooling; MXNet's argument order (``layout`` before ``ceil_mode``)."""

    def __init__(
        self,
        pool_size: int | Sequence[int] = 2,
        strides: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        layout: str | None = None,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(pool_size, strides, padding, ceil_mode, layout)


class _GlobalPool(_Pool):
    _global = True

    def __init__(self, layout: str | None = None) -> None:
        super().__init__(1, None, 0, False, layout)


def _reflect_index(n: int, before: int, after: int) -> numpy.ndarray:
    """Source index of each output position of a reflection pad of a length-n axis."""
    idx = numpy.arange(-before, n + after)
    period = 2 * (n - 1)
    idx = numpy.abs(idx) % period if period else numpy.zeros_like(idx)
    return numpy.where(idx >= n, period - idx, idx)


class ReflectionPad2D(HybridBlock):
    """Pads the two spatial axes of (N, C, H, W) by reflection (the edge not repeated).

    Args:
        padding: an int for all four sides, or MXNet's 8-tuple ``pad_width``
            ``(0, 0, 0, 0, top, bottom, left, right)``.
    """

    def __init__(self, padding: int | Sequence[int] = 0) -> None:
        super().__init__()
        if isinstance(padding, (int, numpy.integer)):
            padding = (0, 0, 0, 0) + (int(padding),) * 4
        padding = tuple(int(p) for p in padding)
        if len(padding) != 8 or any(padding[:4]) or min(padding) < 0:
            raise ValueError(
                f"ReflectionPad2D: padding must be an int or an 8-tuple "
                f"(0, 0, 0, 0, top, bottom, left, right), got {padding}"
            )
        self._padding = padding

    def forward(self, x: ndarray) -> Any:
        if x.ndim != 4:
            raise ValueError(f"ReflectionPad2D: expected (N, C, H, W) input, got shape {x.shape}")
        top, bottom, left, right = self._padding[4:]
        h, w = x.shape[2:]
        if max(top, bottom) >= h or max(left, right) >= w:
            raise ValueError(
                f"ReflectionPad2D: padding {self._padding[4:]} must be smaller "
                f"than the input's spatial size {(h, w)}"
            )
        xp = x._xp
        rows, cols = _reflect_index(h, top, bottom), _reflect_index(w, left, right)
        with _backend.on(x.device):
            r, c = xp.asarray(rows), xp.asarray(cols)
            out = ndarray(x._data[:, :, r][:, :, :, c], x.device)

        def backward(g: RawArray) -> Any:
            # The adjoint of the gathers: sum the gradient back through each axis' map
            # with a 0/1 matrix (rows of the padded axis onto the source axis).
            with _backend.on(x.device):
                mh = xp.asarray((rows[:, None] == numpy.arange(h)).astype(g.dtype))
                mw = xp.asarray((cols[:, None] == numpy.arange(w)).astype(g.dtype))
                return (xp.einsum("nchw,hi,wj->ncij", g, mh, mw),)

        def graph(out: ndarray, g: ndarray) -> tuple[ndarray]:
            # the same sums, recorded (create_graph)
            with _backend.on(x.device):
                mh = ndarray(
                    xp.asarray((rows[:, None] == numpy.arange(h)).astype(g.dtype)), x.device
                )
                mw = ndarray(
                    xp.asarray((cols[:, None] == numpy.arange(w)).astype(g.dtype)), x.device
                )
            return (_np.einsum("nchw,hi,wj->ncij", g, mh, mw),)

        return record_op(out, (x,), backward, graph)

    def _extra_repr(self) -> str:
        return f"padding={self._padding}"


class _PixelShuffle(HybridBlock):
    """Rearranges (N, C * f1 * ... * fd, d1, ..., dd) into (N, C, d1 * f1, ..., dd * fd).

    Args:
        factor: the upsampling factor, an int or one per spatial axis.
    """

    _nd = 2

    def __init__(self, factor: int) -> None:
        super().__init__()
        self._factors = _tuple(factor, self._nd)
        if len(self._factors) != self._nd or min(self._factors) < 1:
            raise ValueError(
                f"{type(self).__name__}: factor must be a positive int or "
                f"{self._nd} of them, got {factor}"
            )

    def forward(self, x: ndarray) -> Any:
        nd, f = self._nd, self._factors
        block = int(numpy.prod(f))
        if x.ndim != nd + 2 or x.shape[1] % block:
            raise ValueError(
                f"{type(self).__name__}: expected {nd + 2}-D input with "
                f"channels divisible by {block}, got shape {x.shape}"
            )
        n, c = x.shape[0], x.shape[1] // block
        spatial = x.shape[2:]
        y = x.reshape((n, c) + f + spatial)
        # (n, c, f1..fd, s1..sd) -> (n, c, s1, f1, ..., sd, fd)
        axes = (0, 1) + tuple(a for i in range(nd) for a in (2 + nd + i, 2 + i))
        y = y.transpose(axes)
        return y.reshape((n, c) + tuple(s * k for s, k in zip(spatial, f)))

    def _extra_repr(self) -> str:
        return f"factor={self._factors if self._nd > 1 else self._factors[0]}"


# name -> (base class, spatial axes, class attributes); one row per public layer.
_FAMILIES = {}
for _nd in (1, 2, 3):
    _FAMILIES.update(
        {
            f"Conv{_nd}D": (_Conv, _nd, {}),
            f"Conv{_nd}DTranspose": (_ConvTranspose, _nd, {}),
            f"MaxPool{_nd}D": (_MaxPool, _nd, {"_pool_type": "max"}),
            f"AvgPool{_nd}D": (_Pool, _nd, {"_pool_type": "avg"}),
            f"GlobalMaxPool{_nd}D": (_GlobalPool, _nd, {"_pool_type": "max"}),
            f"GlobalAvgPool{_nd}D": (_GlobalPool, _nd, {"_pool_type": "avg"}),
            f"PixelShuffle{_nd}D": (_PixelShuffle, _nd, {}),
        }
    )
for _name, (_base, _nd, _attrs) in _FAMILIES.items():
    _doc = f"{_nd}-D ({_LAYOUTS[_nd]}) " + (_base.__doc__ or "")
    globals()[_name] = type(
        _name, (_base,), {"_nd": _nd, "__doc__": _doc, "__module__": __name__, **_attrs}
    )
    __all__.append(_name)
del _name, _base, _nd, _attrs, _doc

if TYPE_CHECKING:
    # The classes the table above makes, declared for type checkers (which do not run it).
    class Conv1D(_Conv): ...

    class Conv1DTranspose(_ConvTranspose): ...

    class MaxPool1D(_MaxPool): ...

    class AvgPool1D(_Pool): ...

    class GlobalMaxPool1D(_GlobalPool): ...

    class GlobalAvgPool1D(_GlobalPool): ...

    class PixelShuffle1D(_PixelShuffle): ...

    class Conv2D(_Conv): ...

    class Conv2DTranspose(_ConvTranspose): ...

    class MaxPool2D(_MaxPool): ...

    class AvgPool2D(_Pool): ...

    class GlobalMaxPool2D(_GlobalPool): ...

    class GlobalAvgPool2D(_GlobalPool): ...

    class PixelShuffle2D(_PixelShuffle): ...

    class Conv3D(_Conv): ...

    class Conv3DTranspose(_ConvTranspose): ...

    class MaxPool3D(_MaxPool): ...

    class AvgPool3D(_Pool): ...

    class GlobalMaxPool3D(_GlobalPool): ...

    class GlobalAvgPool3D(_GlobalPool): ...

    class PixelShuffle3D(_PixelShuffle): ...

    __all__ += [
        "Conv1D",
        "Conv1DTranspose",
        "MaxPool1D",
        "AvgPool1D",
        "GlobalMaxPool1D",
        "GlobalAvgPool1D",
        "PixelShuffle1D",
        "Conv2D",
        "Conv2DTranspose",
        "MaxPool2D",
        "AvgPool2D",
        "GlobalMaxPool2D",
        "GlobalAvgPool2D",
        "PixelShuffle2D",
        "Conv3D",
        "Conv3DTranspose",
        "MaxPool3D",
        "AvgPool3D",
        "GlobalMaxPool3D",
        "GlobalAvgPool3D",
        "PixelShuffle3D",
    ]
