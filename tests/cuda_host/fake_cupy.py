"""CuPy without a GPU, two ways.

``emulated(n)`` (the second half of this file) is a whole ``cupy`` module for ``n`` emulated
GPUs: gluonlite uses it instead of CuPy under ``GLUONLITE_EMULATE_GPUS=n`` (see
``gluonlite/_cupy.py``), and ``make test`` runs every GPU-parametrised test on it. The
block comment above ``emulated`` lists the CuPy/CUDA rules it enforces and what it cannot show.

``module()`` is the older, lighter stand-in for the few CuPy APIs ``gluonlite._kernels``
calls, on plain NumPy arrays (``Array``), that the host-kernel tests patch in as ``cupy``.

Both encode this project's reading of CuPy's API (``RawModule(code=, options=,
name_expressions=)``, ``get_function``, ``ndarray.data.ptr``, ``cuda.Event``, ...), so they
catch mistakes in our code, not misreadings of CuPy: those only a GPU run finds.
"""

import ctypes
import hashlib
import time
import types

import numpy

from . import harness


class Array(numpy.ndarray):
    """A NumPy array that also answers CuPy's ``.data.ptr`` and ``.device`` (device 0)."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)

    @property
    def device(self):
        return _Device(0)


def as_array(array):
    """``array`` as an ``Array`` (a view, no copy)."""
    return numpy.asarray(array).view(Array)


class CompileException(Exception):
    pass


class _Event:
    def record(self, stream=None):
        self.at = time.perf_counter()

    def synchronize(self):
        pass


class _Device:
    def __init__(self, device=0):
        self.id = device

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _host_buffer(address: int, bits_type, transposed: bool, rows: int, cols: int, ld: int):
    """The elements (raw bits) a column-major rows x cols operand spans from ``address``."""
    stored_rows, stored_cols = (cols, rows) if transposed else (rows, cols)
    count = max(0, ld * (stored_cols - 1) + stored_rows)
    c_type = {2: ctypes.c_uint16, 4: ctypes.c_uint32}[numpy.dtype(bits_type).itemsize]
    return numpy.ctypeslib.as_array((c_type * count).from_address(address))


class _Cublas:
    """cupy.cuda.cublas's gemmEx and pointer-mode calls, emulated for the float32, float16
    and bfloat16 storage that gluonlite uses."""

    def __init__(self):
        self.mode = 1  # not HOST: the caller must set it, as CuPy may leave it so
        self.calls = []  # data type of each gemmEx call, in order

    def getPointerMode(self, handle):
        return self.mode

    def setPointerMode(self, handle, mode):
        self.mode = mode

    def gemmEx(
        self,
        handle,
        transa,
        transb,
        m,
        n,
        k,
        alpha,
        a,
        atype,
        lda,
        b,
        btype,
        ldb,
        beta,
        c,
        ctype,
        ldc,
        compute_type,
        algo,
    ):
        from .reference import GEMM_DATA_TYPES, gemm_ex

        assert self.mode == 0, "alpha and beta are host pointers: CUBLAS_POINTER_MODE_HOST"
        assert atype == btype == ctype and atype in GEMM_DATA_TYPES, (atype, btype, ctype)
        assert (compute_type, algo) == (68, -1)  # CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT
        assert transa in (0, 1) and transb in (0, 1)
        assert ctypes.c_float.from_address(alpha).value == 1.0
        self.calls.append(atype)
        bits_type = GEMM_DATA_TYPES[atype][1]
        gemm_ex(
            atype,
            bool(transa),
            bool(transb),
            m,
            n,
            k,
            _host_buffer(a, bits_type, transa, m, k, lda),
            lda,
            _host_buffer(b, bits_type, transb, k, n, ldb),
            ldb,
            _host_buffer(c, bits_type, False, m, n, ldc),
            ldc,
            ctypes.c_float.from_address(beta).value,
        )


def module(order: str = "forward", sanitize=None) -> types.ModuleType:
    """A ``cupy`` module whose kernels run in the host harness under ``order``; its
    ``launches`` list records the name expression of every kernel launched, in order."""
    fake = types.ModuleType("cupy")
    fake.launches = []
    fake.__getattr__ = lambda name: getattr(numpy, name)  # everything else is NumPy's
    fake.empty = lambda shape, dtype=float: as_array(numpy.empty(shape, dtype))
    fake.zeros = lambda shape, dtype=float: as_array(numpy.zeros(shape, dtype))
    # As in CuPy, a host array is copied (to the "device"); a device array is not.
    fake.asarray = lambda a, dtype=None: as_array(
        numpy.asarray(a, dtype) if isinstance(a, Array) else numpy.array(a, dtype)
    )
    fake.ascontiguousarray = lambda a, dtype=None: as_array(numpy.ascontiguousarray(a, dtype))

    class RawModule:
        def __init__(self, code, options=(), name_expressions=()):
            self.code, self.options, self.expressions = code, options, tuple(name_expressions)
            self.built = None

        def get_function(self, expression):
            if self.built is None:
                path = harness.cache_dir() / (
                    hashlib.sha256(self.code.encode()).hexdigest()[:16] + ".cu"
                )
                path.write_text(self.code)
                try:
                    self.built = harness.HostModule(path, self.expressions, sanitize)
                except RuntimeError as e:
                    raise CompileException(str(e)) from e
            kernel = self.built.get_function(expression)

            def launch(grid, block, args, shared_mem=0):
                fake.launches.append(expression)
                kernel(grid, block, args, shared_mem, order=order, seed=7)

            return launch

    fake.RawModule = RawModule
    stream = types.SimpleNamespace(synchronize=lambda: None)
    fake.cuda = types.SimpleNamespace(
        Device=_Device,
        Event=_Event,
        get_current_stream=lambda: stream,
        get_elapsed_time=lambda start, stop: (stop.at - start.at) * 1e3,
        runtime=types.SimpleNamespace(getDevice=lambda: 0),
        cublas=_Cublas(),
        get_cublas_handle=lambda: 0,
        compiler=types.SimpleNamespace(CompileException=CompileException),
    )
    return fake


# =======================================================================================
# The emulated CuPy: ``emulated(n)`` is a ``cupy`` module with ``n`` GPUs on the host.
#
# gluonlite selects it instead of the real CuPy when ``GLUONLITE_EMULATE_GPUS=n`` is set
# (``gluonlite._cupy``), so every test parametrised over ``gpu(i)`` runs gluonlite's GPU
# code (moves, peer copies, kernel launches, cuBLAS and NCCL calls, streams and events)
# on this machine. It enforces the rules of CuPy and CUDA that decide whether such code is
# right, so that it finds bugs rather than hiding them:
#
# - Arrays belong to the device current when they were made. An op, kernel launch, cuBLAS
#   or NCCL call under another current device raises unless that device enabled peer
#   access to the owner. NumPy arrays are refused where CuPy refuses them, and an emulated
#   array never turns into a NumPy array implicitly (``__array__`` raises, as in CuPy).
# - Memory comes from a per-(device, stream) pool. Fresh and freed memory is poisoned
#   (NaN bytes); a freed block is poisoned in its stream's order and reused by the next
#   allocation of that size on that stream, so reading a buffer after its owner let go of
#   it shows up as NaN or as another array's values.
# - Work is in order per stream. Host-side ops and kernel launches run at once, after the
#   work queued on the current stream; ``cudaMemcpy*Async`` is queued on its stream and
#   runs only when that stream is synchronised, waited on through an event or used by a
#   later op. A copy that is not ordered with the code reading its result, or with the
#   freeing of its source, therefore reads or leaves poison. ``ndarray.set(host, stream)``
#   from pinned memory (``cuda.alloc_pinned_memory``) is such a queued copy; one whose
#   pinned source was let go before it ran raises.
# - Kernel arguments are checked against the kernel's C++ parameter types (the host
#   harness), launch shapes against the H100/H200's limits; kernels run compiled by g++.
# - cuBLAS ``gemmEx`` runs on the NumPy reference; NCCL is an in-process communicator that
#   reads and writes through the pointers it is given (``count`` elements from ``ptr``, so
#   a non-contiguous buffer gives wrong values, as on a GPU).
#
# What it cannot show: real cuBLAS/GPU numerics (FMA contraction, flush-to-zero, reduction
# orders), timing, NVRTC compilation, warp-level scheduling beyond the harness's orders.
# =======================================================================================
import operator
import threading
import warnings
import weakref

_POISON = 0xFF  # NaN in every float width
_ALIGN = 256  # cudaMalloc's alignment
# H100/H200 (sm_90) launch limits
MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS_PER_BLOCK = 1024
MAX_GRID = (2**31 - 1, 65535, 65535)
MAX_SHARED_DEFAULT = 48 * 1024
_DEVICE_MEMORY = 141 * 2**30  # an H200's, reported by memGetInfo
# ncclDataType_t codes
_NCCL_DTYPES = {
    0: "int8",
    1: "uint8",
    2: "int32",
    3: "uint32",
    4: "int64",
    5: "uint64",
    6: "float16",
    7: "float32",
    8: "float64",
    9: "bfloat16",
}
# Functions that take host data (lists, NumPy arrays) and put it on the current device.
_CREATION = {
    "array",
    "asarray",
    "asanyarray",
    "ascontiguousarray",
    "empty",
    "zeros",
    "ones",
    "full",
    "arange",
    "linspace",
    "eye",
    "identity",
    "empty_like",
    "zeros_like",
    "ones_like",
    "full_like",
    "frombuffer",
    "fromiter",
}


# ndarray methods that only make a view (no kernel, so no device check in CuPy).
_VIEW_METHODS = {"reshape", "view", "transpose", "swapaxes", "squeeze"}


class CUDARuntimeError(RuntimeError):
    pass


class PerformanceWarning(RuntimeWarning):
    """CuPy's warning when an op reads another device's array through peer access."""


class EmulationError(RuntimeError):
    """gluonlite broke a CuPy/CUDA rule that a GPU would punish (crash or wrong values)."""


def _numpy_dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return numpy.dtype(ml_dtypes.bfloat16)
    return numpy.dtype(name)


class _Stream:
    """A CUDA stream: a queue of deferred work (async copies, frees) run in order."""

    _next_ptr = 0x1000

    def __init__(self, machine, device: int, null: bool = False, **_options):
        self.machine, self.device_id = machine, device
        if null:
            self.ptr = 0
        else:
            _Stream._next_ptr += 16
            self.ptr = _Stream._next_ptr
            machine.streams[self.ptr] = self
        self.queue = []
        self.enqueued = self.executed = 0

    def enqueue(self, work) -> None:
        self.queue.append(work)
        self.enqueued += 1

    def run_until(self, position: int) -> None:
        while self.executed < position:
            work = self.queue.pop(0)
            self.executed += 1
            work()

    def flush(self) -> None:
        self.run_until(self.enqueued)

    def synchronize(self) -> None:
        self.machine.host_syncs += 1
        self.flush()

    def wait_event(self, event) -> None:
        # The GPU orders this stream after the event; running the event's stream up to it
        # now gives the same order.
        if event.stream is not None:
            event.stream.run_until(event.position)

    def record(self, event=None):
        event = event or self.machine.Event()
        event.record(self)
        return event

    def use(self):
        self.machine.local().streams[self.device_id] = self
        return self

    def __enter__(self):
        local = self.machine.local()
        local.stream_stack.append(local.streams.get(self.device_id))
        local.streams[self.device_id] = self
        return self

    def __exit__(self, *exc):
        local = self.machine.local()
        local.streams[self.device_id] = local.stream_stack.pop()
        return False


class _EmulatedEvent:
    def __init__(self, machine, block=False, disable_timing=False, interprocess=False):
        self.machine = machine
        self.stream, self.position, self.at = None, 0, None

    def record(self, stream=None):
        stream = stream or self.machine.current_stream()
        self.stream, self.position = stream, stream.enqueued
        self.at = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.stream is None or self.stream.executed >= self.position

    def synchronize(self):
        self.machine.host_syncs += 1
        if self.stream is not None:
            self.stream.run_until(self.position)


class _Block:
    """One allocation: exposes the pool memory to NumPy and, when the last array using it
    goes, gives it back to its (device, stream) pool in stream order."""

    def __init__(self, backing, nbytes: int, device: int):
        self.backing, self.device = backing, device
        self.__array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "version": 3,
            "data": (backing.ctypes.data, False),
        }


class _Pool:
    """The memory pool of one emulated device (CuPy's per-stream arena reuse, eagerly)."""

    def __init__(self, machine, device: int):
        self.machine, self.device = machine, device
        self.free = {}  # (stream ptr, bytes) -> backings, most recently freed last
        self.used = 0
        self.cached = 0

    def allocate(self, nbytes: int, stream) -> _Block:
        size = max(_ALIGN, -(-nbytes // _ALIGN) * _ALIGN)
        stack = self.free.get((stream.ptr, size))
        if stack:
            backing = stack.pop()
            self.cached -= size
        else:
            raw = numpy.empty(size + _ALIGN, numpy.uint8)
            start = -raw.ctypes.data % _ALIGN
            backing = raw[start : start + size]
            backing[:] = _POISON
        self.used += size
        block = _Block(backing, nbytes, self.device)
        self.machine.live[backing.ctypes.data] = (backing, self.device)
        weakref.finalize(block, self._release, backing, stream, size).atexit = False
        return block

    def _release(self, backing, stream, size) -> None:
        def give_back():
            backing[:] = _POISON
            self.machine.live.pop(backing.ctypes.data, None)
            self.free.setdefault((stream.ptr, size), []).append(backing)
            self.used -= size
            self.cached += size

        if stream.executed == stream.enqueued:
            give_back()
        else:
            stream.enqueue(give_back)

    def free_all_blocks(self) -> None:
        self.free.clear()
        self.cached = 0


class _MemoryPool:
    """``cupy.get_default_memory_pool()``: one pool per device; calls act on the current
    device's, as CuPy's do."""

    def __init__(self, machine):
        self.machine = machine

    def _pool(self):
        return self.machine.pools[self.machine.current_device()]

    def free_all_blocks(self, stream=None):
        self._pool().free_all_blocks()

    def used_bytes(self):
        return self._pool().used

    def free_bytes(self):
        return self._pool().cached

    def total_bytes(self):
        return self._pool().used + self._pool().cached


class PinnedMemoryPointer(bytearray):
    """``cupy.cuda.PinnedMemoryPointer``: page-locked host memory NumPy can view (the
    buffer protocol), with its address as ``ptr`` and the device current at allocation."""

    def __init__(self, size: int, device: int):
        super().__init__(size)
        self.device_id = device
        self.ptr = numpy.frombuffer(self, numpy.uint8).ctypes.data if size else 0


def _pinned_pointer(arr):
    """The PinnedMemoryPointer a NumPy array views, or None."""
    base = arr
    while isinstance(base, numpy.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, PinnedMemoryPointer) else None


class _MemoryPointer:
    def __init__(self, array):
        self.ptr = array._a.ctypes.data if array._a.size else 0
        self.device_id = array._dev
        self.mem = array._a.base

    @property
    def device(self):
        return _EmulatedDevice(None, self.device_id)


class _EmulatedDevice:
    """``cupy.cuda.Device(i)``: the current device inside ``with``."""

    def __init__(self, machine, device=None):
        self.machine = machine
        if machine is not None:
            if device is None:
                device = machine.current_device()
            device = int(getattr(device, "id", device))
            if not 0 <= device < machine.count:
                raise CUDARuntimeError(
                    f"cudaErrorInvalidDevice: invalid device ordinal "
                    f"{device} ({machine.count} emulated GPUs)"
                )
        self.id = device

    compute_capability = "90"

    def __enter__(self):
        local = self.machine.local()
        local.devices.append(self.id)
        return self

    def __exit__(self, *exc):
        self.machine.local().devices.pop()
        return False

    def use(self):
        local = self.machine.local()
        local.devices[0] = self.id

    def synchronize(self):
        self.machine.host_syncs += 1
        for stream in self.machine.all_streams(self.id):
            stream.flush()

    def __eq__(self, other):
        return isinstance(other, _EmulatedDevice) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _unwrap_host(value, machine, where, allow_host):
    """``value`` with emulated arrays replaced by their NumPy memory (after the device check)
    and NumPy arrays refused unless ``allow_host``."""
    if isinstance(value, EmulatedArray):
        machine.check_access(value, where)
        return value._a
    if isinstance(value, numpy.ndarray) and not allow_host:
        raise TypeError(
            f"cupy.{where}: unsupported type {type(value)} (a NumPy array on "
            "the host; CuPy takes device arrays only)"
        )
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap_host(v, machine, where, allow_host) for v in value)
    return value


class EmulatedArray:
    """``cupy.ndarray`` of the emulated machine: NumPy memory from the device's pool."""

    __slots__ = ("_a", "_dev", "_machine", "__weakref__")
    __module__ = "cupy"  # as cupy.ndarray's: code that tells arrays apart by module agrees
    __array_ufunc__ = None  # NumPy defers to our reflected operators
    __hash__ = None

    def __init__(self, machine, array, device):
        self._machine, self._a, self._dev = machine, array, device

    # -- what CuPy's ndarray answers directly
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    data = property(lambda self: _MemoryPointer(self))

    @property
    def device(self):
        return _EmulatedDevice(self._machine, self._dev)

    @property
    def T(self):
        return self._machine.wrap(self._a.T, "T")

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use "
            "`.get()` to construct a NumPy array explicitly."
        )

    def get(self, stream=None, order="C", out=None):
        return self._machine.to_host(self)

    def set(self, arr, stream=None):
        """Copy host array ``arr`` in: at once from pageable memory or without ``stream``;
        from pinned memory with a ``stream``, queued on it (cudaMemcpyAsync), reading the
        host buffer only when it runs."""
        machine = self._machine
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"cupy.ndarray.set: expected a numpy.ndarray, got {type(arr).__name__}")
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(
                f"cupy.ndarray.set: {arr.dtype}{arr.shape} into {self.dtype}{self.shape}"
            )
        if not self._a.flags.c_contiguous:
            raise RuntimeError("Cannot set to non-contiguous array")
        owner = _pinned_pointer(arr)
        if stream is None or owner is None or not arr.flags.c_contiguous:
            with _EmulatedDevice(machine, self._dev):
                machine.before_op()
            self._a[...] = arr
            return
        if stream.device_id != self._dev:
            raise EmulationError(
                f"ndarray.set: a stream of device {stream.device_id} copies "
                f"into memory of device {self._dev}"
            )
        # Only the pointer's address and a weak reference travel with the copy: if gluonlite
        # let go of the pinned buffer before the copy ran, CuPy's pinned pool could hand it
        # to the next allocation while the GPU still reads it.
        offset, nbytes = arr.ctypes.data - owner.ptr, arr.nbytes
        source, target = weakref.ref(owner), self._a

        def copy():
            buffer = source()
            if buffer is None:
                raise EmulationError(
                    "ndarray.set: the pinned host buffer of an asynchronous "
                    "copy was freed before the copy ran"
                )
            target[...] = (
                numpy.frombuffer(buffer, numpy.uint8, nbytes, offset)
                .view(target.dtype)
                .reshape(target.shape)
            )

        machine.pinned_copies += 1
        stream.enqueue(copy)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def _host_scalar(self):
        return self._machine.to_host(self)

    def __bool__(self):
        return bool(self._host_scalar())

    def __float__(self):
        return float(self._host_scalar())

    def __int__(self):
        return int(self._host_scalar())

    def __complex__(self):
        return complex(self._host_scalar())

    def __repr__(self):
        return repr(self._machine.to_host(self)).replace("array(", "emulated_gpu_array(", 1)

    def __format__(self, spec):
        return format(self._machine.to_host(self), spec)

    def __getitem__(self, key):
        key = _unwrap_host(key, self._machine, "__getitem__", allow_host=True)
        result = self._a[key]
        if not numpy.shares_memory(result, self._a):  # advanced indexing: a kernel
            self._machine.check_access(self, "__getitem__")
            self._machine.before_op()
        return self._machine.wrap(result, "__getitem__")

    def __setitem__(self, key, value):
        self._machine.check_access(self, "__setitem__")
        key = _unwrap_host(key, self._machine, "__setitem__", allow_host=True)
        value = _unwrap_host(value, self._machine, "__setitem__", allow_host=True)
        self._machine.before_op()
        self._a[key] = value

    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ & co: no silent host access
            raise AttributeError(name)
        method = getattr(self._a, name)
        machine = self._machine
        if not callable(method):  # .real, .imag (views) or plain values
            return machine.wrap(method, name) if isinstance(method, numpy.ndarray) else method

        def call(*args, **kwargs):
            if name not in _VIEW_METHODS:
                machine.check_access(self, name)
            args = _unwrap_host(args, machine, name, allow_host=False)
            kwargs = {
                k: _unwrap_host(v, machine, name, allow_host=False) for k, v in kwargs.items()
            }
            machine.before_op()
            return machine.wrap(method(*args, **kwargs), name, inputs=(self,))

        return call

    def __dlpack_device__(self):
        return (2, self._dev)  # kDLCUDA

    def __dlpack__(self, stream=None, **_):
        # Stands in for the DLPack capsule: only the emulated from_dlpack can open it.
        return _DLPackCapsule(self)


class _DLPackCapsule:
    """The emulated capsule; it speaks the DLPack protocol itself, as gluonlite wraps a real
    PyCapsule (``npx.utils._Capsule``), so either form reaches the emulated from_dlpack."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, stream=None, **_):
        return self

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


def _operator(name, reflected=False, inplace=False):
    fn = getattr(operator, name)

    def method(self, other=None):
        machine = self._machine
        machine.check_access(self, name)
        args = () if other is None else (_unwrap_host(other, machine, name, False),)
        machine.before_op()
        if reflected:
            return machine.wrap(fn(args[0], self._a), name)
        result = fn(self._a, *args)
        if inplace:
            return self
        return machine.wrap(result, name)

    return method


for _name in (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
):
    _fn_name = _name + "_" if _name in ("and", "or") else _name
    setattr(EmulatedArray, f"__{_name}__", _operator(_fn_name))
    setattr(EmulatedArray, f"__r{_name}__", _operator(_fn_name, reflected=True))
    setattr(EmulatedArray, f"__i{_name}__", _operator(f"i{_name}", inplace=True))
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(EmulatedArray, f"__{_name}__", _operator(_name))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(EmulatedArray, f"__{_name}__", _operator(_name))


class _Ufunc:
    """A NumPy ufunc on emulated arrays, its methods (``.at``, ``.reduce``) included."""

    def __init__(self, machine, ufunc):
        self._machine, self._ufunc = machine, ufunc

    def __call__(self, *args, **kwargs):
        return self._machine.call(self._ufunc, self._ufunc.__name__, args, kwargs)

    def __getattr__(self, name):
        method = getattr(self._ufunc, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: self._machine.call(
            method, f"{self._ufunc.__name__}.{name}", args, kwargs
        )


class _Namespace(types.SimpleNamespace):
    pass


class _Machine:
    """The state of ``count`` emulated GPUs; attributes of the returned module read it."""

    def __init__(self, count: int):
        self.count = count
        self.live = {}  # start address -> (backing, device) of every allocated block
        self.streams = {}  # ptr -> non-null stream
        self.null_streams = [_Stream(self, d, null=True) for d in range(count)]
        self.pools = [_Pool(self, d) for d in range(count)]
        self.peer = set()  # (device, peer): device may read peer's memory
        self.peer_capable = True  # H100/H200 pairs on NVLink
        self.cross_device_ops = []  # (op, array device, current device) that enabled peers
        self.host_syncs = 0
        self.launches = []  # (name expression, device) of every kernel launch
        self.modules = []  # (name expressions, options) of every RawModule compiled
        self.collectives = []  # (NCCL operation, dtype, count) of every group completed
        self.pinned = []  # (bytes, current device) of every alloc_pinned_memory
        self.pinned_copies = 0  # asynchronous copies from pinned host memory (ndarray.set)
        self._local = threading.local()

    # -- per-thread current device and streams
    def local(self):
        local = self._local
        if not hasattr(local, "devices"):
            local.devices, local.streams, local.stream_stack = [0], {}, []
        return local

    def current_device(self) -> int:
        return self.local().devices[-1]

    def current_stream(self, device=None):
        device = self.current_device() if device is None else device
        return self.local().streams.get(device) or self.null_streams[device]

    def all_streams(self, device):
        return [self.null_streams[device]] + [
            s for s in self.streams.values() if s.device_id == device
        ]

    def Event(self, *args, **kwargs):
        return _EmulatedEvent(self, *args, **kwargs)

    # -- rules
    def check_access(self, array, where: str) -> None:
        """CuPy's rule for arrays of another device in an op: peer access is enabled on the
        spot where the pair allows it (with a PerformanceWarning), else ValueError."""
        current = self.current_device()
        if array._dev == current:
            return
        if (current, array._dev) not in self.peer:
            if not self.peer_capable:
                raise ValueError(
                    f"cupy {where}: the array is on device {array._dev} but the current "
                    f"device is {current}; peer access is unavailable between these devices"
                )
            self.peer.add((current, array._dev))
        # Warned on every such op, not only when peer access is first switched on: once a
        # pair has peer access (an earlier test, a transfer), CuPy runs the op silently and
        # its result lands on the current device, which is the bug worth seeing.
        self.cross_device_ops.append((where, array._dev, current))
        warnings.warn(
            f"cupy {where}: the array is on device {array._dev}, the current "
            f"device is {current}; peer access has been activated automatically",
            PerformanceWarning,
            stacklevel=4,
        )

    def check_memory(self, device: int, where: str) -> None:
        """Raw pointers (kernels, cuBLAS, NCCL): no automatic peer access, as in CUDA."""
        current = self.current_device()
        if device != current and (current, device) not in self.peer:
            raise EmulationError(
                f"{where}: memory of device {device} used on device "
                f"{current} without peer access (an illegal address on a "
                "GPU)"
            )

    def before_op(self) -> None:
        self.current_stream().flush()

    # -- memory
    def allocate(self, shape, dtype, device=None):
        device = self.current_device() if device is None else device
        dtype = numpy.dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, numpy.integer)) else tuple(shape)
        nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
        block = self.pools[device].allocate(nbytes, self.current_stream(device))
        memory = numpy.asarray(block)
        return EmulatedArray(self, memory.view(dtype).reshape(shape), device)

    def lookup(self, ptr: int, nbytes: int, device: int, where: str):
        """The uint8 view of ``nbytes`` at device pointer ``ptr``, checked to lie in one live
        block of ``device``."""
        for start, (backing, owner) in self.live.items():
            if start <= ptr and ptr + nbytes <= start + backing.size:
                if owner != device:
                    raise EmulationError(
                        f"{where}: pointer {ptr:#x} is memory of device "
                        f"{owner}, not of device {device}"
                    )
                return backing[ptr - start : ptr - start + nbytes]
        raise EmulationError(
            f"{where}: {nbytes} bytes at {ptr:#x} are not inside one live "
            f"allocation of device {device} (freed, or out of bounds)"
        )

    def wrap(self, result, where, inputs=()):
        """A NumPy result as an emulated array: a view of pool memory stays one (on the
        memory's device), anything else is copied into the current device's pool."""
        if isinstance(result, tuple):
            return tuple(self.wrap(r, where, inputs) for r in result)
        if isinstance(result, list):
            return [self.wrap(r, where, inputs) for r in result]
        if isinstance(result, numpy.generic):
            result = numpy.asarray(result)
        if not isinstance(result, numpy.ndarray):
            return result
        for array in inputs:
            if array._a is result:
                return array
        base = result.base
        while isinstance(base, numpy.ndarray):
            base = base.base
        if isinstance(base, _Block):
            return EmulatedArray(self, result, base.device)
        out = self.allocate(result.shape, result.dtype)
        out._a[...] = result
        return out

    def from_host(self, value, dtype=None):
        host = numpy.asarray(value, dtype)
        out = self.allocate(host.shape, host.dtype)
        self.before_op()
        out._a[...] = host
        return out

    def to_host(self, array):
        with _EmulatedDevice(self, array._dev):
            self.before_op()
        return numpy.array(array._a, copy=True)

    def call(self, fn, name, args, kwargs, allow_host=False):
        args = _unwrap_host(args, self, name, allow_host)
        kwargs = {k: _unwrap_host(v, self, name, allow_host) for k, v in kwargs.items()}
        self.before_op()
        inputs = [a for a in list(args) + list(kwargs.values()) if isinstance(a, EmulatedArray)]
        return self.wrap(fn(*args, **kwargs), name, inputs)

    # -- module functions that differ from NumPy's
    def asarray(self, a, dtype=None, order=None, *, blocking=False):
        if isinstance(a, EmulatedArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        if isinstance(a, (list, tuple)) and any(isinstance(v, EmulatedArray) for v in a):
            return self.call(numpy.asarray, "asarray", (a, dtype), {})
        return self.from_host(a, dtype)

    def array(self, a, dtype=None, copy=True, order="K", ndmin=0):
        if isinstance(a, EmulatedArray):
            return self.call(
                numpy.array, "array", (a,), dict(dtype=dtype, copy=copy, order=order, ndmin=ndmin)
            )
        return self.from_host(numpy.array(a, dtype, copy=True, order=order, ndmin=ndmin))

    def ascontiguousarray(self, a, dtype=None):
        if isinstance(a, EmulatedArray):
            return self.call(numpy.ascontiguousarray, "ascontiguousarray", (a, dtype), {})
        return self.from_host(numpy.ascontiguousarray(a, dtype))

    def empty(self, shape, dtype=float, order="C"):
        return self.allocate(shape, dtype)

    def zeros(self, shape, dtype=float, order="C"):
        out = self.allocate(shape, dtype)
        out._a[...] = 0
        return out

    def asnumpy(self, a, stream=None, order="C", out=None, blocking=True):
        if isinstance(a, EmulatedArray):
            return self.to_host(a)
        return numpy.asarray(a)

    def get_array_module(self, *args):
        return self.module if any(isinstance(a, EmulatedArray) for a in args) else numpy

    def scatter_add(self, target, index, values):
        self.call(numpy.add.at, "cupyx.scatter_add", (target, index, values), {})

    # -- runtime
    def enable_peer_access(self, peer: int) -> None:
        device = self.current_device()
        if peer == device or not 0 <= peer < self.count:
            raise CUDARuntimeError("cudaErrorInvalidDevice")
        if (device, peer) in self.peer:
            raise CUDARuntimeError(
                "cudaErrorPeerAccessAlreadyEnabled: peer access is already enabled"
            )
        self.peer.add((device, peer))

    def stream_of(self, ptr: int, device: int):
        if ptr == 0:
            return (
                self.current_stream(device)
                if device == self.current_device()
                else self.null_streams[device]
            )
        stream = self.streams.get(ptr)
        if stream is None:
            raise EmulationError(f"unknown stream {ptr:#x}")
        return stream

    def memcpy_peer_async(self, dst, dst_device, src, src_device, nbytes, stream_ptr):
        stream = self.stream_of(stream_ptr, self.current_device())
        if stream.device_id != self.current_device():
            raise EmulationError(
                f"memcpyPeerAsync: stream of device {stream.device_id} used "
                f"while device {self.current_device()} is current"
            )
        target = self.lookup(dst, nbytes, dst_device, "memcpyPeerAsync destination")
        source = self.lookup(src, nbytes, src_device, "memcpyPeerAsync source")
        stream.enqueue(lambda: target.__setitem__(..., source))

    def alloc_pinned_memory(self, size: int) -> PinnedMemoryPointer:
        size = int(size)
        if size < 0:
            raise ValueError(f"alloc_pinned_memory: negative size {size}")
        self.pinned.append((size, self.current_device()))
        return PinnedMemoryPointer(size, self.current_device())

    def memory_info(self):
        used = sum(p.used + p.cached for p in [self.pools[self.current_device()]])
        return _DEVICE_MEMORY - used, _DEVICE_MEMORY

    def device_properties(self, device):
        return {
            "name": b"Emulated NVIDIA H200",
            "totalGlobalMem": _DEVICE_MEMORY,
            "multiProcessorCount": 132,
            "maxThreadsPerBlock": MAX_THREADS_PER_BLOCK,
            "maxThreadsDim": MAX_BLOCK,
            "maxGridSize": MAX_GRID,
            "sharedMemPerBlock": MAX_SHARED_DEFAULT,
            "major": 9,
            "minor": 0,
        }

    # -- kernels
    def check_launch(self, name, grid, block, shared_mem) -> None:
        grid, block = harness._dim3(grid), harness._dim3(block)
        for what, dims, limits in (("grid", grid, MAX_GRID), ("block", block, MAX_BLOCK)):
            for axis, value, limit in zip("xyz", dims, limits):
                if not 0 < value <= limit:
                    raise CUDARuntimeError(
                        f"{name}: {what}Dim.{axis}={value} is outside "
                        f"1..{limit} (cudaErrorInvalidConfiguration)"
                    )
        if block[0] * block[1] * block[2] > MAX_THREADS_PER_BLOCK:
            raise CUDARuntimeError(
                f"{name}: {block} is more than {MAX_THREADS_PER_BLOCK} "
                "threads per block (cudaErrorInvalidConfiguration)"
            )
        if not 0 <= shared_mem <= MAX_SHARED_DEFAULT:
            raise CUDARuntimeError(
                f"{name}: {shared_mem} bytes of dynamic shared memory "
                f"exceed the default {MAX_SHARED_DEFAULT}"
            )


class _EmulatedCublas(_Cublas):
    """cuBLAS's gemmEx on the emulated machine: every pointer must be memory of the current
    device (or a peer it may read)."""

    def __init__(self, machine):
        super().__init__()
        self.machine = machine

    def gemmEx(
        self,
        handle,
        transa,
        transb,
        m,
        n,
        k,
        alpha,
        a,
        atype,
        lda,
        b,
        btype,
        ldb,
        beta,
        c,
        ctype,
        ldc,
        compute_type,
        algo,
    ):
        from .reference import GEMM_DATA_TYPES

        machine = self.machine
        size = numpy.dtype(GEMM_DATA_TYPES[atype][1]).itemsize
        for name, ptr, rows, cols, ld, trans in (
            ("A", a, m, k, lda, transa),
            ("B", b, k, n, ldb, transb),
            ("C", c, m, n, ldc, 0),
        ):
            stored_cols = rows if trans else cols
            stored_rows = cols if trans else rows
            span = (ld * (stored_cols - 1) + stored_rows) * size
            owner = next(
                (o for start, (bk, o) in machine.live.items() if start <= ptr < start + bk.size),
                None,
            )
            if owner is None:
                raise EmulationError(f"gemmEx: {name} ({ptr:#x}) is not live device memory")
            machine.check_memory(owner, f"gemmEx {name}")
            machine.lookup(ptr, span, owner, f"gemmEx {name}")
        machine.before_op()
        super().gemmEx(
            handle,
            transa,
            transb,
            m,
            n,
            k,
            alpha,
            a,
            atype,
            lda,
            b,
            btype,
            ldb,
            beta,
            c,
            ctype,
            ldc,
            compute_type,
            algo,
        )


class _NcclCommunicator:
    """One rank of an in-process NCCL clique; collectives run at ``groupEnd``."""

    def __init__(self, machine, clique, rank, device):
        self.machine, self.clique, self.rank, self.device = machine, clique, rank, device

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        machine = self.machine
        if machine.current_device() != self.device:
            raise EmulationError(
                f"NCCL rank {self.rank} (device {self.device}) called while "
                f"device {machine.current_device()} is current"
            )
        if op != 0:
            raise EmulationError(f"the emulated NCCL sums only (op {op})")
        if datatype not in _NCCL_DTYPES:
            raise EmulationError(f"unknown ncclDataType_t {datatype}")
        dtype = _numpy_dtype(_NCCL_DTYPES[datatype])
        nbytes = count * dtype.itemsize
        send = machine.lookup(sendbuf, nbytes, self.device, "ncclAllReduce sendbuff")
        recv = machine.lookup(recvbuf, nbytes, self.device, "ncclAllReduce recvbuff")
        pending = self.clique["pending"]
        pending.append(
            (self, send.view(dtype), recv.view(dtype), machine.stream_of(stream, self.device))
        )
        if not self.clique["group"]:
            _nccl_complete(self.clique)

    def destroy(self):
        pass


def _nccl_complete(clique) -> None:
    pending, clique["pending"] = clique["pending"], []
    if not pending:
        return
    ranks = sorted(p[0].rank for p in pending)
    if ranks != list(range(clique["size"])):
        raise EmulationError(
            f"ncclAllReduce reached by ranks {ranks} of "
            f"{clique['size']}: on a GPU the others wait forever"
        )
    if len({(p[1].size, p[1].dtype) for p in pending}) != 1:
        raise EmulationError("ncclAllReduce: ranks passed different counts or types")
    pending.sort(key=lambda p: p[0].rank)
    pending[0][0].machine.collectives.append(("allReduce", pending[0][1].dtype, pending[0][1].size))
    for _, _, _, stream in pending:
        stream.flush()
    total = pending[0][1].astype(
        numpy.float64 if pending[0][1].dtype.kind == "f" else pending[0][1].dtype
    )
    for _, send, _, _ in pending[1:]:
        total = total + send
    for _, _, recv, _ in pending:
        recv[...] = total.astype(recv.dtype)


def _nccl_module(machine):
    state = {"group": 0, "cliques": []}

    def init_all(devices):
        devices = list(devices)
        clique = {"size": len(devices), "pending": [], "group": 0}
        state["cliques"].append(clique)
        return [_NcclCommunicator(machine, clique, rank, d) for rank, d in enumerate(devices)]

    def group_start():
        state["group"] += 1
        for clique in state["cliques"]:
            clique["group"] = state["group"]

    def group_end():
        state["group"] -= 1
        for clique in state["cliques"]:
            clique["group"] = state["group"]
            if not state["group"]:
                _nccl_complete(clique)

    communicator = type(
        "NcclCommunicator",
        (),
        {
            "initAll": staticmethod(init_all),
            "__init__": lambda self, *a: (_ for _ in ()).throw(
                EmulationError("the emulated NCCL has no multi-process communicators")
            ),
        },
    )
    nccl = _Namespace(
        available=True,
        NcclCommunicator=communicator,
        groupStart=group_start,
        groupEnd=group_end,
        NCCL_SUM=0,
        get_unique_id=lambda: b"emulated",
    )
    for code, name in _NCCL_DTYPES.items():
        setattr(nccl, f"NCCL_{name.upper()}", code)
    return nccl


def emulated(count: int) -> types.ModuleType:
    """A ``cupy`` module for ``count`` emulated GPUs (see the block comment above)."""
    machine = _Machine(count)
    fake = types.ModuleType("cupy")
    fake.__doc__ = "Emulated CuPy (tests/cuda_host/fake_cupy.py)"
    machine.module = fake
    fake.machine = machine
    fake.ndarray = EmulatedArray
    for name in (
        "asarray",
        "array",
        "ascontiguousarray",
        "empty",
        "zeros",
        "asnumpy",
        "get_array_module",
    ):
        setattr(fake, name, getattr(machine, name))
    fake.asanyarray = machine.asarray

    def from_dlpack(x):
        capsule = x.__dlpack__() if hasattr(x, "__dlpack__") else None
        if not isinstance(capsule, _DLPackCapsule):
            raise TypeError(
                f"emulated cupy.from_dlpack: {type(x).__name__} is not an array "
                "of the emulated GPUs"
            )
        array = capsule.array
        return EmulatedArray(machine, array._a, array._dev)  # zero-copy, same memory

    fake.from_dlpack = from_dlpack
    fake.get_default_memory_pool = lambda: _MemoryPool(machine)

    def special(name):
        from scipy import special as host_special  # scikit-learn's dependency, in `test`

        target = getattr(host_special, name)
        return lambda *args, **kwargs: machine.call(
            target, f"cupyx.scipy.special.{name}", args, kwargs
        )

    fake.cupyx = _Namespace(
        scatter_add=machine.scatter_add,
        scipy=_Namespace(special=_Namespace(erf=special("erf"), erfc=special("erfc"))),
    )
    # cupy.linalg: NumPy's on the device's memory, with the emulator's rules (device
    # checks, no host arrays), as every other emulated function.
    fake.linalg = _Namespace(
        **{
            name: (
                lambda target, name: (
                    lambda *args, **kwargs: machine.call(target, f"linalg.{name}", args, kwargs)
                )
            )(getattr(numpy.linalg, name), name)
            for name in (
                "norm",
                "svd",
                "cholesky",
                "qr",
                "inv",
                "det",
                "slogdet",
                "solve",
                "tensorinv",
                "tensorsolve",
                "pinv",
                "eigh",
                "eigvalsh",
                "lstsq",
                "matrix_rank",
                "matrix_power",
            )
        }
    )

    class RawModule:
        def __init__(self, code, options=(), name_expressions=(), **_):
            self.code, self.options = code, tuple(options)
            self.expressions = tuple(name_expressions)
            self.device = machine.current_device()
            self.built = None

        def get_function(self, expression):
            if self.built is None:
                digest = hashlib.sha256(self.code.encode()).hexdigest()[:16]
                path = harness.cache_dir() / f"emulated-{digest}.cu"
                if not path.exists():
                    path.write_text(self.code)
                try:
                    self.built = harness.HostModule(path, self.expressions)
                except RuntimeError as e:
                    raise CompileException(str(e)) from e
                machine.modules.append((self.expressions, self.options))
            kernel = self.built.get_function(expression)
            owner = self.device

            def launch(grid, block, args, shared_mem=0, **_):
                device = machine.current_device()
                if device != owner:
                    raise CUDARuntimeError(
                        f"{expression}: a kernel of device {owner}'s "
                        f"module launched on device {device} "
                        "(cudaErrorInvalidResourceHandle)"
                    )
                machine.check_launch(expression, grid, block, shared_mem)
                host = []
                for i, arg in enumerate(args):
                    if isinstance(arg, numpy.ndarray):
                        raise TypeError(
                            f"{expression} argument {i}: a NumPy (host) array "
                            "passed to a GPU kernel"
                        )
                    if isinstance(arg, EmulatedArray):
                        machine.check_memory(arg._dev, f"{expression} argument {i}")
                        arg = arg._a
                    host.append(arg)
                machine.before_op()
                machine.launches.append((expression, device))
                kernel(grid, block, host, shared_mem, order="shuffled", seed=7)

            return launch

    fake.RawModule = RawModule
    fake.RawKernel = None  # gluonlite uses RawModule only

    def wrapped(name):
        target = getattr(numpy, name)
        if isinstance(target, numpy.ufunc):
            return _Ufunc(machine, target)
        if callable(target) and not isinstance(target, type):
            allow_host = name in _CREATION
            return lambda *args, **kwargs: machine.call(target, name, args, kwargs, allow_host)
        return target  # dtypes, constants

    def module_getattr(name):
        if name in ("random", "fft", "testing"):
            raise AttributeError(f"the emulated cupy has no cupy.{name}")
        value = wrapped(name)
        setattr(fake, name, value)
        return value

    fake.__getattr__ = module_getattr

    runtime = _Namespace(
        CUDARuntimeError=CUDARuntimeError,
        getDeviceCount=lambda: count,
        getDevice=machine.current_device,
        setDevice=lambda d: _EmulatedDevice(machine, d).use(),
        deviceCanAccessPeer=lambda d, p: int(d != p and 0 <= d < count and 0 <= p < count),
        deviceEnablePeerAccess=lambda peer, flags=0: machine.enable_peer_access(peer),
        memcpyPeerAsync=machine.memcpy_peer_async,
        memGetInfo=machine.memory_info,
        getDeviceProperties=machine.device_properties,
        deviceSynchronize=lambda: _EmulatedDevice(machine).synchronize(),
    )
    stream_type = type(
        "Stream",
        (_Stream,),
        {
            "__init__": lambda self, null=False, non_blocking=False, ptds=False, priority=0: (
                _Stream.__init__(self, machine, machine.current_device(), null)
            )
        },
    )
    fake.cuda = _Namespace(
        Device=lambda device=None: _EmulatedDevice(machine, device),
        Event=machine.Event,
        Stream=stream_type,
        runtime=runtime,
        get_current_stream=lambda device=None: machine.current_stream(
            None if device is None else int(getattr(device, "id", device))
        ),
        get_elapsed_time=lambda start, stop: (stop.at - start.at) * 1e3,
        cublas=_EmulatedCublas(machine),
        get_cublas_handle=lambda: 0,
        compiler=_Namespace(CompileException=CompileException),
        nccl=_nccl_module(machine),
        is_available=lambda: count > 0,
        alloc_pinned_memory=machine.alloc_pinned_memory,
        PinnedMemoryPointer=PinnedMemoryPointer,
    )
    return fake
