"""Data files are never unpickled with an unrestricted loader (issue 14, point 4).

A CIFAR batch is a pickle: loaded by plain ``pickle.load`` (as torchvision does), a tampered file
runs whatever it names. Each test writes a fake root in the real format with one file replaced
by such a payload (``tests/fakedata.py``) and checks that the marker file the payload would
create never appears, whatever ``verify_checksums`` says, and that the error names the file, the
refused global and the fix (re-download), never "turn the check off".
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets
from fakedata import _dump_py2, write_fake_cifar10, write_malicious_cifar

from sparselab.config import DataHparams
from sparselab.config.roots import DatasetRootError
from sparselab.data import build_source


def build(root: Path, source: str = "cifar10", verify: bool = False):
    return build_source(DataHparams(source=source, root=str(root), verify_checksums=verify))


@pytest.mark.parametrize("via,shown", [("system", "posix.system"), ("exec", "exec")])
def test_a_payload_in_a_training_batch_never_runs_without_checksums(tmp_path, via, shown):
    marker = tmp_path / "pwned"
    tampered = write_malicious_cifar(tmp_path / "root", marker, via=via)
    with pytest.raises(DatasetRootError) as err:
        build(tmp_path / "root", verify=False)
    assert not marker.exists()
    msg = str(err.value)
    assert str(tampered) in msg and shown in msg, msg
    assert "re-download" in msg and "verify_checksums: false" not in msg, msg
    assert "\n" not in msg.strip(), msg  # one line


@pytest.mark.parametrize(
    "source,file",
    [
        ("cifar10", "test_batch"),
        ("cifar10", "batches.meta"),
        ("cifar100", "train"),
        ("cifar100", "test"),
        ("cifar100", "meta"),
    ],
)
def test_a_payload_in_any_cifar_file_never_runs(tmp_path, source, file):
    marker = tmp_path / "pwned"
    tampered = write_malicious_cifar(tmp_path / "root", marker, source=source, file=file, via="exec")
    with pytest.raises(DatasetRootError, match="re-download") as err:
        build(tmp_path / "root", source=source, verify=False)
    assert not marker.exists()
    assert str(tampered) in str(err.value)


def test_with_checksums_the_md5_check_refuses_and_advises_re_downloading(tmp_path, monkeypatch):
    from sparselab.config import roots

    monkeypatch.setattr(roots, "CIFAR_OFFICIAL_IMAGES", {}, raising=False)  # reach the md5 check with tiny files
    marker = tmp_path / "pwned"
    write_malicious_cifar(tmp_path / "root", marker)
    with pytest.raises(DatasetRootError) as err:
        build(tmp_path / "root", verify=True)
    assert not marker.exists()
    msg = str(err.value)
    assert "md5" in msg and "re-download" in msg.lower(), msg
    assert "verify_checksums: false" not in msg and "if you trust" not in msg, msg


def test_the_payload_never_runs_even_when_its_md5_matches(tmp_path, monkeypatch):
    """Whatever verify_checksums says: files whose md5 matches still go through the restricted loader."""
    from sparselab.config import roots

    monkeypatch.setattr(roots, "CIFAR_OFFICIAL_IMAGES", {}, raising=False)
    marker = tmp_path / "pwned"
    tampered = write_malicious_cifar(tmp_path / "root", marker)
    base = tampered.parent

    def md5(name: str) -> str:
        return hashlib.md5((base / name).read_bytes()).hexdigest()

    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5(n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5(n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(cls.meta["filename"])})
    with pytest.raises(DatasetRootError, match="posix.system"):
        build(tmp_path / "root", verify=True)
    assert not marker.exists()


def test_only_the_types_a_batch_needs_are_admitted(tmp_path):
    """A harmless but foreign global (an OrderedDict) is refused too: an allow-list, not a deny-list."""
    from collections import OrderedDict

    write_fake_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    _dump_py2(batch, {b"labels": [1], b"data": np.zeros((1, 3072), np.uint8), b"extra": OrderedDict(a=1)})
    with pytest.raises(DatasetRootError, match="collections.OrderedDict") as err:
        build(tmp_path)
    assert str(batch) in str(err.value)


def test_restricted_loader_reads_a_real_format_batch(tmp_path):
    from sparselab.data.safe_pickle import load_restricted

    labels = write_fake_cifar10(tmp_path, n_train=10)
    entry = load_restricted(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert entry["labels"] == labels["train"][:2]
    assert (
        isinstance(entry["data"], np.ndarray) and entry["data"].dtype == np.uint8 and entry["data"].shape == (2, 3072)
    )
    # The same array a plain unpickler gives, so the loaded images are unchanged.
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        plain = pickle.load(f, encoding="latin1")
    assert np.array_equal(plain["data"], entry["data"])
    # The official files (2009) name numpy 1's module; numpy 2 writes numpy._core: both are admitted.
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    raw = path.read_bytes()
    assert b"cnumpy._core.multiarray\n_reconstruct\n" in raw
    path.write_bytes(raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    assert np.array_equal(load_restricted(path)["data"], plain["data"])


def test_a_batch_without_images_is_a_clear_error(tmp_path):
    write_fake_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    _dump_py2(batch, {b"labels": [1, 2], b"data": [1, 2, 3]})
    with pytest.raises(DatasetRootError, match="data_batch_4") as err:
        build(tmp_path)
    assert "re-download" in str(err.value)
