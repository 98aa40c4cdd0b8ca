import contextvars
import threading

import pytest

import gluonlite as mx
from gluonlite import _backend


def test_device_value_semantics():
    assert mx.cpu(1) == mx.Device("cpu", 1)
    assert hash(mx.gpu(2)) == hash(mx.Device("gpu", 2))
    assert mx.cpu(0) != mx.cpu(1) and mx.cpu(0) != mx.gpu(0)
    assert repr(mx.cpu()) == "cpu(0)" and repr(mx.gpu(1)) == "gpu(1)"
    assert (mx.gpu(3).device_type, mx.gpu(3).device_id) == ("gpu", 3)
    assert len({mx.cpu(0), mx.cpu(0), mx.cpu(1)}) == 2


@pytest.mark.parametrize(
    "args, match", [(("tpu", 0), "Device type"), (("cpu", -1), "id"), (("cpu", 1.5), "id")]
)
def test_device_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        mx.Device(*args)


def test_current_device_nests_and_restores():
    assert mx.device.current_device() == mx.cpu(0)
    with mx.cpu(1):
        assert mx.device.current_device() == mx.cpu(1)
        with mx.cpu(2):
            assert mx.device.current_device() == mx.cpu(2)
            assert mx.np.zeros(2).device == mx.cpu(2)
        assert mx.device.current_device() == mx.cpu(1)
    assert mx.device.current_device() == mx.cpu(0)


def test_current_device_is_per_thread():
    seen = []
    with mx.cpu(3):
        t = threading.Thread(target=lambda: seen.append(mx.device.current_device()))
        t.start()
        t.join()
        assert mx.device.current_device() == mx.cpu(3)
    assert seen == [mx.cpu(0)]
    ctx = contextvars.copy_context()
    assert ctx.run(mx.device.current_device) == mx.cpu(0)


def test_num_gpus_never_raises():
    n = mx.num_gpus()
    assert isinstance(n, int) and n >= 0


def test_unavailable_gpu_is_a_clear_error():
    n = mx.num_gpus()
    bad = mx.gpu(n + 3)
    with pytest.raises(
        RuntimeError,
        match=rf"gpu\({n + 3}\) requested, but {n} GPUs? (is|are) "
        r"visible|CuPy is not installed",
    ):
        mx.np.zeros((2,), device=bad)


def test_cupy_installed_without_gpu_skips_cleanly():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed in this environment")
    if mx.num_gpus():
        pytest.skip("a GPU is visible; this checks the CuPy-without-GPU case")
    assert cupy is not None
    with pytest.raises(RuntimeError, match=r"gpu\(0\) requested, but 0 GPUs are visible"):
        _backend.xp(mx.gpu(0))


def test_as_devices_validates():
    assert mx.device.as_devices(None) == [mx.cpu(0)]
    assert mx.device.as_devices(mx.cpu(2)) == [mx.cpu(2)]
    with pytest.raises(ValueError, match="listed twice"):
        mx.device.as_devices([mx.cpu(0), mx.cpu(0)])
    with pytest.raises(ValueError, match="at least one"):
        mx.device.as_devices([])
    with pytest.raises(TypeError, match="Expected a Device"):
        mx.device.as_device("gpu0")
