"""``gluon.Trainer``: sums gradients over a Parameter's replicas and applies an optimizer.

>>> import gluonlite as mx
>>> net = mx.gluon.nn.Dense(1, in_units=2)
>>> net.initialize(mx.init.One(), device=[mx.cpu(0), mx.cpu(1)])
>>> trainer = mx.gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
>>> x = mx.np.ones((4, 2))
>>> with mx.autograd.record():
...     losses = [net(part).sum() for part in
...               mx.gluon.utils.split_and_load(x, [mx.cpu(0), mx.cpu(1)])]
>>> for loss in losses:
...     loss.backward()
>>> trainer.step(batch_size=4)
>>> net.weight.data(mx.cpu(1))
array([[0.5, 0.5]], device=cpu(1))

Note (replica consistency):
    ``allreduce_grads()`` leaves every replica's gradient equal to the sum over the
    replicas, bit for bit: the sum is formed once (on the first device, or by NCCL) and
    copied to the others. ``update()`` then applies the optimizer to the first device's
    replica only and copies the new values to the other replicas (for a lazy row-sparse
    update only the rows that changed). The alternative, updating every replica with its
    own optimizer state, saves the copy but is bit-identical only when all devices compute
    the same floating point: a [cpu(0), gpu(0)] pair does not (CUDA contracts a*b+c into
    one FMA, NumPy does not), and it keeps one optimizer state per device. Updating once
    and broadcasting makes the replicas identical by construction, keeps a single state
    and costs one copy of the weights per extra device, the same traffic as a ring
    all-reduce's second half.

Note (fresh gradients):
    A backward pass marks each replica it writes a gradient to as fresh; ``update()``
    clears the mark. A trainable replica that is not fresh at ``update()`` means the
    gradient is left over from an earlier step (the parameter was not used, or the
    backward ran on another device only): an error, or, with ``ignore_stale_grad=True``,
    the parameter is skipped when no replica is fresh. One fresh on some devices only is
    still updated, and the sum includes what the stale replicas' buffers hold (as MXNet's
    kvstore would): zero them (``zero_grad()``) where that matters.

Note (kvstore=None):
    As in MXNet, no kvstore means no reduction: ``allreduce_grads()`` leaves each replica
    with its own device's gradient, and ``update()`` applies the optimizer to every replica
    separately, each with an optimizer state and update counts of its own device (MXNet's
    one ``Updater`` per device). The replicas then differ as soon as their gradients do;
    that is the point of the mode (e.g. independent models per device). A replica whose
    gradient is stale is skipped on its device only (with ``ignore_stale_grad``).
    ``save_states`` writes every device's states and counts; ``load_states`` gives each
    device its own when the file has as many devices, else every device the first
    device's (what MXNet, which saves the first device's only, always does).
"""

from __future__ import annotations

import dataclasses
import json
import weakref

import numpy

from .. import _backend, checkpoint, kvstore as kvstore_module, optimizer as opt, sparse
from .._collective import nccl_allreduce as _nccl_allreduce, nccl_can_reduce
from .._collective import nccl_module as _nccl_module
from .._replica import replica_lock
from ..autograd import SparseRows
from ..device import Device
from ..ndarray import ndarray
from .parameter import Constant, Parameter
from collections.abc import Callable
from typing import Any
from .._typing import RawArray

__all__ = ["Trainer", "allreduce", "broadcast", "allreduce_arrays", "broadcast_arrays"]

_KVSTORES = ("device", "local", "nccl")
_DIST_KVSTORES = kvstore_module.DIST_NAMES
_STATES_FORMAT = "gluonlite.trainer.states/1"
_COMPRESSION_TYPES = ("2bit", "1bit")
# The Trainer of each sparse-stype Parameter: MXNet allows one (dense ones may be shared).
_SPARSE_OWNERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


@dataclasses.dataclass
class _Replicas:
    """One trainable parameter at one step: its index and name, and its data and gradient
    replicas in the trainer's device order."""

    index: int
    name: str
    data: list[Any]
    grads: list[Any]


class Trainer:
    """Applies an optimizer to a set of Parameters, on every device they live on.

    Args:
        params: the Parameters, as a dict (e.g. ``net.collect_params()``; its names are used
            in error messages) or a list. A Parameter listed twice is updated once.
        optimizer: an optimizer name (``'sgd'``, ``'adam'``) or an ``mx.optimizer.Optimizer``.
        optimizer_params: keyword arguments for the optimizer when given by name, e.g.
            ``{'learning_rate': 0.1, 'momentum': 0.9}``.
        kvstore: how gradients are summed over devices. ``'device'`` (default): through
            NCCL when every replica is on a GPU and ``cupy.cuda.nccl`` is available, else
            through peer-to-peer copies to the first device (host copies for CPUs).
            ``'local'``: the same without NCCL. ``'nccl'``: NCCL, an error where it cannot
            be used. ``'dist_sync'`` (or ``'dist_sync_device'``, ``'dist_device_sync'``,
            ``'horovod'``): one process per rank under ``mpiexec``; the gradients are also
            summed over all processes and the parameters are broadcast from rank 0 once
            (see ``gluonlite.kvstore``; pass the global batch size to ``step``). A
            ``KVStore`` object is used as it is. None: no reduction; each replica is
            updated with its own gradient and its own optimizer state (see the module's
            note on kvstore=None).
        compression_params: MXNet's gradient compression, ``{'type': '2bit' or '1bit',
            'threshold': t}``: before gradients are summed over devices or processes, each
            replica's gradient plus its residual (error feedback) is quantized, 2bit to
            ``{-t, 0, t}`` (default t 0.5), 1bit to ``{-1, 1}`` by ``> t`` (default t 0); the
            remainder stays in the residual for the next step. Not applied with one device
            in one process, nor with ``kvstore=None`` (MXNet creates no kvstore then).
        update_on_kvstore: True, False or None, accepted for MXNet compatibility; the update
            runs once, on the first device, and is copied to the other replicas (with
            ``kvstore=None``: on every device, as MXNet without a kvstore).

    See the module's Notes for how replicas stay identical and when a gradient is stale.
    """

    def __init__(
        self,
        params: Any,
        optimizer: str | opt.Optimizer,
        optimizer_params: dict[str, Any] | None = None,
        kvstore: Any = "device",
        compression_params: dict[str, Any] | None = None,
        update_on_kvstore: bool | None = None,
    ) -> None:
        if update_on_kvstore not in (None, True, False):
            raise TypeError(
                f"Trainer: update_on_kvstore must be True, False or None, got {update_on_kvstore!r}"
            )
        self._compression = _compression(compression_params)
        self._residuals: dict[Any, Any] = {}
        if optimizer_params is not None and not isinstance(optimizer_params, dict):
            raise TypeError(
                f"Trainer: optimizer_params must be a dict of optimizer "
                f"arguments, got {type(optimizer_params).__name__}"
            )
        if not isinstance(optimizer, (str, opt.Optimizer)):
            raise TypeError(
                f"Trainer: optimizer must be an optimizer name such as 'sgd' or "
                f"an mx.optimizer.Optimizer, got {type(optimizer).__name__}"
            )
        if isinstance(params, dict):
            named = list(params.items())
        elif isinstance(params, (list, tuple)):
            named = [(getattr(p, "name", str(i)), p) for i, p in enumerate(params)]
        else:
            raise TypeError(
                f"Trainer: params must be a dict or list of Parameters (e.g. "
                f"net.collect_params()), got {type(params).__name__}"
            )
        for name, p in named:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"Trainer: params must hold Parameters, but {name!r} is a {type(p).__name__}"
                )
        # A shared Parameter (listed under several names) is kept once, under its first name.
        first: dict[Any, Any] = {}
        for name, p in named:
            first.setdefault(id(p), (name, p))
        self._names = [name for name, _ in first.values()]
        self._params = [p for _, p in first.values()]
        for name, p in zip(self._names, self._params):
            owner = _SPARSE_OWNERS.get(p) if p.stype != "default" else None
            if owner is not None and owner() is not None:
                raise RuntimeError(
                    f"Trainer: Parameter '{name}' (stype={p.stype!r}) already belongs to "
                    f"another Trainer; more than one Trainer for a {p.stype} Parameter is "
                    f"not supported (as in MXNet)"
                )
        self._dist: Any = None  # the KVStore of a distributed run
        if isinstance(kvstore, kvstore_module.KVStore) or kvstore in _DIST_KVSTORES:
            self._dist = kvstore_module.create(kvstore)
            kvstore = "device"  # how the replicas inside this process are reduced
        elif kvstore is not None and kvstore not in _KVSTORES:
            raise ValueError(
                f"Trainer: kvstore must be one of {_KVSTORES + _DIST_KVSTORES}, "
                f"None or a KVStore, got {kvstore!r}"
            )
        self._kvstore = kvstore
        # The optimizer reads lr_mult/wd_mult from the live Parameters through param_dict,
        # so changing p.lr_mult between steps takes effect.
        param_dict = dict(enumerate(self._params))
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise ValueError(
                    "Trainer: optimizer_params must be empty when optimizer is "
                    "an Optimizer instance; set them on the instance"
                )
            self._optimizer = optimizer
            self._optimizer.param_dict = param_dict
        else:
            self._optimizer = opt.create(
                optimizer, param_dict=param_dict, **(optimizer_params or {})
            )
        self._scale = self._optimizer.rescale_grad
        # Optimizer states {index: (device, state)}: of the first device's replicas, and
        # with kvstore=None of the other devices' (one table per device after the first).
        self._states: dict[int, tuple[Device, object]] = {}
        self._replica_states: list[dict[int, tuple[Device, object]]] = []
        # (the parameters' _version list, what _trainable() returned for it): the work of
        # _trainable() is redone only after a parameter's replicas or grad_req changed.
        self._trainable_cache: tuple[list[int], tuple[list[Any], list[Device]]] | None = None
        self._reduced = False
        self._params_synced = self._dist is None or self._dist.num_workers == 1
        for p in self._params:
            if p.stype != "default":
                _SPARSE_OWNERS[p] = weakref.ref(self)
        if not self._params_synced:
            # Every rank must hold the same parameters: _sync_parameters compares them
            # first. With shapes still deferred the sync waits for the first
            # allreduce_grads(), but what is known is compared now. Errors of the
            # collectives themselves (MPI, timeouts) are never swallowed.
            if all(
                p._data is not None
                or p._pending is not None
                and p.shape is not None
                and all(n > 0 for n in p.shape)
                for p in self._params
            ):
                self._sync_parameters()
            else:
                self._check_same_parameters_on_every_rank()

    # ----------------------------------------------------------------- properties
    @property
    def optimizer(self) -> opt.Optimizer:
        return self._optimizer

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next update."""
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr: float) -> None:
        """Set the learning rate (an error while an lr_scheduler decides it)."""
        self._optimizer.set_learning_rate(lr)

    # ----------------------------------------------------------------- the step
    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """``allreduce_grads()`` then ``update(batch_size)``: one optimization step.

        Gradients are summed over the replicas, then scaled by ``1 / batch_size`` (the
        batch size over all devices), as in MXNet. The arguments and the gradients'
        freshness are checked before anything is summed, so a call that raised changed
        nothing and can be retried.
        """
        _check_batch_size("Trainer.step", batch_size)
        trainable = self._trainable()
        todo = self._to_update(*trainable, ignore_stale_grad)
        self.allreduce_grads()
        if self._trainable() is not trainable:  # the replicas changed (a deferred init)
            trainable = self._trainable()
            todo = self._to_update(*trainable, ignore_stale_grad)
        self._update(*trainable, todo, batch_size)

    def allreduce_grads(self) -> None:
        """Make every replica's gradient the sum of the gradients of all replicas.

        Call it before ``update()`` (``step()`` does both); in between, the gradients can be
        inspected or clipped.
        """
        if not self._params_synced:
            self._sync_parameters()
        replicas, devices = self._trainable()
        if self._kvstore is None:  # nothing to reduce (the note on kvstore=None)
            self._reduced = True
            return
        with replica_lock:  # readers on other threads see whole gradients (parameter note)
            self._allreduce_grads(replicas, devices)

    def _allreduce_grads(self, replicas: list[Any], devices: list[Any]) -> None:
        if self._compression is not None and (
            len(devices) > 1 or (self._dist is not None and self._dist.num_workers > 1)
        ):
            self._compress(replicas, devices)
        if len(devices) > 1:
            use_nccl = self._use_nccl(devices)
            dense = [r for r in replicas if not _is_row_sparse(r.grads[0])]
            for group in _by_dtype(dense):
                per_device = [[_raw(r.grads[k]) for r in group] for k in range(len(devices))]
                allreduce_arrays(
                    per_device, devices, use_nccl=use_nccl, pack=not _host_only(devices)
                )
            for r in replicas:
                if _is_row_sparse(r.grads[0]):
                    _allreduce_row_sparse(r.grads, devices)
        if self._dist is not None and self._dist.num_workers > 1:
            self._allreduce_across_processes(replicas, devices)
        self._reduced = True

    def _compress(self, replicas: list[Any], devices: list[Any]) -> None:
        """Quantize every dense gradient replica in place, with its residual (error
        feedback): see ``compression_params``."""
        kind, threshold = self._compression
        for r in replicas:
            for k, (grad, device) in enumerate(zip(r.grads, devices)):
                if _is_row_sparse(grad):
                    continue  # MXNet compresses dense gradients only
                raw = _raw(grad)
                xp = _backend.xp(device)
                with _backend.on(device):
                    residual = self._residuals.get((r.index, k))
                    if residual is None or residual.shape != raw.shape:
                        residual = self._residuals[(r.index, k)] = xp.zeros_like(raw)
                    residual += raw
                    if kind == "2bit":
                        q = xp.where(
                            residual >= threshold,
                            threshold,
                            xp.where(residual <= -threshold, -threshold, 0.0),
                        )
                    else:
                        q = xp.where(residual > threshold, 1.0, -1.0)
                    q = q.astype(raw.dtype)
                    residual -= q
                    raw[...] = q

    def _allreduce_across_processes(self, replicas: list[Any], devices: list[Any]) -> None:
        """Sum the (already device-summed) gradients over every process: the first
        device's buffers go through the kvstore, then to this process's other replicas."""
        dense = [r for r in replicas if not _is_row_sparse(r.grads[0])]
        self._dist.allreduce_([_raw(r.grads[0]) for r in dense], names=[r.name for r in dense])
        for group in _by_dtype(dense):
            per_device = [[_raw(r.grads[k]) for r in group] for k in range(len(devices))]
            broadcast_arrays(per_device, devices, pack=not _host_only(devices))
        root = devices[0]
        for r in replicas:
            if not _is_row_sparse(r.grads[0]):
                continue
            g = r.grads[0]
            ids, rows = self._dist.allreduce_rows(_raw(g.indices), _raw(g.data), g.shape, r.name)
            for grad, device in zip(r.grads, devices):
                grad._store_gradient(
                    SparseRows(
                        _backend.transfer(ids, root, device),
                        _backend.transfer(rows, root, device),
                        g.shape,
                    ),
                    add=False,
                )

    def _sync_parameters(self) -> None:
        """Broadcast every parameter from rank 0 (all processes start from its values).

        Raises RuntimeError (e.g. DeferredInitializationError) while a shape is unknown.
        """
        per_param = [list(p._replicas().values()) for p in self._params]
        self._check_same_parameters_on_every_rank()
        with replica_lock:
            for name, replicas in zip(self._names, per_param):
                self._dist.broadcast_([replicas[0]._data], root=0, names=[name])
                root = replicas[0].device
                broadcast(
                    replicas[0]._data,
                    root,
                    [r._data for r in replicas[1:]],
                    [r.device for r in replicas[1:]],
                )
        self._params_synced = True

    def _check_same_parameters_on_every_rank(self) -> None:
        """Raise the same ValueError on every rank unless all ranks' trainers hold
        parameters of the same names, shapes, dtypes and grad_req, in the same order
        (otherwise the collectives would pair up different arrays and fail obscurely)."""
        mine = [
            [
                name,
                list(p.shape) if p.shape is not None else None,
                numpy.dtype(p.dtype).name,
                p.grad_req,
            ]
            for name, p in zip(self._names, self._params)
        ]
        every = [
            json.loads(b)
            for b in self._dist.allgather_bytes(
                json.dumps(mine).encode(), "comparison of the parameters"
            )
        ]
        for rank, theirs in enumerate(every[1:], start=1):
            if theirs == every[0]:
                continue
            first = next(
                (k for k, (a, b) in enumerate(zip(every[0], theirs)) if a != b),
                min(len(every[0]), len(theirs)),
            )

            def describe(params: Any, r: int) -> str:
                if first >= len(params):
                    return f"rank {r} has only {len(params)} parameters"
                name, shape, dtype, req = params[first]
                shape = "unknown" if shape is None else tuple(shape)
                return f"rank {r} has {name!r} of shape {shape}, dtype {dtype}, grad_req {req!r}"

            raise ValueError(
                f"Trainer(kvstore={self._dist.type!r}): the ranks hold different "
                f"parameters. First difference, at parameter #{first}: "
                f"{describe(every[0], 0)}; {describe(theirs, rank)}. Every rank must build "
                f"the same model (same layers, widths and dtypes, in the same order)."
            )

    def update(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """Apply the optimizer with ``rescale_grad = 1 / batch_size`` to the gradients.

        With several devices, call ``allreduce_grads()`` first (or use ``step()``).

        Args:
            batch_size: the number of samples the gradients were summed over.
            ignore_stale_grad: skip parameters whose gradient no backward pass refreshed
                since the last update, instead of raising.
        """
        _check_batch_size("Trainer.update", batch_size)
        replicas, devices = self._trainable()
        if len(devices) > 1 and not self._reduced and self._kvstore is not None:
            raise RuntimeError(
                f"Trainer.update: the parameters live on {devices}, but allreduce_grads() "
                f"was not called since the last update, so each replica holds only its own "
                f"device's gradient. Call trainer.allreduce_grads() first, or trainer.step()"
            )
        todo = self._to_update(replicas, devices, ignore_stale_grad)
        self._update(replicas, devices, todo, batch_size)

    def _update(
        self, replicas: list[Any], devices: list[Any], todo: list[Any], batch_size: float
    ) -> None:
        """``update()`` once its arguments and the gradients have been checked."""
        self._optimizer.rescale_grad = self._scale / batch_size
        if todo:
            with replica_lock:  # readers on other threads see whole versions (parameter note)
                if self._kvstore is None:
                    self._apply_per_device(todo, devices)
                else:
                    self._apply(todo, devices)
        for r in replicas:
            for d in r.data:
                d._fresh_grad = False
        self._reduced = False

    @staticmethod
    def _to_update(replicas: list[Any], devices: list[Any], ignore_stale_grad: bool) -> list[Any]:
        """The replicas ``update()`` applies the optimizer to (see the note on fresh
        gradients); a stale one raises unless ``ignore_stale_grad``."""
        todo = []
        for r in replicas:
            fresh = [d._fresh_grad for d in r.data]
            if all(fresh) or (ignore_stale_grad and any(fresh)):
                todo.append(r)
            elif not ignore_stale_grad:
                stale = devices[fresh.index(False)]
                raise RuntimeError(
                    f"Trainer.update: the gradient of Parameter '{r.name}' on {stale} has "
                    f"not been updated by a backward pass since the last update. Was the "
                    f"parameter used in the forward pass on every device? Use "
                    f"step(..., ignore_stale_grad=True) to skip such parameters, or set "
                    f"grad_req='null' on parameters that are not trained"
                )
        return todo

    def _apply(self, replicas: list[Any], devices: list[Any]) -> None:
        """One optimizer call over the first device's replicas, then the broadcast."""
        root = devices[0]
        # mx.np arrays, as MXNet's optimizers take (a user optimizer's step() sees them).
        weights = [r.data[0] for r in replicas]
        grads = [_optimizer_grad(r.grads[0]) for r in replicas]
        states = [self._state(r.index, w, root) for r, w in zip(replicas, weights)]
        # The multi-precision entry points equal update/create_state unless the optimizer
        # keeps float32 master copies of float16 weights (multi_precision=True).
        self._optimizer.update_multi_precision(
            [r.index for r in replicas], weights, [r.grads[0] for r in replicas], states
        )
        if len(devices) == 1:
            return
        lazy = getattr(self._optimizer, "lazy_update", False)
        dense = []
        for r, g in zip(replicas, grads):
            if not (lazy and isinstance(g, opt.RowSparseGrad)):
                dense.append(r)
                continue
            # A lazy update changed only these rows; copy just them.
            with _backend.on(root):
                changed = r.data[0]._data[g.indices]
            for replica, device in zip(r.data[1:], devices[1:]):
                rows = _backend.transfer(g.indices, root, device)
                values = _backend.transfer(changed, root, device)
                with _backend.on(device):
                    replica._data[rows] = values
        for group in _by_dtype(dense):
            per_device = [[r.data[k]._data for r in group] for k in range(len(devices))]
            broadcast_arrays(per_device, devices, pack=not _host_only(devices))

    def _apply_per_device(self, replicas: list[Any], devices: list[Device]) -> None:
        """kvstore=None: one optimizer call per device, over that device's replicas with
        fresh gradients, with the device's own states and update counts."""
        self._per_device_tables(len(devices))
        optimizer = self._optimizer
        try:
            for k, device in enumerate(devices):
                todo = [r for r in replicas if r.data[k]._fresh_grad]
                if not todo:
                    continue
                optimizer._set_current_context(k)
                weights = [r.data[k] for r in todo]
                states = [self._state(r.index, w, device, k) for r, w in zip(todo, weights)]
                optimizer.update_multi_precision(
                    [r.index for r in todo], weights, [r.grads[k] for r in todo], states
                )
        finally:
            optimizer._set_current_context(0)

    def _per_device_tables(self, count: int) -> None:
        """Make sure there are ``count`` devices' state tables and update counts. Where
        their number differs (a fresh trainer, states loaded from a file of another
        device count), every device after the first starts from a copy of the first's
        states and counts, as MXNet gives every device's updater the first's."""
        optimizer = self._optimizer
        tables = optimizer._all_index_update_counts
        if len(self._replica_states) == count - 1 and sorted(tables) == list(range(count)):
            return
        first = optimizer._all_index_update_counts.get(0, optimizer._index_update_count)
        self._replica_states = [
            {
                i: (device, _map_state(state, lambda a, d=device: _moved(a, d, d)))
                for i, (device, state) in self._states.items()
            }
            for _ in range(count - 1)
        ]
        optimizer._all_index_update_counts = {0: first}
        optimizer._all_index_update_counts.update({k: dict(first) for k in range(1, count)})
        optimizer._index_update_count = first

    # ----------------------------------------------------------------- bookkeeping
    def _trainable(self) -> tuple[list[Any], list[Device]]:
        """``(replicas, devices)``: a ``_Replicas`` per parameter the trainer updates, with
        data and gradients ordered like ``devices``.

        All of them must live on the same devices; the first parameter's order decides
        which device (the first) holds the optimizer state.

        The result depends only on each parameter's replicas, gradient buffers and grad_req,
        which bump ``Parameter._version`` when they change, so it is kept until then: two
        calls per step would otherwise redo this per-parameter work (most of ``step()``'s
        Python time on small models). The callers only read it. Until the next call sees
        a change, the kept lists hold the replicas a ``reset_device`` replaced, as the
        optimizer states stay on the old device until the next update moves them.
        """
        if self._trainable_cache is not None:
            versions, result = self._trainable_cache
            if versions == [p._version for p in self._params]:
                return result
        result = self._collect_trainable()
        # Read after collecting: collecting may complete a deferred initialization.
        self._trainable_cache = ([p._version for p in self._params], result)
        return result

    def _collect_trainable(self) -> tuple[list[Any], list[Device]]:
        replicas, devices, first = [], None, None
        for i, (p, name) in enumerate(zip(self._params, self._names)):
            if p.grad_req == "null" or isinstance(p, Constant):
                continue
            if p.stype != "default":
                raise RuntimeError(
                    f"Trainer: Parameter '{name}' has stype={p.stype!r}; the Trainer updates "
                    f"parameters stored densely. For sparse gradients keep stype='default' "
                    f"and set grad_stype='row_sparse' (as Embedding(sparse_grad=True) does)"
                )
            try:
                here = list(p.list_device())
                data, grads = p.list_data(), p.list_grad()
            except RuntimeError as e:
                raise RuntimeError(f"Trainer: Parameter '{name}' cannot be trained yet: {e}") from e
            if devices is None:
                devices, first = here, name
            elif set(here) != set(devices):
                raise RuntimeError(
                    f"Trainer: all parameters must live on the same devices, but Parameter "
                    f"'{name}' is on {here} while '{first}' is on {devices}. Use "
                    f"reset_device() to move them"
                )
            order = [here.index(d) for d in devices]
            replicas.append(_Replicas(i, name, [data[k] for k in order], [grads[k] for k in order]))
        return replicas, devices or []

    def _use_nccl(self, devices: list[Device]) -> bool:
        if self._kvstore == "local":
            return False
        usable = all(d.device_type == "gpu" for d in devices) and _nccl_module() is not None
        if self._kvstore == "nccl" and not usable:
            raise RuntimeError(
                f"Trainer(kvstore='nccl') needs every replica on a GPU and "
                f"cupy.cuda.nccl available; replicas are on {devices}. Use "
                f"kvstore='device'"
            )
        return usable

    def _state(self, i: int, weight: Any, root: Device, slot: int = 0) -> Any:
        """Parameter ``i``'s optimizer state on ``root``, created or moved there as needed;
        ``slot`` > 0: the state of the replica on the trainer's ``slot``-th device
        (kvstore=None)."""
        table = self._states if slot == 0 else self._replica_states[slot - 1]
        if i not in table:
            with _backend.on(root):
                table[i] = (root, self._optimizer.create_state_multi_precision(i, weight))
        device, state = table[i]
        # Identity first: it is the common case, and Device's dataclass __eq__ is Python code.
        if device is not root and device != root:
            # The parameters moved (reset_device) or the state was loaded from a file.
            state = _map_state(state, lambda a: _moved(a, device, root))
            table[i] = (root, state)
        return state

    # ----------------------------------------------------------------- states on disk
    def save_states(self, fname: str) -> None:
        """Write the optimizer states and update counts to ``fname``: a safetensors file,
        replaced atomically and read back without pickle (see ``gluonlite.checkpoint``).

        Safe to call from another thread while this trainer steps: the file holds the
        states of one step (see the note on concurrent reads in ``gluon.parameter``)."""
        # The lock is held while the states are read and written, not while the file is
        # made durable (see checkpoint.write_checkpoint).
        checkpoint.write_checkpoint(
            fname, self._states_content, "trainer_states", lock=replica_lock
        )

    def _states_content(self) -> tuple[Any, ...]:
        """``(arrays, extra metadata)`` of ``save_states``.

        The first device's states are entries without a ``device`` field and arrays
        ``state_{index}_{leaf}``; with kvstore=None, device ``d`` > 0 of the trainer adds
        entries with ``"device": d``, arrays ``device{d}_state_{index}_{leaf}`` and its
        update counts as ``device_update_counts[d - 1]``."""
        tables = [self._states] + (self._replica_states if self._kvstore is None else [])
        counts = self._optimizer._all_index_update_counts
        arrays: dict[str, Any] = {}
        entries: list[dict[str, Any]] = []
        for d, table in enumerate(tables):
            for i, (device, state) in sorted(table.items()):
                leaves: list[Any] = []
                structure = _map_state(
                    state,
                    lambda a: (
                        leaves.append(a)  # type: ignore[func-returns-value]
                        or len(leaves) - 1
                    ),
                )
                for k, leaf in enumerate(leaves):
                    host = (
                        _raw(leaf)
                        if device.device_type == "cpu"
                        else _backend.transfer(_raw(leaf), device, Device("cpu", 0))
                    )
                    arrays[_state_key(d, i, k)] = checkpoint.HostArray(  # type: ignore[attr-defined]
                        "default", tuple(host.shape), host
                    )
                entry: dict[str, Any] = {"index": i, "name": self._names[i], "structure": structure}
                if d:
                    entry["device"] = d
                entries.append(entry)
        meta = {
            "format": _STATES_FORMAT,
            "optimizer": type(self._optimizer).__name__,
            "num_update": self._optimizer.num_update,
            # Per-parameter counts drive Adam's bias correction; they are the optimizer's
            # only hidden state besides the arrays.
            "index_update_count": {str(k): v for k, v in counts.get(0, {}).items()},
            # Scalars the optimizer carries between updates (Nadam's m_schedule); JSON
            # writes a float's shortest exact form, so they come back bit for bit.
            "scalars": {
                name: getattr(self._optimizer, name) for name in self._optimizer._scalar_state
            },
            "states": entries,
        }
        if len(tables) > 1:
            meta["device_update_counts"] = [
                {str(k): v for k, v in counts.get(d, {}).items()} for d in range(1, len(tables))
            ]
        text = json.dumps(meta)
        # The description lives in the header, outside the tensors' checksums: its own
        # checksum catches damage that the field checks of load_states cannot.
        return arrays, {"trainer": text, "trainer_crc32": checkpoint._text_crc(text)}

    def load_states(self, fname: str) -> None:
        """Read states written by ``save_states`` (same parameters, same optimizer).

        Everything is checked before the trainer changes (all or nothing, as
        ``load_parameters``): the update counts, that every parameter the counts say was
        updated has a state, and each state's structure, shapes and dtypes against what
        this trainer's optimizer keeps for that parameter.

        Raises:
            CheckpointMismatchError: The file is for another optimizer or other parameters
                (the message names the parameter and the field).
            CorruptCheckpointError: The file is truncated, damaged or not trainer states.
        """
        loaded = checkpoint.read_checkpoint(fname)
        if loaded.kind != "trainer_states":
            raise checkpoint.CheckpointMismatchError(
                f"Trainer.load_states: {fname!r} is not a gluonlite trainer states file (it "
                f"holds {loaded.kind})"
            )
        text = loaded.metadata.get("trainer", "")
        try:
            meta = json.loads(text)
        except ValueError as e:
            raise _corrupt_states(fname, f"its trainer description is not JSON ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != _STATES_FORMAT:
            raise checkpoint.CheckpointMismatchError(
                f"Trainer.load_states: {fname!r} is not a gluonlite trainer states file "
                f"(format {meta.get('format') if isinstance(meta, dict) else meta!r})"
            )
        if meta.get("optimizer") != type(self._optimizer).__name__:
            raise checkpoint.CheckpointMismatchError(
                f"Trainer.load_states: {fname!r} holds {meta.get('optimizer')} states, but "
                f"this trainer uses {type(self._optimizer).__name__}"
            )
        counts = self._checked_counts(meta, fname)
        scalars = self._checked_scalars(meta, fname)
        states = self._checked_states(meta, loaded.arrays, counts, fname)
        crc = loaded.metadata.get("trainer_crc32")  # absent in files of earlier versions
        if crc is not None and crc != checkpoint._text_crc(text):
            raise _corrupt_states(fname, "its trainer description does not match its checksum")
        # Swapped in only now: a file that fails any check leaves the trainer as it was.
        if self._kvstore is not None:  # one state per parameter: the first device's
            states, counts = states[:1], counts[:1]
        self._states, self._replica_states = states[0], states[1:]
        optimizer = self._optimizer
        optimizer.num_update = meta["num_update"]
        optimizer._all_index_update_counts = dict(enumerate(counts))
        optimizer._index_update_count = counts[0]
        for name, value in scalars.items():
            setattr(self._optimizer, name, value)

    def _checked_scalars(self, meta: dict[str, Any], fname: str) -> dict[str, float]:
        """The optimizer's scalar state of ``meta`` (see ``Optimizer._scalar_state``): one
        finite float for each name this optimizer keeps, no other names."""
        names = tuple(self._optimizer._scalar_state)
        scalars = meta.get("scalars", {} if not names else None)
        optimizer = type(self._optimizer).__name__
        if scalars is None:
            raise checkpoint.CheckpointMismatchError(
                f"Trainer.load_states: {fname!r} has no field 'scalars', but {optimizer} "
                f"keeps {list(names)} between updates (a file of an earlier gluonlite): "
                f"resuming from it would restart {names[0]!r}"
            )
        if not isinstance(scalars, dict) or set(scalars) != set(names):
            raise _corrupt_states(
                fname,
                f"field 'scalars' is {scalars!r}, expected a map "
                f"of {list(names)} to numbers for {optimizer}",
            )
        for name, value in scalars.items():
            if type(value) not in (int, float) or not numpy.isfinite(value):
                raise _corrupt_states(
                    fname, f"field 'scalars' gives {name!r} as {value!r}, expected a finite number"
                )
        return {name: float(value) for name, value in scalars.items()}

    def _checked_counts(self, meta: dict[str, Any], fname: str) -> list[dict[int, int]]:
        """The per-parameter update counts of ``meta``, one table per device (the first's
        from ``index_update_count``, the others' from ``device_update_counts``), after
        checking them and ``num_update`` (a count at least as large as each of them)."""
        more = meta.get("device_update_counts", [])
        if not isinstance(more, list):
            raise _corrupt_states(
                fname,
                f"field 'device_update_counts' is {more!r}, "
                f"expected a list of maps of parameter index to "
                f"count",
            )
        fields = [("index_update_count", meta.get("index_update_count"))] + [
            (f"device_update_counts[{d}]", raw) for d, raw in enumerate(more)
        ]
        tables: list[dict[int, int]] = []
        for field, raw in fields:
            if not isinstance(raw, dict):
                raise _corrupt_states(
                    fname, f"field {field!r} is {raw!r}, expected a map of parameter index to count"
                )
            counts: dict[int, int] = {}
            for key, count in raw.items():
                if not (key.isascii() and key.isdigit() and int(key) < len(self._names)):
                    raise _corrupt_states(
                        fname,
                        f"field {field!r} names parameter index "
                        f"{key!r}; this trainer has "
                        f"{len(self._names)} parameters",
                    )
                if type(count) is not int or count < 1:
                    raise _corrupt_states(
                        fname,
                        f"Parameter {self._names[int(key)]!r}: "
                        f"field {field!r} is {count!r}, expected "
                        f"a positive int",
                    )
                counts[int(key)] = count
            tables.append(counts)
        num_update = meta.get("num_update")
        if type(num_update) is not int or num_update < 0:
            raise _corrupt_states(
                fname, f"field 'num_update' is {num_update!r}, expected a non-negative int"
            )
        for counts in tables:
            if counts and num_update < max(counts.values()):
                i = max(counts, key=counts.get)  # type: ignore[arg-type]
                raise _corrupt_states(
                    fname,
                    f"field 'num_update' is {num_update}, below "
                    f"the {counts[i]} updates of Parameter "
                    f"{self._names[i]!r}",
                )
        return tables

    def _checked_states(
        self, meta: dict[str, Any], arrays: dict[str, Any], counts: list[dict[int, int]], fname: str
    ) -> list[dict[int, Any]]:
        """``[{index: (cpu(0), state)}]``, one table per device of ``counts``, from
        ``meta['states']`` and the file's arrays."""
        entries = meta.get("states")
        if not isinstance(entries, list):
            raise _corrupt_states(
                fname, f"field 'states' is {type(entries).__name__}, expected a list"
            )
        tables: list[dict[int, Any]] = [{} for _ in counts]
        used: set[str] = set()
        for entry in entries:
            i = entry.get("index") if isinstance(entry, dict) else None
            if type(i) is not int or i < 0:
                raise _corrupt_states(
                    fname,
                    f"an entry of field 'states' has the index {i!r}, expected a parameter index",
                )
            if i >= len(self._names) or self._names[i] != entry.get("name"):
                have = self._names[i] if i < len(self._names) else None
                raise checkpoint.CheckpointMismatchError(
                    f"Trainer.load_states: {fname!r} has a state for parameter {i} named "
                    f"{entry.get('name')!r}, but this trainer's parameter {i} is {have!r}"
                )
            d = entry.get("device", 0)
            if type(d) is not int or not 0 <= d < len(tables):
                raise _corrupt_states(
                    fname,
                    f"Parameter {self._names[i]!r}: an entry of "
                    f"field 'states' is for device {d!r}; the file "
                    f"has update counts for {len(tables)} devices",
                )
            if i in tables[d]:
                raise _corrupt_states(
                    fname,
                    f"Parameter {self._names[i]!r}: field 'states' "
                    f"lists it twice" + (f" for device {d}" if d else ""),
                )
            tables[d][i] = (
                Device("cpu", 0),
                self._checked_state(i, entry.get("structure"), arrays, used, fname, d),
            )
        for d, (table, table_counts) in enumerate(zip(tables, counts)):
            for i, count in table_counts.items():
                if i not in table:
                    where = f" for device {d}" if d else ""
                    raise _corrupt_states(
                        fname,
                        f"Parameter {self._names[i]!r}: field "
                        f"'states' has no entry for it{where}, but "
                        f"its update counts say it was updated "
                        f"{count} times",
                    )
        if set(arrays) != used:
            raise _corrupt_states(
                fname, f"the arrays {sorted(set(arrays) ^ used)} do not match field 'states'"
            )
        return tables

    def _checked_state(
        self,
        i: int,
        structure: Any,
        arrays: dict[str, Any],
        used: set[str],
        fname: str,
        device: int = 0,
    ) -> Any:
        """Parameter ``i``'s state (host arrays) from its ``structure``, checked against
        what this trainer's optimizer creates for the parameter."""
        name = self._names[i]
        leaves = []

        def leaf(k: Any) -> Any:
            if type(k) is not int:
                raise _corrupt_states(
                    fname,
                    f"Parameter {name!r}: field 'structure' holds {k!r}, expected array numbers",
                )
            leaves.append(k)
            key = _state_key(device, i, k)
            if key not in arrays or arrays[key].stype != "default":
                raise _corrupt_states(
                    fname,
                    f"Parameter {name!r}: field 'structure' names "
                    f"the array {key!r}, which the file lacks",
                )
            used.add(key)
            return ndarray(arrays[key].values, Device("cpu", 0))

        host = _map_state(structure, leaf)
        if leaves != list(range(len(leaves))):
            # save_states numbers the arrays in order; another order swaps them (e.g.
            # Adam's mean and variance).
            raise _corrupt_states(
                fname,
                f"Parameter {name!r}: field 'structure' lists its "
                f"arrays as {structure!r}, expected them in order "
                f"0..{len(leaves) - 1}",
            )
        param = self._params[i]
        shape = param.shape
        if shape is None or not all(n > 0 for n in shape):  # deferred: the file's shape
            first = _first_leaf(host)
            shape = tuple(first.shape) if first is not None else (1,)
        # What this optimizer keeps for the parameter, made on the host like the file's.
        expected = _describe(
            self._optimizer.create_state_multi_precision(
                i, ndarray(numpy.zeros(shape, param.dtype), Device("cpu", 0))
            )
        )
        found = _describe(host)
        if found != expected:
            raise checkpoint.CheckpointMismatchError(
                f"Trainer.load_states: Parameter {name!r}: field 'structure' of {fname!r} "
                f"describes the state {found}, but {type(self._optimizer).__name__} keeps "
                f"{expected} for its shape {shape} and dtype {numpy.dtype(param.dtype).name}"
            )
        return host


def _state_key(device: int, index: int, leaf: int) -> str:
    """The name of a state array in a states file (see ``Trainer._states_content``)."""
    return f"state_{index}_{leaf}" if device == 0 else f"device{device}_state_{index}_{leaf}"


def _corrupt_states(fname: str, what: str) -> checkpoint.CorruptCheckpointError:
    return checkpoint.CorruptCheckpointError(
        f"Trainer.load_states: the trainer description in {fname!r} is damaged: {what}"
    )


def _first_leaf(state: Any) -> Any:
    if isinstance(state, tuple):
        return next((x for x in map(_first_leaf, state) if x is not None), None)
    return state


def _describe(state: Any) -> Any:
    """A state's form for comparison and messages: None, tuples, and (shape, dtype) leaves."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_describe(s) for s in state)
    return f"{numpy.dtype(state.dtype).name}{tuple(state.shape)}"


# --------------------------------------------------------------------- reduction
def allreduce(arrays: list[Any], devices: list[Any], *, use_nccl: bool = False) -> None:
    """Sum raw arrays in place: afterwards every ``arrays[k]`` (on ``devices[k]``) holds
    ``arrays[0] + arrays[1] + ...``, bit-identical on every device.

    Without NCCL the sum is formed on ``devices[0]`` in list order (so the result does not
    depend on timing) and copied to the others; GPU pairs copy peer to peer.
    """
    if len(arrays) < 2:
        return
    if use_nccl and nccl_can_reduce(arrays):
        _nccl_allreduce(arrays, devices)
        return
    root, total = devices[0], arrays[0]
    with _backend.on(root):
        for a, device in zip(arrays[1:], devices[1:]):
            total += _readable(a, device, root)
    broadcast(total, root, arrays[1:], devices[1:])


def broadcast(source: Any, src: Device, targets: list[Any], devices: list[Any]) -> None:
    """Copy raw ``source`` (on ``src``) into each raw ``targets[k]`` on ``devices[k]``."""
    for target, device in zip(targets, devices):
        moved = _readable(source, src, device)
        with _backend.on(device):
            target[...] = moved


def _readable(raw: RawArray, src: Device, dst: Device) -> RawArray:
    """``raw`` in a form ``dst`` can read: as it is between CPUs (shared host memory, no
    need for a copy), else moved by ``_backend.transfer``."""
    if src.device_type == "cpu" and dst.device_type == "cpu":
        return raw
    return _backend.transfer(raw, src, dst)


def _flatten(arrays: list[Any]) -> Any:
    """One contiguous buffer holding ``arrays`` back to back (the array itself when one)."""
    if len(arrays) == 1 and arrays[0].flags.c_contiguous:
        return arrays[0].reshape(-1)
    xp = numpy if not _backend.is_gpu_array(arrays[0]) else _backend.cupy()
    return opt._gather(xp, arrays, [None] * len(arrays))  # type: ignore[attr-defined]


def _host_only(devices: list[Any]) -> bool:
    """True when every device is a CPU: the replicas share host memory, so reading another
    replica costs nothing and packing arrays into one buffer would only add copies."""
    return all(d.device_type == "cpu" for d in devices)


def allreduce_arrays(
    per_device: list[Any], devices: list[Any], *, use_nccl: bool = False, pack: bool = True
) -> None:
    """``allreduce`` for several arrays at once: ``per_device[k]`` lists the raw arrays on
    ``devices[k]`` (the same shapes and one dtype on every device).

    With ``pack`` the arrays travel as one flat buffer per device (one transfer or one NCCL
    call instead of one per array), which pays where a transfer has a fixed cost (GPUs);
    without it each array is reduced in place, which saves the packing copies (CPUs).
    """
    if not pack:
        for arrays in zip(*per_device):
            allreduce(list(arrays), devices, use_nccl=use_nccl)
        return
    flats = []
    for arrays, device in zip(per_device, devices):
        with _backend.on(device):
            flats.append(_flatten(arrays))
    allreduce(flats, devices, use_nccl=use_nccl)
    for flat, arrays, device in zip(flats, per_device, devices):
        if len(arrays) > 1 or not arrays[0].flags.c_contiguous:
            with _backend.on(device):
                opt._scatter(flat, arrays, [None] * len(arrays))  # type: ignore[attr-defined]


def broadcast_arrays(per_device: list[Any], devices: list[Any], *, pack: bool = True) -> None:
    """Copy each array of ``per_device[0]`` (on ``devices[0]``) into the matching array of
    every other ``per_device[k]``; ``pack`` as in ``allreduce_arrays``."""
    root, sources = devices[0], per_device[0]
    if not pack:
        for k, source in enumerate(sources):
            broadcast(source, root, [arrays[k] for arrays in per_device[1:]], devices[1:])
        return
    with _backend.on(root):
        flat = _flatten(sources)
    for targets, device in zip(per_device[1:], devices[1:]):
        moved = _readable(flat, root, device)
        with _backend.on(device):
            opt._scatter(moved, targets, [None] * len(targets))  # type: ignore[attr-defined]


def _allreduce_row_sparse(grads: list[Any], devices: list[Any]) -> None:
    """Sum row-sparse gradients into row-sparse form: the union of the rows, each summed.

    The sum is formed once on ``devices[0]`` (sorted unique row ids, duplicates added in
    device order) and the same rows are stored in every replica's buffer.
    """
    root = devices[0]
    xp = _backend.xp(root)
    with _backend.on(root):
        ids = xp.concatenate([_readable(_raw(g.indices), d, root) for g, d in zip(grads, devices)])
        rows = xp.concatenate([_readable(_raw(g.data), d, root) for g, d in zip(grads, devices)])
        # Sequential accumulation on NumPy; on a GPU atomics may reorder the additions,
        # but the sum is formed once and copied, so the replicas still agree exactly.
        summed, unique = sparse._sum_rows(xp, ids, rows, grads[0].shape, rows.dtype)
    shape = tuple(grads[0].shape)
    for g, device in zip(grads, devices):
        g._store_gradient(
            SparseRows(
                _backend.transfer(unique, root, device),
                _backend.transfer(summed, root, device),
                shape,
            ),
            add=False,
        )


# --------------------------------------------------------------------- helpers
def _check_batch_size(where: str, batch_size: float) -> None:
    if type(batch_size) is int and batch_size > 0:  # the common case, checked cheaply
        return
    if isinstance(batch_size, (bool, numpy.bool_)) or not isinstance(
        batch_size, (int, float, numpy.integer, numpy.floating)
    ):
        raise TypeError(
            f"{where}: batch_size must be a positive number (the samples the "
            f"gradients were summed over), got {batch_size!r}"
        )
    if not (numpy.isfinite(batch_size) and batch_size > 0):
        raise ValueError(
            f"{where}: batch_size must be a positive number (the samples the "
            f"gradients were summed over), got {batch_size!r}"
        )


def _raw(x: Any) -> RawArray:
    return x._data if isinstance(x, ndarray) else x


def _moved(a: Any, src: Device, dst: Device) -> Any:
    """State array ``a`` (an ``mx.np.ndarray`` or a raw array) moved to ``dst``."""
    if isinstance(a, ndarray):
        return ndarray(_backend.transfer(a._data, src, dst), dst)
    return _backend.transfer(a, src, dst)


def _compression(params: Any) -> Any:
    """``(type, threshold)`` from MXNet's ``compression_params``, or None."""
    if params is None:
        return None
    if not isinstance(params, dict):
        raise TypeError(
            f"Trainer: compression_params must be a dict such as "
            f"{{'type': '2bit', 'threshold': 0.5}}, got {type(params).__name__}"
        )
    unknown = set(params) - {"type", "threshold"}
    if unknown:
        raise ValueError(
            f"Trainer: compression_params has unknown keys {sorted(unknown)}; "
            "expected 'type' and 'threshold'"
        )
    kind = params.get("type")
    if kind not in _COMPRESSION_TYPES:
        raise ValueError(
            f"Trainer: compression_params['type'] must be one of {_COMPRESSION_TYPES}, got {kind!r}"
        )
    threshold = params.get("threshold", 0.5 if kind == "2bit" else 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(
            f"Trainer: compression_params['threshold'] must be a number, got {threshold!r}"
        )
    if kind == "2bit" and not threshold > 0:
        raise ValueError(
            f"Trainer: compression_params['threshold'] must be > 0 for 2bit "
            f"compression, got {threshold}"
        )
    return kind, float(threshold)


def _is_row_sparse(grad: Any) -> bool:
    return getattr(grad, "stype", "default") == "row_sparse"


def _optimizer_grad(grad: Any) -> Any:
    """The raw gradient the optimizer takes: an array, or ``RowSparseGrad`` for row-sparse."""
    if _is_row_sparse(grad):
        return opt.RowSparseGrad(_raw(grad.indices), _raw(grad.data))
    return grad._data


def _by_dtype(replicas: list[Any]) -> list[Any]:
    """``replicas`` grouped by dtype, in first-seen order (one flat buffer per group)."""
    groups: dict[Any, Any] = {}
    for r in replicas:
        groups.setdefault(r.data[0].dtype, []).append(r)
    return list(groups.values())


def _map_state(state: Any, fn: Callable[..., Any]) -> Any:
    """``state`` (None, an array, or nested tuples of them) with ``fn`` applied to each
    array. Lists count as tuples, so the JSON form of a structure maps back to the tuples
    the optimizers create."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_map_state(s, fn) for s in state)
    return fn(state)
