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

import threading

from ... import _backend, npx
from ...device import Device, num_gpus
from ..block import HybridBlock
from ..parameter import Parameter

__all__ = ["BatchNorm", "SyncBatchNorm", "InstanceNorm", "LayerNorm", "GroupNorm"]


class _Affine(HybridBlock):
    """A normalisation layer's ``gamma`` and ``beta`` (per channel, deferred size)."""

    def __init__(self, in_channels, center, scale, beta_initializer, gamma_initializer,
                 dtype="float32"):
        super().__init__()
        self._center, self._scale = center, scale
        self.gamma = Parameter("gamma", grad_req="write" if scale else "null",
                               shape=(int(in_channels),), init=gamma_initializer,
                               dtype=dtype, allow_deferred_init=True, differentiable=scale)
        self.beta = Parameter("beta", grad_req="write" if center else "null",
                              shape=(int(in_channels),), init=beta_initializer,
                              dtype=dtype, allow_deferred_init=True, differentiable=center)

    def _channel_axis(self, x) -> int:
        return 1

    def _deferred(self) -> list:
        return [self.gamma, self.beta]

    def infer_shape(self, x, *args) -> None:
        axis = self._channel_axis(x)
        if not -x.ndim <= axis < x.ndim:
            raise ValueError(f"{type(self).__name__}: axis {axis} is out of range for input "
                             f"of shape {x.shape}")
        for p in self._deferred():
            p.shape = (x.shape[axis],)

    def _in_channels(self):
        n = self.gamma.shape[0] if self.gamma.shape else 0
        return n if n > 0 else None

    def _call(self, op, x, *args, **kwargs):
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

    def __init__(self, axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True,
                 use_global_stats=False, beta_initializer="zeros", gamma_initializer="ones",
                 running_mean_initializer="zeros", running_variance_initializer="ones",
                 in_channels=0, dtype="float32"):
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer,
                         dtype)
        self._axis, self._momentum, self._epsilon = axis, momentum, epsilon
        self._use_global_stats = use_global_stats
        self.running_mean = Parameter("running_mean", grad_req="null",
                                      shape=(int(in_channels),), dtype=dtype,
                                      init=running_mean_initializer, allow_deferred_init=True,
                                      differentiable=False)
        self.running_var = Parameter("running_var", grad_req="null",
                                     shape=(int(in_channels),), dtype=dtype,
                                     init=running_variance_initializer,
                                     allow_deferred_init=True, differentiable=False)

    def _channel_axis(self, x) -> int:
        return self._axis

    def _deferred(self) -> list:
        return [self.gamma, self.beta, self.running_mean, self.running_var]

    def _reduce_stats(self, x):
        return None

    def forward(self, x):
        d = x.device
        return self._call(npx.batch_norm, x, self.gamma.data(d), self.beta.data(d),
                          self.running_mean.data(d), self.running_var.data(d),
                          eps=self._epsilon, momentum=self._momentum,
                          fix_gamma=not self._scale, use_global_stats=self._use_global_stats,
                          axis=self._axis, _reduce_stats=self._reduce_stats(x))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(axis={self._axis}, eps={self._epsilon}, "
                f"momentum={self._momentum}, fix_gamma={not self._scale}, "
                f"use_global_stats={self._use_global_stats}, "
                f"in_channels={self._in_channels()})")


class _AllReduce:
    """Sums the statistics that the threads of one process contribute, one per device.

    Every participant deposits its arrays, waits until all ``parties`` have, and gets the
    sum taken in device order on the host (so every device receives the same bits), on its
    own device. The participants must run concurrently, one thread per device.
    """

    def __init__(self, parties: int, timeout: float):
        self._parties, self._timeout = parties, timeout
        self._barrier = threading.Barrier(parties, timeout=timeout)
        self._lock = threading.Lock()
        self._parts: dict = {}

    def __call__(self, device, arrays, count):
        host = [_backend.transfer(a, device, _HOST) for a in arrays]
        with self._lock:
            if device in self._parts:
                raise RuntimeError(f"SyncBatchNorm: {device} contributed twice to one "
                                   f"reduction; each device must run in its own thread")
            self._parts[device] = (host, count)
        try:
            self._barrier.wait()
            parts = [self._parts[d] for d in sorted(self._parts, key=lambda d: (
                d.device_type, d.device_id))]
            self._barrier.wait()  # every participant has read before anyone clears
        except threading.BrokenBarrierError:
            with self._lock:
                self._parts.pop(device, None)
            self._barrier.reset()
            raise RuntimeError(
                f"SyncBatchNorm: waited {self._timeout} s for {self._parties} devices to "
                f"contribute their statistics; run each device's forward and backward in "
                f"its own thread, or set num_devices to the devices in use") from None
        with self._lock:
            self._parts.pop(device, None)
        total = [sum(p[0][i] for p in parts) for i in range(len(arrays))]
        xp = _backend.xp(device)
        with _backend.on(device):
            return [xp.asarray(t) for t in total], sum(p[1] for p in parts)


_HOST = Device("cpu", 0)


class SyncBatchNorm(BatchNorm):
    """Batch normalisation with statistics over the whole batch across ``num_devices``
    devices of this process (Zhang et al., 2018).

    Each device's forward and backward run in a thread of their own (as the threads of
    MXNet's engine do); the layer sums the per-device sums of ``x`` and ``x**2`` (forward)
    and of the gradient terms (backward) over the devices in device order, so every device
    normalises with the same statistics. With ``num_devices=1`` (the default without GPUs)
    it is ``BatchNorm``. Across processes (``dist_sync``) the statistics are not synced.

    Args:
        num_devices: devices taking part (default: visible GPUs, at least 1).
        timeout: seconds to wait for the other devices before raising RuntimeError.
    """

    def __init__(self, in_channels=0, num_devices=None, momentum=0.9, epsilon=1e-5,
                 center=True, scale=True, use_global_stats=False, beta_initializer="zeros",
                 gamma_initializer="ones", running_mean_initializer="zeros",
                 running_variance_initializer="ones", timeout=60.0, **kwargs):
        super().__init__(1, momentum, epsilon, center, scale, use_global_stats,
                         beta_initializer, gamma_initializer, running_mean_initializer,
                         running_variance_initializer, in_channels, **kwargs)
        if num_devices is None:
            num_devices = max(1, num_gpus())
        self._num_devices = int(num_devices)
        self._allreduce = _AllReduce(self._num_devices, timeout) \
            if self._num_devices > 1 else None

    def _reduce_stats(self, x):
        if self._allreduce is None:
            return None
        device = x.device

        def reduce(arrays, count):
            return self._allreduce(device, arrays, count)
        return reduce


class InstanceNorm(_Affine):
    """Instance normalisation: each sample's channel normalised over its spatial axes.

    Args: ``axis`` (must be 1), ``epsilon``, ``center``, ``scale`` (default False),
    initializers and ``in_channels`` as for ``BatchNorm``.
    """

    def __init__(self, axis=1, epsilon=1e-5, center=True, scale=False,
                 beta_initializer="zeros", gamma_initializer="ones", in_channels=0):
        if axis != 1:
            raise ValueError(f"InstanceNorm: only axis=1 (channels first) is supported, got "
                             f"axis={axis}")
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer)
        self._epsilon = epsilon

    def forward(self, x):
        d = x.device
        gamma = self.gamma.data(d)
        if not self._scale:
            gamma = None
        return self._call(npx.instance_norm, x, gamma, self.beta.data(d), eps=self._epsilon)

    def _extra_repr(self) -> str:
        return f"eps={self._epsilon}, in_channels={self._in_channels()}"


class LayerNorm(_Affine):
    """Layer normalisation along ``axis`` (default -1)."""

    def __init__(self, axis=-1, epsilon=1e-5, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", in_channels=0):
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer)
        self._axis, self._epsilon = axis, epsilon

    def _channel_axis(self, x) -> int:
        return self._axis

    def forward(self, x):
        d = x.device
        return self._call(npx.layer_norm, x, self.gamma.data(d), self.beta.data(d),
                          axis=self._axis, eps=self._epsilon)

    def _extra_repr(self) -> str:
        return f"axis={self._axis}, eps={self._epsilon}, in_channels={self._in_channels()}"


class GroupNorm(_Affine):
    """Group normalisation: channels in ``num_groups`` groups, each normalised over its
    channels and spatial axes; gamma and beta per channel."""

    def __init__(self, num_groups=1, epsilon=1e-5, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", in_channels=0):
        super().__init__(in_channels, center, scale, beta_initializer, gamma_initializer)
        self._num_groups, self._epsilon = int(num_groups), epsilon

    def forward(self, x):
        d = x.device
        return self._call(npx.group_norm, x, self.gamma.data(d), self.beta.data(d),
                          num_groups=self._num_groups, eps=self._epsilon)

    def _extra_repr(self) -> str:
        return (f"num_groups={self._num_groups}, eps={self._epsilon}, "
                f"in_channels={self._in_channels()}")

