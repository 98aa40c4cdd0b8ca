"""``mx.gluon.data``: datasets, samplers, batchify functions and the ``DataLoader``.

>>> import numpy
>>> import gluonlite as mx
>>> loader = mx.gluon.data.DataLoader(mx.gluon.data.ArrayDataset(numpy.ones((6, 3))),
...                                   batch_size=4, last_batch='discard')
>>> [batch.shape for batch in loader]
[(4, 3)]
"""

from . import batchify, vision
from .dataloader import DataLoader
from .dataset import ArrayDataset, Dataset, RecordFileDataset, SimpleDataset
from .sampler import (
    BatchSampler,
    FilterSampler,
    IntervalSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

__all__ = [
    "Dataset",
    "SimpleDataset",
    "ArrayDataset",
    "RecordFileDataset",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "FilterSampler",
    "BatchSampler",
    "IntervalSampler",
    "DataLoader",
    "batchify",
    "vision",
]
