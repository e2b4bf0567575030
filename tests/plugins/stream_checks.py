"""Checks the plugins' streaming data sets share: worker processes and errors met in them
(imported by test_image_stream.py and test_audio_stream.py)."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader


def same_batches(ds, batch_size: int) -> int:
    """Read ``ds`` in order with no worker process and with two: the same batches (and ``ds``
    pickles, as a worker started by spawn needs). Returns the number of batches."""
    assert set(pickle.loads(pickle.dumps(ds))[0]) == set(ds[0])
    alone, workers = (list(DataLoader(ds, batch_size=batch_size, num_workers=w)) for w in (0, 2))
    assert len(alone) == len(workers)
    for a, b in zip(alone, workers):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return len(alone)


def stop_message(ds, broken, error: type[Exception], workers: int) -> str:
    """Overwrite the file ``broken`` of ``ds`` with garbage: the message of the ``error`` that
    reading ``ds`` (``workers`` processes) then stops with: one line, with no traceback of the
    worker that met it."""
    broken.write_bytes(b"garbage")
    with pytest.raises(error) as info:
        list(DataLoader(ds, batch_size=4, num_workers=workers))
    text = str(info.value)
    assert "Traceback" not in text and "\n" not in text
    return text
