"""Run gluonlite's CUDA kernels on the CPU: g++ + host_shim.h + ctypes, on NumPy arrays.

``HostModule(source, expressions)`` compiles an unchanged ``kernels/*.cu`` file (or any
header-free CUDA file) into a shared library, cached by a hash of the shim, the source, the
flags and the compiler version. Its kernels are called like ``cupy.RawKernel``:
``kernel(grid, block, args)``, after every argument has been checked against the kernel's
C++ parameter types (an ``int64`` where the kernel takes ``int``, or a float64 array for a
``float*``, would silently give garbage on a GPU).

``HostRuntime`` is the runtime that ``gluonlite._kernels`` launches through (see that
module's docstring): it allocates outputs NaN-poisoned inside guard zones, so that unwritten
elements and out-of-bounds writes show up, and runs every launch in a chosen thread order.

Environment: ``GLUONLITE_CUDA_HOST_CACHE`` (cache folder, default in the temp dir),
``GLUONLITE_CUDA_HOST_SANITIZE=address`` (build with AddressSanitizer; the process must
then have the ASan runtime preloaded, see ``asan_environment``), ``CXX``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy
import pytest

SHIM = Path(__file__).resolve().with_name("host_shim.h")
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
ORDERS = {"forward": 0, "reverse": 1, "shuffled": 2}
SANITIZE_ENV = "GLUONLITE_CUDA_HOST_SANITIZE"
CACHE_ENV = "GLUONLITE_CUDA_HOST_CACHE"

# C++ scalar parameter types (as GCC spells them) and the NumPy scalar type that must be
# passed for each; Python ints and floats are refused because their width is ambiguous.
_SCALARS = {
    "int": numpy.int32,
    "unsigned int": numpy.uint32,
    "long long int": numpy.int64,
    "long long unsigned int": numpy.uint64,
    "float": numpy.float32,
    "double": numpy.float64,
}
# Pointee types and the array dtypes that may be passed for them (gl_bf16 also accepts the
# raw uint16 bits, since NumPy has no bfloat16 without ml_dtypes).
_POINTEES = {
    "float": ("float32",),
    "double": ("float64",),
    "long long int": ("int64",),
    "int": ("int32",),
    "unsigned int": ("uint32",),
    "short unsigned int": ("uint16",),
    "unsigned char": ("uint8",),
    "long long unsigned int": ("uint64",),
    "gl_f16": ("float16",),
    "gl_bf16": ("bfloat16", "uint16"),
    "uint4": ("complex128",),
}
_ALIGNMENT = {"uint4": 16}


def cache_dir() -> Path:
    path = Path(
        os.environ.get(CACHE_ENV)
        or Path(tempfile.gettempdir()) / f"gluonlite-cuda-host-{os.getuid()}"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def sanitizer() -> str | None:
    value = os.environ.get(SANITIZE_ENV) or None
    if value not in (None, "address"):
        raise ValueError(f"{SANITIZE_ENV}={value!r}; only 'address' is supported")
    return value


def compiler() -> str:
    return os.environ.get("CXX", "g++")


@functools.lru_cache(maxsize=None)
def compiler_version(cxx: str) -> str:
    return subprocess.run([cxx, "--version"], check=True, capture_output=True, text=True).stdout


def _asan_runtime() -> str | None:
    """Path of the compiler's ASan runtime, or None (g++ echoes the bare name then)."""
    lib = subprocess.run(
        [compiler(), "-print-file-name=libasan.so"], capture_output=True, text=True
    ).stdout.strip()
    return lib if os.path.isabs(lib) else None


def toolchain_problem(sanitize: str | None = None) -> str | None:
    """Why the host harness cannot build here (no C++ compiler, no ASan runtime), or None."""
    if shutil.which(compiler()) is None:
        return f"C++ compiler {compiler()!r} not found"
    if sanitize == "address" and _asan_runtime() is None:
        return f"{compiler()} has no AddressSanitizer runtime (libasan.so)"
    return None


def require_toolchain(sanitize: str | None = None) -> None:
    """Skip the calling test (module) without the toolchain; under CI (env ``CI``) fail."""
    problem = toolchain_problem(sanitize)
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}, but CI is set: the CPU kernel tests must run in CI", pytrace=False)
    pytest.skip(f"{problem}: CPU kernel tests skipped", allow_module_level=True)


def asan_environment() -> dict[str, str]:
    """Environment for a Python subprocess that loads ASan-built kernels: the ASan runtime
    must come first in the process, and Python's own allocations are not ours to report."""
    lib = _asan_runtime()
    if lib is None:
        raise RuntimeError(f"{compiler()} has no AddressSanitizer runtime (libasan.so)")
    env = dict(os.environ)
    env.update(
        {
            SANITIZE_ENV: "address",
            "LD_PRELOAD": lib,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",
        }
    )
    return env


def run_under_asan(tmp_path: Path, test_files: list[str], keyword: str | None = None) -> None:
    """Run ``test_files`` (paths under tests/) in a child pytest whose kernels are built with
    -fsanitize=address and that has the ASan runtime preloaded (it must be first in the
    process); fail with ASan's report if it finds an error. ``keyword`` is a ``-k`` filter.
    Each sanitizer test runs one group of files, so pytest-xdist spreads the groups (each
    builds its own libraries, serially) over its workers."""
    require_toolchain("address")
    tests_dir = Path(__file__).resolve().parents[1]
    env = asan_environment()
    # pytest captures fd 2 and ASan exits the process at once, so its report goes to a file.
    env["ASAN_OPTIONS"] += f":log_path={tmp_path / 'asan'}"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tests_dir), str(tests_dir.parent), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
        + (["-k", keyword] if keyword else [])
        + [str(tests_dir / f) for f in test_files],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tests_dir.parent,
    )
    # The log also holds ASan's standing warning about swapcontext (the shim annotates its
    # fiber switches); only an ERROR is a finding.
    reports = "".join(p.read_text() for p in tmp_path.glob("asan*"))
    tail = (
        reports[:6000]
        if "ERROR: AddressSanitizer" in reports
        else (proc.stdout + proc.stderr)[-6000:]
    )
    assert proc.returncode == 0 and "ERROR: AddressSanitizer" not in reports, tail
    assert " passed" in proc.stdout, tail


def _flags(sanitize: str | None) -> list[str]:
    flags = [
        "-std=c++17",
        "-x",
        "c++",
        "-shared",
        "-fPIC",
        "-pthread",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-unused-parameter",
        "-Wno-unknown-pragmas",  # CUDA's #pragma unroll means nothing to g++
        # Each library keeps its own inline/template thread_locals (threadIdx, __shared__
        # arrays): without these, GCC makes them process-wide unique symbols and a second
        # library would silently use the first one's.
        "-fvisibility=hidden",
        "-fno-gnu-unique",
    ]
    if sanitize == "address":
        # Line tables (-g1, not -g's full debug information, which doubles the build time)
        # for the sanitizer's reports: the file and line of a bad access.
        return flags + ["-g1", "-O1", "-fsanitize=address", "-fno-omit-frame-pointer"]
    # -O1 without -g: half of -O2 -g's compile time (a fresh machine builds every library
    # of the suite), and the test inputs are small enough that run time hardly changes.
    return flags + ["-O1"]


def _translation_unit(source: Path, expressions) -> str:
    entries = ",\n".join(f'  GL_SHIM_EXPORT("{e}", {e})' for e in expressions)
    return (
        f'#include "{SHIM}"\n#include "{source}"\n'
        f"namespace gl_shim {{\nconst Entry kTable[] = {{\n{entries}\n}};\n"
        f"const int kTableSize = {len(expressions)};\n}}\n"
    )


def build(source: Path, expressions, sanitize: str | None = None) -> Path:
    """The shared library for ``source`` exporting ``expressions``, built once per content."""
    source = Path(source).resolve()
    unit = _translation_unit(source, expressions)
    flags = _flags(sanitize)
    # Headers the source includes from its folder (kernels/gl_convert.cuh) are part of it.
    headers = [
        (source.parent / name).read_text()
        for name in re.findall(r'^#include "([\w.]+)"', source.read_text(), re.MULTILINE)
        if (source.parent / name).exists()
    ]
    key = hashlib.sha256(
        "\0".join(
            [
                SHIM.read_text(),
                source.read_text(),
                *headers,
                unit,
                " ".join(flags),
                compiler_version(compiler()),
            ]
        ).encode()
    ).hexdigest()[:24]
    out = cache_dir() / f"{source.stem}-{key}.so"
    if out.exists():
        return out
    tu = cache_dir() / f"{source.stem}-{key}.{os.getpid()}.cpp"
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    tu.write_text(unit)
    try:
        proc = subprocess.run(
            [compiler(), *flags, "-o", str(tmp), str(tu)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"host build of {source.name} failed ({' '.join(flags)}):\n{proc.stderr}"
            )
        os.replace(tmp, out)  # atomic: a concurrent builder never loads a half-written file
    finally:
        tu.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


class LaunchError(RuntimeError):
    """The shim refused a launch or found a barrier divergence or deadlock."""


class HostKernel:
    """One kernel of a ``HostModule``; call as ``kernel(grid, block, args)``."""

    def __init__(self, module: "HostModule", index: int, name: str, signature: list[str]):
        self.module, self.index, self.name, self.signature = module, index, name, signature

    def _convert(self, i: int, ctype: str, arg):
        where = f"{self.name} argument {i} ({ctype})"
        if ctype.endswith("*"):
            pointee = ctype[:-1].strip()
            const = pointee.startswith("const ")
            pointee = pointee.removeprefix("const ").strip()
            if not isinstance(arg, numpy.ndarray):
                raise TypeError(f"{where}: expected a NumPy array, got {type(arg).__name__}")
            allowed = _POINTEES.get(pointee)
            if allowed is None:
                raise TypeError(f"{where}: the harness does not know pointee type {pointee!r}")
            if arg.dtype.name not in allowed:
                raise TypeError(
                    f"{where}: expected an array of {' or '.join(allowed)}, got {arg.dtype}"
                )
            if not arg.flags.c_contiguous:
                raise TypeError(f"{where}: the array is not C-contiguous")
            if not const and not arg.flags.writeable:
                raise TypeError(f"{where}: the kernel writes here but the array is read-only")
            address = arg.ctypes.data
            if address % _ALIGNMENT.get(pointee, arg.itemsize):
                raise TypeError(f"{where}: address {address:#x} is misaligned")
            return ctypes.c_void_p(address)
        expected = _SCALARS.get(ctype)
        if expected is None:
            raise TypeError(f"{where}: the harness does not know scalar type {ctype!r}")
        if type(arg) is not expected:
            raise TypeError(
                f"{where}: expected numpy.{expected.__name__}, got {type(arg).__name__} {arg!r}"
            )
        return numpy.ctypeslib.as_ctypes_type(expected)(arg.item())

    def __call__(
        self, grid, block, args, shared_mem: int = 0, *, order: str = "forward", seed: int = 0
    ) -> None:
        grid, block = _dim3(grid), _dim3(block)
        if len(args) != len(self.signature):
            raise TypeError(
                f"{self.name} takes {len(self.signature)} arguments "
                f"({', '.join(self.signature)}), got {len(args)}"
            )
        values = [self._convert(i, t, a) for i, (t, a) in enumerate(zip(self.signature, args))]
        pointers = (ctypes.c_void_p * max(1, len(values)))(
            *[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values]
        )
        lib = self.module.lib
        rc = lib.gl_launch(self.index, *grid, *block, shared_mem, pointers, ORDERS[order], seed)
        if rc != 0:
            raise LaunchError(f"{self.name}: {lib.gl_last_error().decode()}")


def _dim3(value) -> tuple[int, int, int]:
    value = (value,) if isinstance(value, int) else tuple(value)
    return tuple(int(v) for v in value + (1,) * (3 - len(value)))


class HostModule:
    """``kernels/<source>`` (or a path) compiled for the CPU, kernels by name expression."""

    def __init__(self, source, expressions, sanitize: str | None = None):
        path = Path(source)
        if not path.is_absolute() and not path.exists():
            path = KERNELS_DIR / path
        self.path = build(path, tuple(expressions), sanitize)
        lib = ctypes.CDLL(str(self.path))
        lib.gl_kernel_name.restype = ctypes.c_char_p
        lib.gl_kernel_signature.restype = ctypes.c_char_p
        lib.gl_last_error.restype = ctypes.c_char_p
        lib.gl_launch.restype = ctypes.c_int
        lib.gl_launch.argtypes = (
            [ctypes.c_int]
            + [ctypes.c_uint] * 6
            + [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int, ctypes.c_ulonglong]
        )
        self.lib = lib
        self.functions = {}
        for i in range(lib.gl_kernel_count()):
            name = lib.gl_kernel_name(i).decode()
            signature = lib.gl_kernel_signature(i).decode()
            self.functions[name] = HostKernel(
                self, i, name, signature.split(";") if signature else []
            )

    def get_function(self, name: str) -> HostKernel:
        return self.functions[name]


@functools.lru_cache(maxsize=None)
def library_module(source: str, sanitize: str | None) -> HostModule:
    """One module per kernels/ source holding every instantiation gluonlite launches."""
    from gluonlite import _kernels

    expressions = []
    for _, names in _kernels.instantiations()[source]:
        expressions += [e for e in names if e not in expressions]
    return HostModule(KERNELS_DIR / source, expressions, sanitize)


_GUARD = 256  # bytes of poison either side of every output, also its alignment


def _poison_byte(dtype) -> int:
    # 0xFF bytes are NaN in float16, bfloat16 (raw uint16 bits here), float32 and float64;
    # other integer outputs get a pattern that is neither -1 (retain's "absent") nor a
    # plausible row number.
    dtype = numpy.dtype(dtype)
    return 0x5A if dtype.kind in "iu" and dtype.name != "uint16" else 0xFF


class HostRuntime:
    """The ``gluonlite._kernels`` runtime on NumPy arrays and the CPU-compiled kernels."""

    xp = numpy

    def __init__(self, order: str = "forward", seed: int = 0, sanitize: str | None = None):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {tuple(ORDERS)}, got {order!r}")
        self.order, self.seed, self.sanitize = order, seed, sanitize
        self.launches = []  # expressions launched, in order
        self._outputs = []

    def empty(self, shape, dtype):
        dtype = numpy.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
        raw = numpy.empty(nbytes + 3 * _GUARD, numpy.uint8)
        start = -raw.ctypes.data % _GUARD
        zone = raw[start : start + nbytes + 2 * _GUARD]
        zone[:] = _poison_byte(dtype)
        self._outputs.append((zone, zone[0]))
        return zone[_GUARD : _GUARD + nbytes].view(dtype).reshape(shape)

    @staticmethod
    def ptr(array) -> int:
        return array.ctypes.data

    def gemm(self, data_type, transa, transb, m, n, k, a, lda, b, ldb, c, ldc, accumulate) -> None:
        """cuBLAS's GemmEx, emulated in NumPy (reference.gemm_ex) on the arrays' bits."""
        from .reference import GEMM_DATA_TYPES, gemm_ex

        bits_type = GEMM_DATA_TYPES[data_type][1]
        for array in (a, b, c):
            if array.itemsize != numpy.dtype(bits_type).itemsize or not array.flags.c_contiguous:
                raise TypeError(
                    f"gemm takes C-contiguous arrays of type {data_type}, got {array.dtype}"
                )
        gemm_ex(
            data_type,
            transa,
            transb,
            m,
            n,
            k,
            a.reshape(-1).view(bits_type),
            lda,
            b.reshape(-1).view(bits_type),
            ldb,
            c.reshape(-1).view(bits_type),
            ldc,
            1.0 if accumulate else 0.0,
        )

    def kernel(self, source: str, type_key: str, expression: str):
        from gluonlite import _kernels

        # One library holds every type here, but on a GPU each (source, type) is a module of
        # its own: asking the wrong one for a kernel must fail here as it would there.
        if expression not in _kernels.name_expressions(source, type_key):
            raise KeyError(f"{expression} is not in the {source} module for {type_key}")
        fn = library_module(source, self.sanitize).get_function(expression)

        def launch(grid, block, args, shared_mem=0):
            self.launches.append(expression)
            fn(grid, block, args, shared_mem, order=self.order, seed=self.seed)

        return launch

    def check_guards(self) -> None:
        """Raise if any output's guard zone was written (an out-of-bounds store)."""
        for zone, poison in self._outputs:
            for name, guard in (("before", zone[:_GUARD]), ("after", zone[-_GUARD:])):
                bad = numpy.flatnonzero(guard != poison)
                if bad.size:
                    raise AssertionError(
                        f"guard zone {name} an output was overwritten at bytes {bad[:8].tolist()}"
                    )
