"""The host shim's own guarantees, on the probe kernels of shim_probe.cu: barriers, thread
orders, atomics, argument checks and launch limits. The kernel tests rely on all of them."""

from pathlib import Path

import numpy as np
import pytest

from . import harness

harness.require_toolchain()

PROBE = Path(__file__).with_name("shim_probe.cu")


@pytest.fixture(scope="module")
def probe():
    return harness.HostModule(
        PROBE,
        [
            "probe_shift",
            "probe_divergent",
            "probe_early_exit",
            "probe_atomics",
            "probe_arguments",
            "probe_unwritten_shared",
        ],
        harness.sanitizer(),
    )


@pytest.mark.parametrize("order", harness.ORDERS)
def test_barrier_makes_shared_memory_exchange_correct(probe, order):
    data = np.arange(1, 129, dtype=np.float32)
    out = np.full(128, np.nan, np.float32)
    probe.get_function("probe_shift")(2, 64, (data, out, np.int32(1)), order=order, seed=5)
    expected = np.concatenate([[0], data[:63], [0], data[64:127]]).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


def test_missing_barrier_is_caught_by_some_thread_order(probe):
    # Forward order happens to run the writer of slot t-1 before its reader; reverse order
    # does not, and a fresh block sees poisoned shared memory rather than an earlier launch's.
    data = np.arange(1, 129, dtype=np.float32)
    results = {}
    for order in ("forward", "reverse"):
        out = np.full(128, np.nan, np.float32)
        probe.get_function("probe_shift")(2, 64, (data, out, np.int32(0)), order=order)
        results[order] = out
    expected = np.concatenate([[0], data[:63], [0], data[64:127]]).astype(np.float32)
    np.testing.assert_array_equal(results["forward"], expected)
    assert not np.array_equal(results["reverse"], expected)


def test_unwritten_shared_memory_reads_as_nan_in_every_block(probe):
    out = np.zeros(64, np.float32)
    probe.get_function("probe_unwritten_shared")(2, 32, (out,))
    assert np.all(out[0::2] == 1.0) and np.isnan(out[1::2]).all()


def test_barrier_divergence_is_reported(probe):
    out = np.zeros(32, np.int32)
    with pytest.raises(
        harness.LaunchError,
        match="barrier divergence.*shim_probe.cu:16, thread \\(16,0,0\\) at .*shim_probe.cu:18",
    ):
        probe.get_function("probe_divergent")(1, 32, (np.int32(16), out))


def test_uniform_barrier_at_one_site_passes(probe):
    out = np.zeros(32, np.int32)
    probe.get_function("probe_divergent")(1, 32, (np.int32(32), out), order="shuffled")
    assert out.tolist() == [1] * 32


def test_thread_exiting_while_others_wait_is_a_deadlock(probe):
    out = np.zeros(32, np.int32)
    with pytest.raises(harness.LaunchError, match="deadlock.*thread \\(0,0,0\\) has already"):
        probe.get_function("probe_early_exit")(1, 32, (out,), order="reverse")


@pytest.mark.parametrize("order", harness.ORDERS)
def test_atomics(probe, order):
    count, total = np.zeros(1, np.int32), np.zeros(1, np.float32)
    wide, highest, swapped = np.zeros(1, np.uint64), np.full(1, -1, np.int32), np.zeros(1, np.int32)
    last = np.full(1, -1, np.int32)
    probe.get_function("probe_atomics")(
        3, (8, 4), (count, total, wide, highest, swapped, last), order=order, seed=11
    )
    assert count[0] == 96 and total[0] == 48.0 and int(wide[0]) == 96 << 33
    assert highest[0] == 95
    assert 1 <= swapped[0] <= 96 and 0 <= last[0] < 96


def test_arguments_arrive_with_their_c_types(probe):
    out = np.full(6, np.nan)
    source = np.array([2.5], np.float32)
    probe.get_function("probe_arguments")(
        (1, 7),
        3,
        (np.int32(-7), np.int64(2**40 + 3), np.float32(1.25), np.float64(1e300), source, out),
    )
    assert out.tolist() == [-7, 2**40 + 3, 1.25, 1e300, 2.5, 307]


@pytest.mark.parametrize(
    "index, bad, message",
    [
        (0, np.int64(1), "expected numpy.int32, got int64"),
        (0, 1, "expected numpy.int32, got int"),
        (2, np.float64(1.0), "expected numpy.float32"),
        (4, np.zeros(1, np.float64), "expected an array of float32, got float64"),
        (4, np.zeros((2, 2), np.float32).T, "not C-contiguous"),
        (5, np.zeros(6, np.float32), "expected an array of float64"),
    ],
)
def test_arguments_are_checked_against_the_signature(probe, index, bad, message):
    args = [
        np.int32(0),
        np.int64(0),
        np.float32(0),
        np.float64(0),
        np.zeros(1, np.float32),
        np.zeros(6),
    ]
    args[index] = bad
    with pytest.raises(TypeError, match=message):
        probe.get_function("probe_arguments")(1, 1, tuple(args))


def test_read_only_output_and_misaligned_pointer_are_refused(probe):
    kernel = probe.get_function("probe_arguments")
    frozen = np.zeros(6)
    frozen.flags.writeable = False
    with pytest.raises(TypeError, match="read-only"):
        kernel(
            1,
            1,
            (
                np.int32(0),
                np.int64(0),
                np.float32(0),
                np.float64(0),
                np.zeros(1, np.float32),
                frozen,
            ),
        )
    raw = np.zeros(7 * 8 + 1, np.uint8)
    start = -raw.ctypes.data % 8 + 1  # one byte past an 8-byte boundary
    shifted = raw[start : start + 48].view(np.float64)
    with pytest.raises(TypeError, match="misaligned"):
        kernel(
            1,
            1,
            (
                np.int32(0),
                np.int64(0),
                np.float32(0),
                np.float64(0),
                np.zeros(1, np.float32),
                shifted,
            ),
        )


def test_argument_count_is_checked(probe):
    with pytest.raises(TypeError, match="takes 1 arguments \\(int\\*\\), got 0"):
        probe.get_function("probe_early_exit")(1, 32, ())


@pytest.mark.parametrize(
    "grid, block, shared, message",
    [
        (0, 32, 0, "zero-sized"),
        (1, 1025, 0, "1025 threads per block"),
        (1, (1, 1, 65), 0, "threads per block"),
        ((1, 65536), 1, 0, "grid dimensions"),
        (1, 32, 1024, "dynamic shared memory"),
    ],
)
def test_launch_limits(probe, grid, block, shared, message):
    out = np.zeros(1024, np.int32)
    with pytest.raises(harness.LaunchError, match=message):
        probe.get_function("probe_early_exit")(grid, block, (out,), shared)
