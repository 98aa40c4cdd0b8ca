"""``mx.gluon.nn`` normalisation layers: ``BatchNorm``, ``SyncBatchNorm``, ``InstanceNorm``,
``LayerNorm``, ``GroupNorm``.

BatchNorm's running statistics are Parameters with ``grad_req='null'``, one replica per
device like every other Parameter; training on a device updates that device's replica only
(as in MXNet, so the replicas of the running statistics differ between devices while the
trained weights stay identical).

>>> import gluonlite as mx
>>> bn = mx.gluon.nn.BatchNorm()
>>> bn.initialize(device=[mx.cpu(0), mx.cpu(1)])
>>> with mx.autograd.record():
...     y = bn(mx.np.ones((4, 3, 2, 2), device=mx.cpu(1)))
>>> bn.running_mean.data(mx.cpu(1)).tolist(), bn.running_mean.data(mx.cpu(0)).tolist()
([0.1..., 0.1..., 0.1...], [0.0, 0.0, 0.0])
"""

from __future__ import annotations

import json
import threading

import numpy

from ... import _backend, npx
from ... import kvstore as kvstore_module
from ...device import Device, num_gpus
from ..block import HybridBlock
from ..parameter import Parameter
from typing import Any
from ..._typing import DTypeLike
from ...initializer import InitLike
from ...ndarray import ndarray
from collections.abc import Callable

__all__ = ["BatchNorm", "SyncBatchNorm", "InstanceNorm", "LayerNorm", "GroupNorm"]


class _Affine(HybridBlock):
    """A normalisation layer's ``gamma`` and ``beta`` (per channel, deferred size)."""

    def __init__(
        self,
        in_channels: int,
        center: bool,
        scale: bool,
        beta_initializer: InitLike,
        gamma_initializer: InitLike,
        dtype: DTypeLike = "float32",
    ) -> None:
        super().__init__()
        self._center, self._scale = center, scale
        self.gamma = Parameter(
            "gamma",
            grad_req="write" if scale else "null",
            shape=(int(in_channels),),
            init=gamma_initializer,
            dtype=dtype,
            allow_deferred_init=True,
            differentiable=scale,
        )
        self.beta = Parameter(
            "beta",
            grad_req="write" if center else "null",
            shape=(int(in_channels),),
            init=beta_initializer,
            dtype=dtype,
            allow_deferred_init=True,
            differentiable=center,
        )

    def _channel_axis(self, x: ndarray) -> int:
        return 1

    def _deferred(self) -> list[Parameter]:
        return [self.gamma, self.beta]

    def infer_shape(self, x: ndarray, *args: Any) -> None:
        axis = self._channel_axis(x)
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(
                f"{type(self).__name__}: axis {axis} is out of range for input of shape {x.shape}"
            )
        for p in self._deferred():
            p.shape = (x.shape[axis],)

    def _in_channels(self) -> int | None:
        n = self.gamma.shape[0] if self.gamma.shape else 0
        return n if n > 0 else None

    def _call(self, op: Callable[..., Any], x: ndarray, *args: Any, **kwargs: Any) -> Any:
        try:
            return op(x, *args, **kwargs)
        except ValueError as e:
            raise ValueError(f"{type(self).__name__}: {e}") from None


class BatchNorm(_Affine):
    """Batch normalisation (Ioffe and Szegedy, 2015) over every axis but ``axis``.

    Args:
        axis: the channel axis (1 for NCHW, -1 or 3 for NHWC).
        momentum: running statistics ``= running * momentum + batch * (1 - momentum)``.
        epsilon: added to the variance.
        center, scale: use ``beta`` / ``gamma`` (``scale=False`` fixes gamma at 1).
        use_global_stats: normalise with the running statistics in training too.
        in_channels: 0 defers the parameters' size to the first input.
    """

    # float32 gamma/beta/running statistics under float16 inputs, as MXNet's BatchNorm
    # (infer_type() lets that pass).
    _float32_params_for_half_inputs = True

    def __init__(
        self,
        axis: int = 1,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        use_global_stats: bool = False,
        beta_initializer: InitLike = "zeros",
        gamma_initializer: InitLike = "ones",
        running_mean_initializer: InitLike = "zeros",
        running_variance_initializer: InitLike = "ones",
        in_channels: int = 0,
        dtype: DTypeLike = "float32",
    ) -> None:
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer, dtype)
        self._axis, self._momentum, self._epsilon = axis, momentum, epsilon
        self._use_global_stats = use_global_stats
        self.running_mean = Parameter(
            "running_mean",
            grad_req="null",
            shape=(int(in_channels),),
            dtype=dtype,
            init=running_mean_initializer,
            allow_deferred_init=True,
            differentiable=False,
        )
        self.running_var = Parameter(
            "running_var",
            grad_req="null",
            shape=(int(in_channels),),
            dtype=dtype,
            init=running_variance_initializer,
            allow_deferred_init=True,
            differentiable=False,
        )

    def _channel_axis(self, x: ndarray) -> int:
        return self._axis

    def _deferred(self) -> list[Parameter]:
        return [self.gamma, self.beta, self.running_mean, self.running_var]

    def _reduce_stats(self, x: ndarray) -> Any:
        return None

    def forward(self, x: ndarray) -> Any:
        d = x.device
        return self._call(
            npx.batch_norm,
            x,
            self.gamma.data(d),
            self.beta.data(d),
            self.running_mean.data(d),
            self.running_var.data(d),
            eps=self._epsilon,
            momentum=self._momentum,
            fix_gamma=not self._scale,
            use_global_stats=self._use_global_stats,
            axis=self._axis,
            _reduce_stats=self._reduce_stats(x),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(axis={self._axis}, eps={self._epsilon}, "
            f"momentum={self._momentum}, fix_gamma={not self._scale}, "
            f"use_global_stats={self._use_global_stats}, "
            f"in_channels={self._in_channels()})"
        )


class _AllReduce:
    """Merges the statistics that the threads of one process contribute, one per device,
    and then (through ``across``, when given) over the ranks.

    Every participant deposits its arrays and waits until all ``parties`` have. The first
    device (in device order) merges them on the host in device order (``merge``, given by
    the operator: sums, or the moments of ``npx.norm._merge_moments``), hands the process's
    result to ``across`` and publishes what it returns; every device receives the same
    bits, on its own device. The participants must run concurrently, one thread per
    device.
    """

    def __init__(self, parties: int, timeout: float) -> None:
        self._parties, self._timeout = parties, timeout
        self._barrier = threading.Barrier(parties, timeout=timeout)
        self._lock = threading.Lock()
        self._parts: dict[Device, Any] = {}
        self._result: Any = None  # (arrays, count, error), written by the leader between waits

    def _wait(self, device: Device, timeout: float | None = None) -> None:
        try:
            self._barrier.wait(timeout)
        except threading.BrokenBarrierError:
            with self._lock:
                self._parts.pop(device, None)
            self._barrier.reset()
            raise RuntimeError(
                f"SyncBatchNorm: waited {self._timeout} s for {self._parties} devices to "
                f"contribute their statistics; run each device's forward and backward in "
                f"its own thread, or set num_devices to the devices in use"
            ) from None

    def __call__(
        self,
        device: Device,
        arrays: Any,
        count: int,
        merge: Callable[..., Any],
        across: Callable[..., Any] | None = None,
    ) -> Any:
        host = [_backend.transfer(a, device, _HOST) for a in arrays]
        with self._lock:
            if device in self._parts:
                raise RuntimeError(
                    f"SyncBatchNorm: {device} contributed twice to one "
                    f"reduction; each device must run in its own thread"
                )
            self._parts[device] = (host, count)
        self._wait(device)
        order = sorted(self._parts, key=lambda d: (d.device_type, d.device_id))
        if device == order[0]:
            # The only thread that runs between the two waits: the others are held at the
            # second, and none deposits again before every one has read the result.
            try:
                total, total_count = merge([self._parts[d] for d in order])
                if across is not None:
                    total, total_count = across(total, total_count, merge)
                self._result = (total, total_count, None)
            except Exception as e:  # noqa: BLE001 - re-raised below, on every device
                self._result = (None, None, e)
        # The leader may spend up to the kvstore's timeout across the ranks.
        self._wait(device, self._timeout + getattr(across, "timeout", 0.0))
        with self._lock:
            self._parts.pop(device, None)
        total, total_count, error = self._result
        if error is not None:
            if device == order[0]:
                raise error
            raise RuntimeError(
                f"SyncBatchNorm: the reduction over the ranks, run by {order[0]}, failed: {error}"
            ) from error
        return _to_device(total, device), total_count


class _AcrossRanks:
    """Merges host arrays and a count over the ranks of a distributed kvstore.

    Every rank gathers every rank's arrays and merges them in rank order, so every rank
    (and every device of it) gets the same bits, whatever order MPI's own reductions use.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.timeout = float(getattr(store, "timeout", 0.0))

    def __call__(self, arrays: Any, count: int, merge: Callable[..., Any]) -> Any:
        layout = json.dumps([[a.dtype.str, list(a.shape)] for a in arrays]).encode()
        mine = (
            numpy.array([count, len(layout)], dtype=numpy.int64).tobytes()
            + layout
            + b"".join(numpy.ascontiguousarray(a).tobytes() for a in arrays)
        )
        every = self._store.allgather_bytes(mine, "SyncBatchNorm's gathering of statistics")
        parts = []
        for rank, data in enumerate(every):
            theirs_count, n = numpy.frombuffer(data[:16], dtype=numpy.int64).tolist()
            if data[16 : 16 + n] != layout:
                raise ValueError(
                    f"the statistics of rank {rank} are {data[16 : 16 + n].decode()} where "
                    f"rank {self._store.rank}'s are {layout.decode()} ([dtype, shape] per "
                    f"array); every rank must run the same model with the same dtype"
                )
            offset, theirs = 16 + n, []
            for a in arrays:
                theirs.append(
                    numpy.frombuffer(data, dtype=a.dtype, count=a.size, offset=offset).reshape(
                        a.shape
                    )
                )
                offset += a.nbytes
            parts.append((theirs, theirs_count))
        return merge(parts)


def _to_device(host_arrays: Any, device: Device) -> list[Any]:
    xp = _backend.xp(device)
    with _backend.on(device):
        return [xp.array(t) for t in host_arrays]  # a copy each: no array shared by threads


_HOST = Device("cpu", 0)


class SyncBatchNorm(BatchNorm):
    """Batch normalisation with statistics over the whole batch: across ``num_devices``
    devices of this process and across the ranks of a ``dist_sync`` job (Zhang et al.,
    2018).

    Each device's forward and backward run in a thread of their own (as the threads of
    MXNet's engine do). Forward, each device contributes its count, sum and sum of squared
    deviations from its own mean per channel, merged without cancellation (Chan et al.;
    MXNet merges sums of squares, which loses precision when the mean is large against the
    spread); backward, the sums of the two gradient terms ``dy`` and ``dy * xhat``. The
    layer merges them over the devices in device order, then over the ranks in rank order,
    so every device of every rank normalises with the same statistics and updates its
    running statistics with the same bits. With ``num_devices=1`` (the default without
    GPUs) and one rank it is ``BatchNorm``.

    Across ranks, by default, the statistics go through this process's distributed
    kvstore (see ``kvstore.process_store``): the one a ``Trainer(kvstore='dist_sync')`` or
    ``mx.kv.create('dist_sync')`` made; create it before the first forward in training (a
    forward before it normalises with this process's batch alone). ``gamma`` and ``beta``
    gradients stay per device and per rank, summed by the Trainer as any other.

    Args:
        num_devices: devices taking part in this process (default: visible GPUs, at
            least 1).
        timeout: seconds to wait for the other devices before raising RuntimeError (the
            wait for the other ranks is bounded by the kvstore's timeout).
        kvstore: the store whose ranks take part: None (default) for this process's
            distributed store if there is one, a ``KVStore`` or a kvstore name; ``'device'``
            keeps the statistics within this process.
    """

    def __init__(
        self,
        in_channels: int = 0,
        num_devices: int | None = None,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        use_global_stats: bool = False,
        beta_initializer: InitLike = "zeros",
        gamma_initializer: InitLike = "ones",
        running_mean_initializer: InitLike = "zeros",
        running_variance_initializer: InitLike = "ones",
        timeout: float = 60.0,
        kvstore: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            1,
            momentum,
            epsilon,
            center,
            scale,
            use_global_stats,
            beta_initializer,
            gamma_initializer,
            running_mean_initializer,
            running_variance_initializer,
            in_channels,
            **kwargs,
        )
        if num_devices is None:
            num_devices = max(1, num_gpus())
        self._num_devices = int(num_devices)
        if self._num_devices < 1:
            raise ValueError(f"SyncBatchNorm: num_devices must be at least 1, got {num_devices}")
        self._kvstore = None if kvstore is None else kvstore_module.create(kvstore)
        self._allreduce = _AllReduce(self._num_devices, timeout) if self._num_devices > 1 else None

    def _across_ranks(self) -> _AcrossRanks | None:
        store = self._kvstore if self._kvstore is not None else kvstore_module.process_store()
        if store is None or store.num_workers == 1:
            return None
        return _AcrossRanks(store)

    def _reduce_stats(self, x: ndarray) -> Any:
        across = self._across_ranks()
        device = x.device
        if self._allreduce is not None:

            def reduce(arrays: Any, count: int, merge: Callable[..., Any]) -> Any:
                return self._allreduce(
                    device,
                    arrays,
                    count,
                    merge,  # type: ignore[misc]
                    across,
                )  # not None here
        elif across is not None:

            def reduce(arrays: Any, count: int, merge: Callable[..., Any]) -> Any:
                total, total_count = across(
                    [_backend.transfer(a, device, _HOST) for a in arrays], count, merge
                )
                return _to_device(total, device), total_count
        else:
            return None
        return reduce


class InstanceNorm(_Affine):
    """Instance normalisation: each sample's channel normalised over its spatial axes.

    Args: ``axis`` (must be 1), ``epsilon``, ``center``, ``scale`` (default False),
    initializers and ``in_channels`` as for ``BatchNorm``.
    """

    def __init__(
        self,
        axis: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = False,
        beta_initializer: InitLike = "zeros",
        gamma_initializer: InitLike = "ones",
        in_channels: int = 0,
    ) -> None:
        if axis != 1:
            raise ValueError(
                f"InstanceNorm: only axis=1 (channels first) is supported, got axis={axis}"
            )
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer)
        self._epsilon = epsilon

    def forward(self, x: ndarray) -> Any:
        d = x.device
        gamma: ndarray | None = self.gamma.data(d)
        if not self._scale:
            gamma = None
        return self._call(npx.instance_norm, x, gamma, self.beta.data(d), eps=self._epsilon)

    def _extra_repr(self) -> str:
        return f"eps={self._epsilon}, in_channels={self._in_channels()}"


class LayerNorm(_Affine):
    """Layer normalisation along ``axis`` (default -1)."""

    def __init__(
        self,
        axis: int = -1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: InitLike = "zeros",
        gamma_initializer: InitLike = "ones",
        in_channels: int = 0,
    ) -> None:
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer)
        self._axis, self._epsilon = axis, epsilon

    def _channel_axis(self, x: ndarray) -> int:
        return self._axis

    def forward(self, x: ndarray) -> Any:
        d = x.device
        return self._call(
            npx.layer_norm,
            x,
            self.gamma.data(d),
            self.beta.data(d),
            axis=self._axis,
            eps=self._epsilon,
        )

    def _extra_repr(self) -> str:
        return f"axis={self._axis}, eps={self._epsilon}, in_channels={self._in_channels()}"


class GroupNorm(_Affine):
    """Group normalisation: channels in ``num_groups`` groups, each normalised over its
    channels and spatial axes; gamma and beta per channel."""

    def __init__(
        self,
        num_groups: int = 1,
        epsilon: float = 1e-5,
        center: bool = True,
        scale: bool = True,
        beta_initializer: InitLike = "zeros",
        gamma_initializer: InitLike = "ones",
        in_channels: int = 0,
    ) -> None:
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer)
        self._num_groups, self._epsilon = int(num_groups), epsilon

    def forward(self, x: ndarray) -> Any:
        d = x.device
        return self._call(
            npx.group_norm,
            x,
            self.gamma.data(d),
            self.beta.data(d),
            num_groups=self._num_groups,
            eps=self._epsilon,
        )

    def _extra_repr(self) -> str:
        return (
            f"num_groups={self._num_groups}, eps={self._epsilon}, in_channels={self._in_channels()}"
        )
