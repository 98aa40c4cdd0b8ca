"""``Block``: the unit of a Gluon model, holding Parameters and child Blocks.

Children and Parameters register themselves when assigned as attributes, and
``collect_params()`` names them by attribute path as MXNet 2 does (``0.weight`` for the
first layer of a ``Sequential``, ``encoder.fc.bias`` for nested blocks).

There is no graph compiler in gluonlite, so ``HybridBlock`` is ``Block`` and
``hybridize()`` is accepted and does nothing: every forward runs eagerly on NumPy or CuPy.

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

import re
import warnings

import numpy

from .. import initializer
from .._compat import resolve_ctx
from .parameter import DeferredInitializationError, Parameter

__all__ = ["Block", "HybridBlock"]


class Block:
    """Base class of layers and models: subclass it and implement ``forward``.

    Attributes that are Blocks become children, attributes that are Parameters become this
    block's own parameters; both are found by ``collect_params``. Blocks kept in a plain
    list or dict are not registered: use ``register_child`` or ``nn.Sequential``.
    """

    def __init__(self):
        # Set through object.__setattr__ because our __setattr__ reads them.
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_reg_params", {})

    def __setattr__(self, name: str, value) -> None:
        # Whatever the attribute held before stops being registered unless the new value
        # takes its place (replacing in place keeps the registration order, which
        # collect_params follows).
        if not isinstance(value, Block):
            self._children.pop(name, None)
        if not isinstance(value, Parameter):
            self._reg_params.pop(name, None)
        if isinstance(value, Block):
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            self._reg_params[name] = value
        object.__setattr__(self, name, value)

    def register_child(self, block: "Block", name: str | None = None) -> "Block":
        """Register ``block`` as a child named ``name`` (its position when None)."""
        if not isinstance(block, Block):
            raise TypeError(f"register_child expects a Block, got {type(block).__name__}")
        if name is None:
            name = str(len(self._children))
        self._children[name] = block
        return block

    @property
    def params(self) -> dict:
        """This block's own Parameters (children's excluded), by attribute name."""
        return dict(self._reg_params)

    def collect_params(self, select: str | None = None) -> dict:
        """Parameters of this block and all its children, by structured name.

        Args:
            select: a regular expression; only names it matches (``re.match``, anchored
                at the start) are returned, e.g. ``'.*weight'`` or ``'0\\.'``.

        Returns:
            A dict ``name -> Parameter`` in registration order. A Parameter shared by two
            blocks appears under both names (Trainer counts it once).
        """
        found: dict = {}
        stack = [("", self)]
        # Iterative walk keeps registration order: own parameters, then children in order.
        while stack:
            prefix, block = stack.pop()
            for name, param in block._reg_params.items():
                found[prefix + name] = param
            for name, child in reversed(list(block._children.items())):
                stack.append((f"{prefix}{name}.", child))
        if select is None:
            return found
        pattern = re.compile(select)
        return {name: p for name, p in found.items() if pattern.match(name)}

    def initialize(self, init=None, device=None, verbose: bool = False,
                   force_reinit: bool = False, ctx=None) -> None:
        """Initialize every Parameter on ``device`` (one device or a list of replicas).

        ``init`` is the default: a Parameter's own ``init`` (e.g. Dense's
        ``bias_initializer='zeros'``) takes precedence over it, as in MXNet. Parameters whose
        shape is not yet known are initialized at the first forward pass. ``ctx=`` is the
        deprecated name of ``device``.
        """
        del verbose  # accepted for MXNet compatibility; initializers print nothing
        device = resolve_ctx(device, ctx)
        default = initializer.Uniform() if init is None else init
        for param in _unique(self.collect_params().values()):
            param.initialize(None, device=device, default_init=default,
                             force_reinit=force_reinit)

    def zero_grad(self) -> None:
        """Zero the gradient buffers of all Parameters on all devices."""
        for param in _unique(self.collect_params().values()):
            param.zero_grad()

    def reset_device(self, device) -> None:
        """Move every Parameter to ``device`` (one device or a list), keeping the values."""
        for param in _unique(self.collect_params().values()):
            param.reset_device(device)

    def share_parameters(self, shared: dict) -> "Block":
        """Use the Parameters in ``shared`` (structured name -> Parameter) in this block.

        Typically ``shared = other.collect_params()`` for a block of the same structure.
        Names in ``shared`` that this block does not have are reported with a warning.

        Returns:
            This block, so that ``net = Net().share_parameters(...)`` reads naturally.
        """
        if shared is None:
            return self
        if not isinstance(shared, dict):
            raise TypeError(f"share_parameters expects a dict name -> Parameter (e.g. from "
                            f"collect_params()), got {type(shared).__name__}")
        unused = set(shared)
        stack = [("", self)]
        while stack:
            prefix, block = stack.pop()
            for name in list(block._reg_params):
                key = prefix + name
                if key in shared:
                    setattr(block, name, shared[key])
                    unused.discard(key)
            stack.extend((f"{prefix}{name}.", child) for name, child in block._children.items())
        for name in sorted(unused):
            warnings.warn(f"share_parameters: parameter {name!r} is not in this "
                          f"{type(self).__name__}", UserWarning, stacklevel=2)
        return self

    def save_parameters(self, filename: str, deduplicate: bool = False) -> None:
        """Write every Parameter's values to ``filename`` (NumPy ``.npz``, read without
        pickle; the name is used as given), keyed by structured name.

        Replicas are identical after a Trainer step, so one replica is saved. With
        ``deduplicate`` a shared Parameter is saved once, under its first name.
        """
        arrays, seen = {}, set()
        for name, param in self.collect_params().items():
            if deduplicate and id(param) in seen:
                continue
            seen.add(id(param))
            arrays[name] = param.list_data()[0].asnumpy()
        with open(filename, "wb") as f:
            numpy.savez(f, **arrays)

    def load_parameters(self, filename: str, device=None, allow_missing: bool = False,
                        ignore_extra: bool = False, cast_dtype: bool = False,
                        dtype_source: str = "current", ctx=None) -> None:
        """Load values written by ``save_parameters`` into this block's Parameters.

        Parameters not initialized yet are initialized on ``device`` (default: the current
        device) with the loaded values; initialized ones keep their devices.

        Args:
            allow_missing: do not complain about Parameters the file lacks.
            ignore_extra: do not complain about names in the file this block lacks.
            cast_dtype: convert a value whose dtype differs (else it is an error), to the
                Parameter's dtype (``dtype_source='current'``) or the Parameter to the
                saved dtype (``'saved'``).
        """
        device = resolve_ctx(device, ctx)
        if dtype_source not in ("current", "saved"):
            raise ValueError(f"load_parameters: dtype_source must be 'current' or 'saved', "
                             f"got {dtype_source!r}")
        params = self.collect_params()
        with numpy.load(filename, allow_pickle=False) as archive:
            loaded = {name: archive[name] for name in archive.files}
        missing = [name for name in params if name not in loaded]
        if missing and not allow_missing:
            raise KeyError(f"load_parameters: {filename!r} has no values for {missing}; pass "
                           f"allow_missing=True to keep their current values")
        extra = [name for name in loaded if name not in params]
        if extra and not ignore_extra:
            raise KeyError(f"load_parameters: {filename!r} holds {extra}, which "
                           f"{type(self).__name__} does not have; pass ignore_extra=True to "
                           f"skip them")
        for name, param in params.items():
            if name not in loaded:
                continue
            value = loaded[name]
            if value.dtype != param.dtype:
                if not cast_dtype:
                    raise TypeError(f"load_parameters: {name!r} is saved as {value.dtype} but "
                                    f"the parameter is {param.dtype}; pass cast_dtype=True")
                if dtype_source == "saved":
                    param.cast(value.dtype)
                else:
                    value = value.astype(param.dtype)
            try:
                param.list_device()
            except RuntimeError:  # never initialized: the file provides the values
                param.shape = value.shape
                param.initialize(init="zeros", device=device)
            param.set_data(value)

    def cast(self, dtype) -> None:
        """Cast all Parameters (data and gradients, on every device) to ``dtype``."""
        for param in _unique(self.collect_params().values()):
            param.cast(dtype)

    def hybridize(self, active: bool = True, **kwargs) -> None:
        """Accepted for MXNet compatibility; does nothing.

        gluonlite has no graph compiler: blocks always run eagerly, so code written for
        hybridized MXNet models runs unchanged (and gives the same numbers).
        """
        del active, kwargs

    def infer_shape(self, *args) -> None:
        """Complete the shapes of deferred Parameters from the first forward's inputs.

        Layers with deferred shapes (e.g. ``Dense(in_units=0)``) override this; the default
        explains what is missing.
        """
        unknown = [name for name, p in self.collect_params().items()
                   if not _shape_known(p.shape)]
        raise RuntimeError(
            f"{type(self).__name__} has parameters with unknown shapes {unknown}; give their "
            f"shapes at construction or override infer_shape(*args) to set them from the "
            f"inputs")

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        try:
            return self.forward(*args, **kwargs)
        except DeferredInitializationError:
            # The first forward of a deferred layer: learn the shapes from the inputs, then
            # run again; the parameters finish their initialization on first data() access.
            self.infer_shape(*args, **kwargs)
            return self.forward(*args, **kwargs)

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


# No graph compiler: a HybridBlock is a Block (see the module docstring).
HybridBlock = Block


def _shape_known(shape) -> bool:
    return shape is not None and all(int(n) > 0 for n in shape)


def _unique(params):
    """Each Parameter once, in first-seen order (shared parameters appear twice)."""
    seen = set()
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            yield p
