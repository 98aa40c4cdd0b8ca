"""vision.datasets read tiny files written in the standard formats; vision.transforms
against NumPy."""

from __future__ import annotations

import gzip
import struct

import numpy
import pytest

import gluonlite as mx
from gluonlite.gluon.data import DataLoader
from gluonlite.gluon.data.vision import datasets, transforms

RNG = numpy.random.default_rng(5)


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(numpy.uint8).tobytes())


@pytest.mark.parametrize("cls", [datasets.MNIST, datasets.FashionMNIST])
def test_mnist_reads_idx_files(cls, tmp_path):
    images = RNG.integers(0, 256, (5, 28, 28), dtype=numpy.uint8)
    labels = numpy.array([3, 1, 4, 1, 5], dtype=numpy.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    ds = cls(root=str(tmp_path), train=False)
    assert len(ds) == 5
    image, label = ds[2]
    assert isinstance(image, mx.np.ndarray) and image.shape == (28, 28, 1)
    assert image.dtype == numpy.uint8 and label == 4 and label.dtype == numpy.int32
    numpy.testing.assert_array_equal(image.asnumpy()[..., 0], images[2])
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz") as info:
        cls(root=str(tmp_path), train=True)
    assert str(tmp_path) in str(info.value) and "download" in str(info.value)
    # Through transform_first and a DataLoader, as a training script uses it.
    loader = DataLoader(ds.transform_first(transforms.ToTensor()), batch_size=2)
    x, y = next(iter(loader))
    assert x.shape == (2, 1, 28, 28) and x.dtype == numpy.float32
    assert y.asnumpy().tolist() == [3, 1]


def _cifar_records(n, label_bytes):
    labels = RNG.integers(0, 10, (n, label_bytes), dtype=numpy.uint8)
    images = RNG.integers(0, 256, (n, 3, 32, 32), dtype=numpy.uint8)
    raw = numpy.concatenate([labels, images.reshape(n, -1)], axis=1)
    return raw, labels, images


def test_cifar10_and_cifar100(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    expected = []
    for i in range(1, 6):
        raw, labels, images = _cifar_records(2, 1)
        raw.tofile(folder / f"data_batch_{i}.bin")
        expected.append((labels[:, 0], images))
    ds = datasets.CIFAR10(root=str(tmp_path))
    assert len(ds) == 10
    image, label = ds[3]
    assert image.shape == (32, 32, 3) and label == expected[1][0][1]
    numpy.testing.assert_array_equal(image.asnumpy(), expected[1][1][1].transpose(1, 2, 0))
    with pytest.raises(FileNotFoundError, match="test_batch.bin"):
        datasets.CIFAR10(root=str(tmp_path), train=False)

    raw, labels, _ = _cifar_records(3, 2)
    raw.tofile(tmp_path / "test.bin")
    coarse = datasets.CIFAR100(root=str(tmp_path), train=False)
    fine = datasets.CIFAR100(root=str(tmp_path), train=False, fine_label=True)
    assert [int(coarse[i][1]) for i in range(3)] == labels[:, 0].tolist()
    assert [int(fine[i][1]) for i in range(3)] == labels[:, 1].tolist()


def test_image_folder(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (4, 3), color).save(tmp_path / cls / "a.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = datasets.ImageFolderDataset(str(tmp_path))
    assert ds.synsets == ["cat", "dog"] and len(ds) == 2
    image, label = ds[1]
    assert image.shape == (3, 4, 3) and label == 1
    assert image.asnumpy()[0, 0].tolist() == [0, 0, 255]
    gray, _ = datasets.ImageFolderDataset(str(tmp_path), flag=0)[0]
    assert gray.shape == (3, 4, 1)


def test_transforms_against_numpy(device):
    img = RNG.integers(0, 256, (4, 6, 3), dtype=numpy.uint8)
    x = mx.np.array(img, device=device)
    t = transforms.ToTensor()(x)
    assert t.device == device and t.dtype == numpy.float32
    numpy.testing.assert_allclose(t.asnumpy(), img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    n = transforms.Normalize(mean, std)(t).asnumpy()
    numpy.testing.assert_allclose(
        n,
        (img.transpose(2, 0, 1) / 255.0 - numpy.array(mean)[:, None, None])
        / numpy.array(std)[:, None, None],
        rtol=1e-5,
    )
    composed = transforms.Compose([transforms.Cast("float64"), transforms.CenterCrop((2, 2))])
    c = composed(x)
    assert c.dtype == numpy.float64 and c.shape == (2, 2, 3)
    numpy.testing.assert_array_equal(c.asnumpy(), img[1:3, 2:4])
    flipped = transforms.RandomFlipLeftRight(p=1.0)(x).asnumpy()
    numpy.testing.assert_array_equal(flipped, img[:, ::-1])
    assert transforms.RandomFlipLeftRight(p=0.0)(x).asnumpy().tolist() == img.tolist()
    # Resize: exact halving/doubling cases with known answers.
    small = transforms.Resize((3, 2), interpolation=0)(x).asnumpy()
    assert small.shape == (2, 3, 3)
    numpy.testing.assert_array_equal(small, img[1::2, 1::2])
    ramp = numpy.arange(4, dtype=numpy.float32).reshape(1, 4, 1)
    up = transforms.Resize((8, 1))(mx.np.array(ramp, device=device)).asnumpy()[0, :, 0]
    numpy.testing.assert_allclose(up, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])
    short = transforms.Resize(2, keep_ratio=True)(x)
    assert short.shape == (2, 3, 3)
    with pytest.raises(ValueError, match="CenterCrop"):
        transforms.CenterCrop(10)(x)
    with pytest.raises(TypeError, match="Resize"):
        transforms.Resize("big")
    with pytest.raises(ValueError, match="Normalize"):
        transforms.Normalize((0.1, 0.2))(t)
