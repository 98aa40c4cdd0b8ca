"""``Block``: the unit of a Gluon model, holding Parameters and child Blocks.

Children and Parameters register themselves when assigned as attributes, and
``collect_params()`` names them by attribute path as MXNet 2 does (``0.weight`` for the
first layer of a ``Sequential``, ``encoder.fc.bias`` for nested blocks).

There is no graph compiler in gluonlite: ``HybridBlock`` is a ``Block`` whose
``hybridize()`` is accepted and changes nothing, so every forward runs eagerly on NumPy or
CuPy (and gives the numbers a hybridized MXNet model gives). ``HybridBlock.export`` traces a
forward into MXNet's symbol JSON, which ``gluon.SymbolBlock`` runs (``symbol_block.py``).

The MXNet 1.x spellings ``Block(prefix=, params=)``, ``name``, ``prefix``, ``name_scope()``
and ``params.get(...)`` work and warn once with a ``DeprecationWarning``.

>>> import gluonlite as mx
>>> class Affine(mx.gluon.Block):
...     def __init__(self):
...         super().__init__()
...         self.scale = mx.gluon.Parameter('scale', shape=(2,), init='ones')
...     def forward(self, x):
...         return x * self.scale.data(x.device)
>>> block = Affine()
>>> block.initialize(device=mx.cpu(1))
>>> block(mx.np.array([1.0, 2.0], device=mx.cpu(1)))
array([1., 2.], device=cpu(1))
>>> list(block.collect_params())
['scale']
"""

from __future__ import annotations

import contextvars
import json
import re
import warnings

import numpy

from .. import autograd, checkpoint
from .._compat import resolve_ctx, warn_renamed
from ..device import as_devices
from ..ndarray import ndarray
from .parameter import DeferredInitializationError, Parameter, ParameterDict, stand_ins
from .utils import HookHandle
from collections.abc import Callable, Iterator
from typing import Any
from .._typing import DTypeLike, DevicesLike
from ..initializer import InitLike

__all__ = ["Block", "HybridBlock"]

# The block whose name_scope() is open (1.x): children created inside get its prefix.
_scope: contextvars.ContextVar[Block | None] = contextvars.ContextVar(
    "gluonlite_name_scope", default=None
)
# Block's own bookkeeping attributes (dicts of children, parameters and hooks).
_INTERNAL = frozenset(
    (
        "_children",
        "_reg_params",
        "_forward_pre_hooks",
        "_forward_hooks",
        "_scope_counts",
        "_shared_params",
        "_flags",
    )
)
# Automatic 1.x prefixes outside any name scope: 'dense0_', 'dense1_', ... per class.
_global_counts: dict[str, int] = {}


# HybridBlock.export() writes through symbol_block.py's tracer, which sits above this
# module (it subclasses HybridBlock and uses the nn layers); symbol_block.py registers it
# here when imported (``import gluonlite`` imports it), so this module does not import it.
_exporter: Callable[[HybridBlock, Any, int, bool], tuple[str, str]] | None = None


def register_exporter(export: Callable[[HybridBlock, Any, int, bool], tuple[str, str]]) -> None:
    """Called once by ``symbol_block.py``: ``export(block, path, epoch, remove_amp_cast)``
    writes ``block``'s symbol and parameter files and returns their names."""
    global _exporter
    _exporter = export


class Block:
    """Base class of layers and models: subclass it and implement ``forward``.

    Attributes that are Blocks become children, attributes that are Parameters become this
    block's own parameters; both are found by ``collect_params``. An attribute holding a
    Block or Parameter can only be reassigned to a value of the same type (``TypeError``
    otherwise, as in MXNet). Blocks kept in a plain list or dict are not registered (a
    warning says so): use ``register_child`` or ``nn.Sequential``.

    Args:
        prefix: MXNet 1.x: the prefix of the names of Parameters made by ``params.get``
            (deprecated; by default the lower-case class name and a counter, ``dense0_``).
        params: MXNet 1.x: a ParameterDict whose Parameters ``params.get`` reuses
            (deprecated; use ``share_parameters``).
    """

    # Set in __init__ through object.__setattr__ (declared here for type checkers).
    _children: dict[str, Block]
    _reg_params: dict[str, Parameter]
    _forward_pre_hooks: dict[int, Callable[..., Any]]
    _forward_hooks: dict[int, Callable[..., Any]]
    _getter_names: set[str]
    _warned_containers: set[str]
    _prefix: str
    _legacy_names: bool
    _shared_params: Any
    _scope_counts: dict[str, int]

    # Class flags that layers above this module set, so that summary() and infer_type()
    # single them out without importing them: a container (nn.Sequential and its
    # subclasses) gets no row of its own in summary(); a layer that keeps float32
    # Parameters under 16-bit float inputs (nn.BatchNorm and its subclasses) passes
    # infer_type()'s dtype check for those.
    _summary_container = False
    _float32_params_for_half_inputs = False

    def __init__(self, prefix: str | None = None, params: Any = None) -> None:
        # Set through object.__setattr__ because our __setattr__ reads them.
        setup = object.__setattr__
        setup(self, "_children", {})
        setup(self, "_reg_params", {})
        setup(self, "_forward_pre_hooks", {})
        setup(self, "_forward_hooks", {})
        # Keys of _reg_params made by params.get(): an attribute holding the same
        # Parameter later takes the entry over (the 1.x `self.w = self.params.get('w')`).
        setup(self, "_getter_names", set())
        setup(self, "_warned_containers", set())
        prefix_given = prefix is not None
        if prefix is not None:
            warn_renamed("Block(prefix=...)", "structural names (the keys of collect_params())")
            if not isinstance(prefix, str):
                raise TypeError(
                    f"{type(self).__name__}: prefix must be a str, got {type(prefix).__name__}"
                )
        if params is not None:
            warn_renamed("Block(params=...)", "share_parameters()")
            if not isinstance(params, dict):
                raise TypeError(
                    f"{type(self).__name__}: params must be a ParameterDict (e.g. "
                    f"other.params), got {type(params).__name__}"
                )
        parent = _scope.get()
        counts = _global_counts if parent is None else parent._scope_counts
        if prefix is None:
            hint = type(self).__name__.lower()
            prefix = f"{hint}{counts.get(hint, 0)}_"
            counts[hint] = counts.get(hint, 0) + 1
        setup(self, "_prefix", prefix if parent is None else parent._prefix + prefix)
        # Made the 1.x way (a prefix, shared params or inside a name_scope): its Parameters
        # get 1.x full names ('dense0_weight'), which 1.x scripts look up.
        setup(self, "_legacy_names", prefix_given or params is not None or parent is not None)
        setup(self, "_shared_params", params)
        setup(self, "_scope_counts", {})

    # ----------------------------------------------------------------- attributes
    def __setattr__(self, name: str, value: Any) -> None:
        existing = self.__dict__.get(name)
        if isinstance(existing, (Block, Parameter)) and not isinstance(value, type(existing)):
            raise TypeError(
                f"{type(self).__name__}: changing attribute {name!r} from "
                f"{type(existing).__name__} to {type(value).__name__} is not "
                f"allowed; delete it first (del block.{name})"
            )
        if isinstance(value, Block):
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            self._register_param(name, value)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)
        self._children.pop(name, None)
        self._reg_params.pop(name, None)

    def _register_param(self, name: str, param: Parameter) -> None:
        if self._legacy_names and param.name == name:
            param.name = self._prefix + name
        for key in [k for k in self._getter_names if self._reg_params.get(k) is param]:
            if key != name:
                del self._reg_params[key]
            self._getter_names.discard(key)
        self._reg_params[name] = param

    def register_child(self, block: "Block", name: str | None = None) -> "Block":
        """Register ``block`` as a child named ``name`` (its position when None)."""
        if not isinstance(block, Block):
            raise TypeError(
                f"{type(self).__name__}.register_child expects a Block, got {type(block).__name__}"
            )
        if name is None:
            name = str(len(self._children))
        self._children[name] = block
        return block

    def _check_container_with_block(self) -> None:
        """MXNet's warning for Blocks kept in a list, tuple or dict attribute."""
        for name, value in self.__dict__.items():
            if (
                name in _INTERNAL
                or name in self._warned_containers
                or not isinstance(value, (list, tuple, dict))
            ):
                continue
            items = value.values() if isinstance(value, dict) else value
            if any(isinstance(v, Block) for v in items):
                self._warned_containers.add(name)
                warnings.warn(
                    f'"{name}" of {type(self).__name__} is an unregistered container with '
                    f"Blocks. Note that Blocks inside the list, tuple or dict will not be "
                    f"registered automatically. Make sure to register them using "
                    f"register_child() or switching to nn.Sequential/nn.HybridSequential "
                    f"instead.",
                    UserWarning,
                    stacklevel=3,
                )

    # ----------------------------------------------------------------- MXNet 1.x names
    @property
    def prefix(self) -> str:
        """MXNet 1.x: the prefix of Parameter names made by ``params.get`` (deprecated)."""
        warn_renamed("Block.prefix", "structural names (the keys of collect_params())")
        return self._prefix

    @property
    def name(self) -> str:
        """MXNet 1.x: the prefix without its trailing underscore (deprecated)."""
        warn_renamed("Block.name", "structural names (the keys of collect_params())")
        return self._prefix[:-1] if self._prefix.endswith("_") else self._prefix

    def name_scope(self) -> _NameScope:
        """MXNet 1.x: Blocks created inside get this block's prefix (deprecated)."""
        warn_renamed("Block.name_scope()", "plain attribute assignment")
        return _NameScope(self)

    # ----------------------------------------------------------------- parameters
    @property
    def params(self) -> ParameterDict:
        """This block's own Parameters (children's excluded), by attribute name.

        MXNet 1.x: ``params.get(name, shape=..., init=...)`` creates a Parameter named
        ``prefix + name`` and registers it here (deprecated; assign a Parameter attribute).
        """
        return ParameterDict._internal(
            self._reg_params.items(),
            prefix=self._prefix,
            shared=self._shared_params,
            owner=self,
            creates="kwargs",
        )

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """Parameters of this block and all its children, by structural name.

        Args:
            select: a regular expression matched at the start of each structural name
                (``re.compile(select).match``, as MXNet 2 does; not a full match): e.g.
                ``'.*weight|.*bias'``, or ``'0\\.'`` for the first child's parameters.
                ``'weight'`` selects nothing from ``'0.weight'`` (the match is anchored at
                the start) and ``'0.w'`` selects ``'0.weight'`` (it need not reach the
                end); append ``$`` for a full match.

        Returns:
            A dict ``name -> Parameter`` in registration order (a ``ParameterDict``, so the
            MXNet 1.x methods ``setattr``, ``initialize``, ... work on it). A Parameter
            shared by two blocks appears under both names (Trainer counts it once).

        Raises:
            TypeError: ``select`` is not a str. ``re.error``: it is not a valid expression.
        """
        found: dict[str, Parameter] = {}
        stack = [("", self)]
        # Iterative walk keeps registration order: own parameters, then children in order.
        while stack:
            prefix, block = stack.pop()
            block._check_container_with_block()
            for name, param in block._reg_params.items():
                found[prefix + name] = param
            for name, child in reversed(list(block._children.items())):
                stack.append((f"{prefix}{name}.", child))
        if select is not None:
            if not isinstance(select, str):
                raise TypeError(
                    f"{type(self).__name__}.collect_params: select must be a "
                    f"regular expression str, got {type(select).__name__}"
                )
            pattern = re.compile(select)
            found = {name: p for name, p in found.items() if pattern.match(name)}
        return ParameterDict._internal(found.items(), prefix=self._prefix)

    def _unique_params(self) -> list[Parameter]:
        return list(_unique(self.collect_params().values()))

    def initialize(
        self,
        init: InitLike = None,
        device: DevicesLike = None,
        verbose: bool = False,
        force_reinit: bool = False,
        ctx: DevicesLike = None,
    ) -> None:
        """Initialize every Parameter on ``device`` (one device or a list of replicas).

        ``init`` is the default: a Parameter's own ``init`` (e.g. Dense's
        ``bias_initializer='zeros'``) takes precedence over it, as in MXNet. Parameters whose
        shape is not yet known are initialized at the first forward pass. ``verbose`` prints
        the statistics of each initialized array. ``ctx=`` is the deprecated name of
        ``device``.
        """
        device = resolve_ctx(device, ctx)
        self.collect_params().initialize(
            init, device=device, verbose=verbose, force_reinit=force_reinit
        )

    def setattr(self, name: str, value: Any) -> None:
        """Set attribute ``name`` (e.g. ``'grad_req'``, ``'lr_mult'``) of every Parameter.

        Example:
            >>> import gluonlite as mx
            >>> net = mx.gluon.nn.Dense(2, in_units=3)
            >>> net.setattr('grad_req', 'null')
            >>> net.weight.grad_req
            'null'
        """
        self.collect_params().setattr(name, value)

    def zero_grad(self) -> None:
        """Zero the gradient buffers of all Parameters on all devices."""
        for param in self._unique_params():
            param.zero_grad()

    def reset_device(self, device: DevicesLike) -> None:
        """Move every Parameter to ``device`` (one device or a list), keeping the values."""
        for param in self._unique_params():
            param.reset_device(device)

    def reset_ctx(self, ctx: DevicesLike) -> None:
        """Deprecated alias of ``reset_device``."""
        warn_renamed("reset_ctx()", "reset_device()")
        self.reset_device(ctx)

    def cast(self, dtype: DTypeLike) -> None:
        """Cast all Parameters (data and gradients, on every device) to ``dtype``."""
        for param in self._unique_params():
            param.cast(dtype)

    def share_parameters(self, shared: dict[str, Parameter]) -> "Block":
        """Use the Parameters in ``shared`` (structural name -> Parameter) in this block.

        Typically ``shared = other.collect_params()`` for a block of the same structure.
        Names in ``shared`` that this block does not have are reported with a warning.

        Returns:
            This block, so that ``net = Net().share_parameters(...)`` reads naturally.
        """
        if shared is None:
            return self
        if not isinstance(shared, dict):
            raise TypeError(
                f"share_parameters expects a dict name -> Parameter (e.g. from "
                f"collect_params()), got {type(shared).__name__}"
            )
        for key, value in shared.items():
            if not isinstance(value, Parameter):
                raise TypeError(
                    f"share_parameters: {key!r} is a {type(value).__name__}, not a Parameter"
                )
        unused = set(shared)
        stack = [("", self)]
        while stack:
            prefix, block = stack.pop()
            for name in list(block._reg_params):
                key = prefix + name
                if key in shared:
                    block._reg_params[name] = shared[key]
                    if name in block.__dict__:
                        object.__setattr__(block, name, shared[key])
                    unused.discard(key)
            stack.extend((f"{prefix}{name}.", child) for name, child in block._children.items())
        for name in sorted(unused):
            warnings.warn(
                f"share_parameters: parameter {name!r} is not in this {type(self).__name__}",
                UserWarning,
                stacklevel=2,
            )
        return self

    # ----------------------------------------------------------------- files
    def save_parameters(self, filename: str, deduplicate: bool = False) -> None:
        """Save ``collect_params()`` to ``filename``, keyed by structural name: a
        safetensors file replaced atomically, one replica per parameter (see
        ``mx.gluon.save_parameters``). With ``deduplicate`` a shared Parameter is saved
        once, under its first name."""
        checkpoint.save_parameters(filename, self.collect_params(), deduplicate=deduplicate)

    def load_parameters(
        self,
        filename: str,
        device: DevicesLike = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        cast_dtype: bool = False,
        dtype_source: str = "current",
        ctx: DevicesLike = None,
    ) -> None:
        """Load ``filename`` (gluonlite or Apache MXNet format) into ``collect_params()``.

        Everything is checked before any Parameter changes. Parameters not initialized yet
        are initialized on ``device`` (default: the current device) with the loaded values;
        initialized ones keep their devices. See ``mx.gluon.load_parameters`` for the
        arguments and the errors.
        """
        device = resolve_ctx(device, ctx)
        checkpoint.load_parameters(
            filename,
            self.collect_params(),
            device=device,
            allow_missing=allow_missing,
            ignore_extra=ignore_extra,
            cast_dtype=cast_dtype,
            dtype_source=dtype_source,
        )

    def load_dict(
        self,
        param_dict: dict[str, Any],
        device: DevicesLike = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        cast_dtype: bool = False,
        dtype_source: str = "current",
        ctx: DevicesLike = None,
    ) -> None:
        """Load values from ``param_dict`` (structural name -> array) like
        ``load_parameters`` loads a file: all checked first, then all applied.

        Names may carry MXNet's ``arg:``/``aux:`` prefixes. The arrays may be
        ``mx.np.ndarray`` or NumPy arrays.

        Raises:
            TypeError: ``param_dict`` is not a dict of arrays.
            CheckpointMismatchError: as ``load_parameters``.
        """
        device = resolve_ctx(device, ctx)
        if not isinstance(param_dict, dict):
            raise TypeError(
                f"{type(self).__name__}.load_dict expects a dict name -> array, "
                f"got {type(param_dict).__name__}"
            )
        if dtype_source not in ("current", "saved"):
            raise ValueError(f"dtype_source must be 'current' or 'saved', got {dtype_source!r}")
        saved = {}
        for key, value in param_dict.items():
            name = key[4:] if key.startswith(("arg:", "aux:")) else key
            if isinstance(value, ndarray):
                host = value.asnumpy()
            elif hasattr(value, "__array__") and not isinstance(value, Parameter):
                host = numpy.asarray(value)
            else:
                raise TypeError(
                    f"{type(self).__name__}.load_dict: {key!r} holds a "
                    f"{type(value).__name__}, not an array"
                )
            saved[name] = checkpoint.HostArray(  # type: ignore[attr-defined]
                "default", tuple(host.shape), host
            )
        devices = None if device is None else as_devices(device)
        steps = checkpoint._plan(
            "the dict given to load_dict",
            self.collect_params(),
            saved,
            devices,
            allow_missing,
            ignore_extra,
            cast_dtype,
            dtype_source,
        )
        for step in steps:
            checkpoint._apply(step)

    def _structure(self) -> dict[str, Any]:
        """Types, parameter shapes and children, for ``save`` and ``load``."""
        return {
            "type": type(self).__name__,
            "params": {
                name: {
                    "shape": list(p.shape) if p.shape is not None else None,
                    "dtype": str(p.dtype),
                }
                for name, p in self._reg_params.items()
            },
            "children": {name: child._structure() for name, child in self._children.items()},
        }

    def save(self, prefix: str) -> None:
        """Save the model as ``prefix-model.json`` (the block tree: each block's type, its
        parameters' shapes and dtypes, its children) and ``prefix-model.params``.

        As in MXNet 2, the architecture is not rebuilt from the file: ``load`` needs a
        block constructed the same way and checks that the tree matches.
        """
        structure = json.dumps(self._structure(), indent=1)
        checkpoint.atomic_write(f"{prefix}-model.json", lambda path: _write_text(path, structure))
        self.save_parameters(f"{prefix}-model.params", deduplicate=True)

    def load(self, prefix: str) -> None:
        """Load what ``save(prefix)`` wrote into this block (constructed the same way).

        Raises:
            ValueError: the saved tree differs from this block's (the message names the
                first difference); nothing is loaded then.
        """
        with open(f"{prefix}-model.json", encoding="utf-8") as f:
            saved = json.load(f)
        difference = _first_difference(saved, self._structure(), "")
        if difference is not None:
            raise ValueError(
                f"{type(self).__name__}.load: {prefix}-model.json describes "
                f"another model structure: {difference}"
            )
        self.load_parameters(f"{prefix}-model.params")

    # ----------------------------------------------------------------- traversal
    def _blocks(self) -> list[Block]:
        """This block and all its descendants, parents before children."""
        out: list[Block] = []
        stack = [self]
        while stack:
            block = stack.pop()
            out.append(block)
            stack.extend(reversed(list(block._children.values())))
        return out

    def apply(self, fn: Callable[..., Any]) -> "Block":
        """Call ``fn(block)`` on every descendant (children first), then on this block.

        Returns:
            This block.
        """
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    # ----------------------------------------------------------------- hooks
    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> HookHandle:
        """Call ``hook(block, args)`` before each forward; ``detach()`` the handle to stop."""
        if not callable(hook):
            raise TypeError(
                f"{type(self).__name__}.register_forward_pre_hook expects a "
                f"callable, got {type(hook).__name__}"
            )
        return HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable[..., Any]) -> HookHandle:
        """Call ``hook(block, args, output)`` after each forward; ``detach()`` to stop."""
        if not callable(hook):
            raise TypeError(
                f"{type(self).__name__}.register_forward_hook expects a "
                f"callable, got {type(hook).__name__}"
            )
        return HookHandle(self._forward_hooks, hook)

    def register_op_hook(
        self, callback: Callable[[str, str, ndarray], Any], monitor_all: bool = False
    ) -> None:
        """Call ``callback(name, op_name, array)`` for the outputs of every block in this
        tree (and, with ``monitor_all``, their inputs too).

        MXNet calls it per operator of a hybridized graph; gluonlite runs eagerly and has
        no graph, so the unit is the block: ``name`` is its structural name plus
        ``_output`` or ``_input<i>``, ``op_name`` its class name.
        """
        if not callable(callback):
            raise TypeError(
                f"{type(self).__name__}.register_op_hook expects a callable, "
                f"got {type(callback).__name__}"
            )

        def each(path: str, block: Block) -> None:
            def hook(blk: Block, args: Any, out: Any) -> None:
                name = path or type(blk).__name__.lower()
                if monitor_all:
                    for i, a in enumerate(args):
                        if isinstance(a, ndarray):
                            callback(f"{name}_input{i}", type(blk).__name__, a)
                for o in out if isinstance(out, (list, tuple)) else (out,):
                    if isinstance(o, ndarray):
                        callback(f"{name}_output", type(blk).__name__, o)

            block.register_forward_hook(hook)
            for cname, child in block._children.items():
                each(f"{path}.{cname}" if path else cname, child)

        each("", self)

    # ----------------------------------------------------------------- running
    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        """Accepted for MXNet compatibility: passed on to the children, changes nothing.

        gluonlite has no graph compiler: blocks always run eagerly, so code written for
        hybridized MXNet models runs unchanged (and gives the same numbers).
        """
        self._check_container_with_block()
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    def infer_shape(self, *args: Any) -> None:
        """Complete the shapes of deferred Parameters from the first forward's inputs.

        Layers with deferred shapes (e.g. ``Dense(in_units=0)``) override this; the default
        explains what is missing.
        """
        unknown = [name for name, p in self.collect_params().items() if not _shape_known(p.shape)]
        raise RuntimeError(
            f"{type(self).__name__} has parameters with unknown shapes {unknown}; give their "
            f"shapes at construction or override infer_shape(*args) to set them from the "
            f"inputs"
        )

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    # Set on hybridized HybridBlocks: each call notes its inputs' shapes for ``export``.
    _note_inputs = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._note_inputs:
            object.__setattr__(
                self,
                "_export_inputs",
                tuple(
                    (a.shape, a.dtype, a.device) if isinstance(a, ndarray) else None for a in args
                )
                + ((None,) if kwargs else ()),
            )
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                hook(self, args)
        try:
            out = self.forward(*args, **kwargs)
        except DeferredInitializationError:
            # The first forward of a deferred layer: learn the shapes from the inputs, then
            # run again; the parameters finish their initialization on first data() access.
            self.infer_shape(*args, **kwargs)
            out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                hook(self, args, out)
        return out

    def summary(self, *inputs: Any) -> None:
        """Run a forward on ``inputs`` and print MXNet's table: each layer (in the order
        its forward finished), its output shape and its parameter count, then the totals.
        """
        rows = [("Input", _shapes_text(inputs), 0, 0, 0)]
        seen: set[int] = set()
        handles = []

        def hook(block: Block, args: Any, out: Any) -> None:
            total = trainable = shared = 0
            for p in block._reg_params.values():
                size = int(numpy.prod(p.shape))  # type: ignore[arg-type]  # known once run
                total += size
                trainable += 0 if p.grad_req == "null" else size
                if id(p) in seen:
                    shared += size
                seen.add(id(p))
            rows.append(
                (f"{type(block).__name__}-{len(rows)}", _shapes_text(out), total, trainable, shared)
            )

        for block in self._blocks():
            if not block._summary_container:
                handles.append(block.register_forward_hook(hook))
        try:
            with autograd.pause():
                self(*inputs)
        finally:
            for h in handles:
                h.detach()
        line = "{:>20}  {:>42} {:>15}"
        out = ["-" * 80, line.format("Layer (type)", "Output Shape", "Param #"), "=" * 80]
        out += [line.format(name, shape, n) for name, shape, n, _, _ in rows]
        total = sum(r[2] for r in rows)
        trainable = sum(r[3] for r in rows)
        shared = sum(r[4] for r in rows)
        out += [
            "=" * 80,
            "Parameters in forward computation graph, duplicate included",
            f"   Total params: {total}",
            f"   Trainable params: {trainable}",
            f"   Non-trainable params: {total - trainable}",
            f"Shared params in forward computation graph: {shared}",
            f"Unique parameters in model: {total - shared}",
            "-" * 80,
        ]
        print("\n".join(out))

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self._extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)

    def _extra_repr(self) -> str:
        return ""


class _NameScope:
    """``with block.name_scope():`` makes ``block`` the parent of the prefixes made inside."""

    def __init__(self, block: Block) -> None:
        self._block = block
        self._tokens: list[contextvars.Token[Block | None]] = []

    def __enter__(self) -> Block:
        self._tokens.append(_scope.set(self._block))
        return self._block

    def __exit__(self, *exc: Any) -> None:
        _scope.reset(self._tokens.pop())


class HybridBlock(Block):
    """A Block that MXNet can compile to a graph; in gluonlite it runs eagerly too.

    ``hybridize(active, static_alloc=..., static_shape=..., ...)`` is accepted and
    recorded (``_active``); the numbers do not change. A hybridized block notes the input
    shapes of each call, from which ``export`` traces MXNet's graph.
    """

    def __init__(self, prefix: str | None = None, params: Any = None) -> None:
        super().__init__(prefix, params)
        object.__setattr__(self, "_active", False)
        object.__setattr__(self, "_flags", {})

    def hybridize(self, active: bool = True, **kwargs: Any) -> None:
        object.__setattr__(self, "_active", bool(active))
        object.__setattr__(self, "_flags", dict(kwargs))
        object.__setattr__(self, "_note_inputs", bool(active))
        super().hybridize(active, **kwargs)

    def export(self, path: Any, epoch: int = 0, remove_amp_cast: bool = True) -> tuple[str, str]:
        """Write the model as MXNet does: ``path-symbol.json`` (the graph in MXNet's symbol
        JSON) and ``path-%04d.params`` (``epoch``; the parameters as ``arg:name`` /
        ``aux:name`` in MXNet's NDArray format), loadable by ``SymbolBlock.imports`` of
        gluonlite and of MXNet.

        As in MXNet, call ``hybridize()`` and run a forward first: the graph is traced
        from a forward on inputs shaped like that call's (see
        ``gluonlite.gluon.symbol_block`` for what can be traced). ``remove_amp_cast`` is
        accepted; gluonlite writes no ``amp_cast`` nodes.

        Returns:
            ``(symbol_filename, params_filename)``.

        Raises:
            RuntimeError: not hybridized and run yet. TypeError: the forward computes
                with an operation that has no MXNet symbol here (the message names the
                block and operator); nothing is written then.
        """
        if _exporter is None:
            raise RuntimeError(
                "HybridBlock.export: no exporter is registered; import gluonlite.gluon "
                "(gluonlite.gluon.symbol_block registers it)"
            )
        return _exporter(self, path, epoch, remove_amp_cast)

    def infer_shape(self, *args: Any) -> None:
        """Infer the shapes of all Parameters (deferred ones included) from ``args``,
        without initializing any, as MXNet 2 does.

        gluonlite has no graph to run shape inference on: the forward runs on zero
        stand-ins for the Parameters that have no data yet (``autograd`` paused, predict
        mode), and each layer sets its deferred shapes from its input on the way. Layers
        with their own rule (``Dense``, ``Conv2D``, ...) override this.

        Raises:
            RuntimeError: a block of this tree owns a Parameter of unknown shape and has no
                ``infer_shape`` of its own. Shapes changed before the error are restored.

        Example:
            >>> import gluonlite as mx
            >>> net = mx.gluon.nn.HybridSequential()
            >>> net.add(mx.gluon.nn.Dense(4), mx.gluon.nn.Dense(2))
            >>> net.infer_shape(mx.np.ones((3, 5)))
            >>> net[1].weight.shape
            (2, 4)
        """
        self._probe(args, None)

    def infer_type(self, *args: Any) -> None:
        """Check the Parameters' dtypes against the inputs ``args``, as MXNet 2's type
        inference does: each layer's floating input must have its Parameters' dtype
        (``BatchNorm`` also takes float16/bfloat16 input with float32 Parameters). Where
        inference succeeds MXNet sets each Parameter's dtype to the one it already has, so
        no Parameter changes here either.

        gluonlite's operators would compute mixed dtypes without complaint; this names the
        layer where an MXNet graph would not type-check (a model whose inputs are cast to
        float16 but whose layers are not, say). The forward runs as in ``infer_shape``;
        deferred shapes are left as they were.

        Raises:
            TypeError: naming the first layer (structural name and type), its Parameter and
                both dtypes.

        Example:
            >>> import gluonlite as mx
            >>> net = mx.gluon.nn.Dense(2, in_units=3)
            >>> net.infer_type(mx.np.ones((1, 3)))
            >>> net.infer_type(mx.np.ones((1, 3), dtype='float16'))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            TypeError: infer_type: Dense (the top block) has Parameter 'weight' of float32 ...
        """
        names = _block_paths(self)

        def check(block: Block, inputs: Any) -> None:
            x = next((a for a in inputs if isinstance(a, ndarray) and a.dtype.kind == "f"), None)
            if x is None:
                return
            for name, param in block._reg_params.items():
                if param is None or param.dtype.kind != "f" or param.dtype == x.dtype:
                    continue
                if (
                    block._float32_params_for_half_inputs
                    and param.dtype == numpy.float32
                    and x.dtype.itemsize == 2
                ):
                    continue
                where = names.get(id(block)) or "the top block"
                raise TypeError(
                    f"infer_type: {type(block).__name__} ({where}) has Parameter "
                    f"{name!r} of {param.dtype} but its input is {x.dtype}; cast "
                    f"the block (block.cast('{x.dtype}')) or the input "
                    f"(x.astype('{param.dtype}'))"
                )

        self._probe(args, check, keep_shapes=False)

    def optimize_for(
        self,
        x: Any,
        *args: Any,
        backend: Any = None,
        backend_opts: Any = None,
        clear: bool = True,
        partition_if_dynamic: bool = True,
        static_alloc: bool = False,
        static_shape: bool = False,
        inline_limit: int = 2,
        forward_bulk_size: Any = None,
        backward_bulk_size: Any = None,
        **kwargs: Any,
    ) -> None:
        """MXNet 2: partition the graph for ``backend``, hybridize and run ``x, *args``
        through once.

        gluonlite has no graph and no partitioning backends: ``backend=None`` (the default)
        is accepted, the block is hybridized with the other flags (recorded, as
        ``hybridize`` does) and the forward runs once under ``autograd.pause()``, which
        completes deferred initialization as MXNet's first forward does.

        Raises:
            ValueError: ``backend`` is not None (nothing changes then).

        Example:
            >>> import gluonlite as mx
            >>> net = mx.gluon.nn.Dense(2)
            >>> net.initialize()
            >>> net.optimize_for(mx.np.ones((1, 3)))
            >>> net.weight.shape
            (2, 3)
        """
        if backend is not None:
            raise ValueError(
                f"{type(self).__name__}.optimize_for: unknown backend "
                f"{backend!r}; gluonlite has no graph partitioning backends "
                f"(pass backend=None)"
            )
        if backend_opts is not None and not isinstance(backend_opts, dict):
            raise TypeError(
                f"{type(self).__name__}.optimize_for: backend_opts must be a dict "
                f"or None, got {type(backend_opts).__name__}"
            )
        self.hybridize(
            True,
            clear=clear,
            partition_if_dynamic=partition_if_dynamic,
            static_alloc=static_alloc,
            static_shape=static_shape,
            inline_limit=inline_limit,
            forward_bulk_size=forward_bulk_size,
            backward_bulk_size=backward_bulk_size,
            **kwargs,
        )
        with autograd.pause():
            self(x, *args)

    def _probe(self, args: Any, check: Any, keep_shapes: bool = True) -> None:
        """Run the forward on stand-ins (see ``infer_shape``), calling ``check(block,
        inputs)`` before each block with Parameters runs; on an error, or unless
        ``keep_shapes``, every Parameter's shape is restored."""
        params = self._unique_params()
        shapes = [p._shape for p in params]
        handles = []
        if check is not None:
            handles = [b.register_forward_pre_hook(check) for b in self._blocks() if b._reg_params]
            if self._reg_params:
                check(self, args)
        ok = False
        try:
            with stand_ins(), autograd.pause():
                try:
                    self.forward(*args)
                except DeferredInitializationError:
                    Block.infer_shape(self, *args)  # explains which shapes are missing
            ok = True
        finally:
            for h in handles:
                h.detach()
            if not ok or not keep_shapes:
                for p, shape in zip(params, shapes):
                    p._shape = shape


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _first_difference(saved: Any, current: dict[str, Any], path: str) -> str | None:
    """Where two ``_structure()`` trees differ, in words, or None."""
    where = path or "the top block"
    if not isinstance(saved, dict) or saved.get("type") != current["type"]:
        got = saved.get("type") if isinstance(saved, dict) else saved
        return f"{where} is a {current['type']} here but a {got} in the file"
    if list(saved.get("params", {})) != list(current["params"]):
        return (
            f"{where} has parameters {list(current['params'])} here but "
            f"{list(saved.get('params', {}))} in the file"
        )
    if list(saved.get("children", {})) != list(current["children"]):
        return (
            f"{where} has children {list(current['children'])} here but "
            f"{list(saved.get('children', {}))} in the file"
        )
    for name, child in current["children"].items():
        found = _first_difference(
            saved["children"][name], child, f"{path}.{name}" if path else name
        )
        if found is not None:
            return found
    return None


def _shapes_text(value: Any) -> str:
    """Output shapes as MXNet's summary writes them: ``(2, 3)``, or ``(2, 3), (4,)``."""

    def shapes(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [shapes(x) for x in v]
        return v.shape if hasattr(v, "shape") else v

    found = shapes(value)
    if isinstance(found, list):
        return str(found)[1:-1] if len(found) != 1 else str(found[0])
    return str(found)


def _block_paths(root: Block) -> dict[int, str]:
    """``id(block) -> structural name`` for every block below ``root`` ('' for root)."""
    out: dict[int, str] = {}
    stack = [("", root)]
    while stack:
        path, block = stack.pop()
        out.setdefault(id(block), path)
        stack.extend(
            (f"{path}.{name}" if path else name, child) for name, child in block._children.items()
        )
    return out


def _shape_known(shape: Any) -> bool:
    return shape is not None and all(int(n) > 0 for n in shape)


def _unique(params: Any) -> Iterator[Parameter]:
    """Each Parameter once, in first-seen order (shared parameters appear twice)."""
    seen: set[int] = set()
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            yield p
