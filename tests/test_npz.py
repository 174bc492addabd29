"""Tests for numvae.io.npz: reading .npz files that may be damaged or made to harm."""
import os
import pathlib
import struct
import subprocess
import sys
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numvae.io.npz import Member, NpzError, NpzReader, read_npz

ROOT = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
MIB = 2**20
ARRAYS = {"weights": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
          "step": np.array(5),
          "config": np.array('{"latent_dim": 2}'),
          "mask": np.array([True, False, True])}
EXPECTED = {"weights": Member("f", (3, 4)), "step": Member("iu", ()), "config": Member("U", ()),
            "mask": Member("b")}


def npy(header, data=b"", version=(1, 0)):
    """A .npy member: magic, ``version``, the header text ``header`` (str), then ``data``."""
    text = header.encode("utf-8" if version[0] == 3 else "latin-1", errors="replace")
    length = struct.pack("<H" if version[0] == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes(version) + length + text + data


def npy_of(descr, shape, data=b"", fortran=False):
    return npy(repr({"descr": descr, "fortran_order": fortran, "shape": shape}), data)


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip archive of ``members`` (file name in the archive -> bytes)."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def read(path, expected=None, **options):
    options.setdefault("max_total_bytes", MIB)
    return read_npz(path, EXPECTED if expected is None else expected, **options)


def read_or_error(path, expected=EXPECTED):
    """read_npz's result, after checking it meets ``expected``; None for an NpzError."""
    try:
        arrays = read(path, expected)
    except NpzError as err:
        assert "\n" not in str(err) and len(str(err)) < len(str(path)) + 300
        return None
    for name, array in arrays.items():
        assert array.dtype.kind in expected[name].kinds
        assert expected[name].shape is None or array.shape == expected[name].shape
    return arrays


# ---------------------------------------------------------------- good files

@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_reads_what_numpy_writes(tmp_path, save):
    save(tmp_path / "a.npz", **ARRAYS, fortran=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    arrays = read(tmp_path / "a.npz", {**EXPECTED, "fortran": Member("f", (2, 3))})
    assert sorted(arrays) == sorted([*ARRAYS, "fortran"])
    for name, array in ARRAYS.items():
        assert arrays[name].dtype == array.dtype and arrays[name].shape == array.shape
        np.testing.assert_array_equal(arrays[name], array)
    np.testing.assert_array_equal(arrays["fortran"], [[0, 1, 2], [3, 4, 5]])
    arrays["weights"][...] = 0  # ordinary writable arrays
    with NpzReader(tmp_path / "a.npz", max_total_bytes=MIB) as npz:
        assert npz.names == [*ARRAYS, "fortran"]


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_versions(tmp_path, version):
    member = npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }", b"\x01\x00\x02\x01",
                 version)
    write_zip(tmp_path / "v.npz", {"x.npy": member})
    np.testing.assert_array_equal(read(tmp_path / "v.npz", {"x": Member("i")})["x"], [1, 258])


def test_optional_members_and_unexpected_ones(tmp_path):
    np.savez(tmp_path / "a.npz", **ARRAYS)
    expected = {"weights": Member("f", (3, 4)), "missing": Member("f", required=False)}
    arrays = read(tmp_path / "a.npz", expected, unexpected="ignore")
    assert list(arrays) == ["weights"]
    with pytest.raises(NpzError, match=r"a.npz: has unexpected members 'step', 'config', 'mask'$"):
        read(tmp_path / "a.npz", expected)
    with pytest.raises(NpzError, match=r"a.npz: has no member 'optimizer', 'other'$"):
        read(tmp_path / "a.npz", {**EXPECTED, "optimizer": ("f",), "other": ("f", None, True)})
    write_zip(tmp_path / "b.npz", {f"x{i}.npy": b"" for i in range(8)} | {"notes.txt": b"hi"})
    with pytest.raises(NpzError, match=r"members 'x0', 'x1', 'x2', 'x3', 'x4' and 4 more$"):
        read(tmp_path / "b.npz", {})


@pytest.mark.parametrize("expected, message", [
    ({"weights": Member("i", (3, 4))},
     r"member 'weights' has dtype <f4 \(kind 'f'\), expected kind i$"),
    ({"weights": Member("iub", (3, 4))}, "expected kind i or u or b$"),
    ({"weights": Member("f", (4, 3))}, r"member 'weights' has shape \(3, 4\), expected \(4, 3\)$"),
    ({"config": Member("f", ())}, r"has dtype <U17 \(kind 'U'\)"),
])
def test_wrong_dtype_or_shape(tmp_path, expected, message):
    np.savez(tmp_path / "a.npz", **ARRAYS)
    with pytest.raises(NpzError, match=message):
        read(tmp_path / "a.npz", expected, unexpected="ignore")


def test_reader_reads_in_phases_from_one_open_file(tmp_path):
    np.savez(tmp_path / "c.npz", **ARRAYS)
    np.savez(tmp_path / "other.npz", weights=np.zeros((5, 5)))
    with NpzReader(tmp_path / "c.npz", max_total_bytes=120) as npz:
        assert npz.names == ["weights", "step", "config", "mask"]
        config = npz.read("config", Member("U", ()))  # 17 characters of 4 bytes: 68 of the 120
        assert str(config) == '{"latent_dim": 2}'
        if sys.platform != "win32":  # a save replacing the file now does not mix two versions
            os.replace(tmp_path / "other.npz", tmp_path / "c.npz")
        npz.check_names(EXPECTED)
        without_mask = {name: spec for name, spec in EXPECTED.items() if name != "mask"}
        with pytest.raises(NpzError, match="c.npz: has unexpected member 'mask'$"):
            npz.check_names(without_mask)
        npz.check_names(without_mask, unexpected="ignore")
        # 48 more
        np.testing.assert_array_equal(npz.read("weights", ("f", (3, 4))), ARRAYS["weights"])
        with pytest.raises(NpzError, match=r"c.npz: member 'step' declares \(\) items of <i8, 8 bytes, "
                                           r"more than the 4 allowed$"):
            npz.read("step", Member("i", ()))
        with pytest.raises(NpzError, match="c.npz: has no member 'nothing'$"):
            npz.read("nothing", Member("f"))
    assert npz._file.closed


def test_reads_a_numvae_checkpoint_as_np_load_does():
    # tests/data/checkpoint_v1.npz was written by numvae 0.1.0's save_checkpoint
    path = ROOT / "tests" / "data" / "checkpoint_v1.npz"
    text = {name: Member("U", ()) for name in ("config", "model_rng", "history", "train_state",
                                               "optimizer")}
    with NpzReader(path, max_total_bytes=MIB) as npz:
        assert npz.read("format_version", Member("iu", ())) == 1
        arrays = {name: npz.read(name, spec) for name, spec in text.items()}
        expected = {**text, "format_version": Member("iu", ()), "optimizer/t": Member("iu", ()),
                    **{name: Member("f") for name in npz.names if name.startswith(("param/", "optimizer/m.",
                                                                                  "optimizer/v."))}}
        npz.check_names(expected)
        arrays.update({name: npz.read(name, expected[name]) for name in npz.names
                       if name not in arrays})
    with np.load(path, allow_pickle=False) as reference:
        assert sorted(reference.files) == sorted(arrays) and len(arrays) == 49  # 5 + 14 + 2 + 28
        for name in reference.files:
            assert arrays[name].dtype == reference[name].dtype
            np.testing.assert_array_equal(arrays[name], reference[name])


# ---------------------------------------------------------------- sizes and budgets

def test_huge_declared_shape_is_refused_before_allocation(tmp_path):
    write_zip(tmp_path / "big.npz", {"x.npy": npy_of("<f8", (10**12,), bytes(16))})
    with pytest.raises(NpzError, match=r"big.npz: member 'x' declares \(1000000000000,\) items of <f8, "
                                       r"8e\+12 bytes, more than the 1,048,576 allowed$"):
        read(tmp_path / "big.npz", {"x": Member("f")})


def test_byte_budgets(tmp_path):
    np.savez(tmp_path / "a.npz", a=np.zeros(10), b=np.zeros(10))  # 80 bytes each
    expected = {"a": Member("f"), "b": Member("f")}
    assert len(read(tmp_path / "a.npz", expected, max_total_bytes=160)) == 2
    with pytest.raises(NpzError, match=r"member 'b' declares \(10,\) items of <f8, 80 bytes, "
                                       r"more than the 79 allowed$"):
        read(tmp_path / "a.npz", expected, max_total_bytes=159)
    with pytest.raises(NpzError, match="member 'a' declares .* more than the 79 allowed"):
        read(tmp_path / "a.npz", expected, max_total_bytes=1000, max_member_bytes=79)


def test_zip_directory_too_large_or_zip64(tmp_path):
    # 25,000 entries of 46 bytes and an 11-byte name: a directory of 1,425,000 bytes
    write_zip(tmp_path / "many.npz", {f"x{i:06}.npy": b"" for i in range(25_000)})
    with pytest.raises(NpzError, match=r"many.npz: has a 1,425,000-byte zip directory, more than the 1,048,576"):
        read(tmp_path / "many.npz", max_total_bytes=10 * MIB)
    write_zip(tmp_path / "few.npz", {f"x{i:06}.npy": b"" for i in range(10_001)})
    with pytest.raises(NpzError,
                       match=r"few.npz: has 10,001 members, more than the 10,000 allowed$"):
        NpzReader(tmp_path / "few.npz", max_total_bytes=10 * MIB)
    with zipfile.ZipFile(tmp_path / "64.npz", "w") as archive:
        archive.writestr("x.npy", npy_of("<f8", (1,), bytes(8)))
    data = (tmp_path / "64.npz").read_bytes()
    end = data.rindex(b"PK\x05\x06")  # put a zip64 locator before the end record
    (tmp_path / "64.npz").write_bytes(data[:end] + b"PK\x06\x07" + bytes(16) + data[end:])
    with pytest.raises(NpzError, match="64.npz: is a zip64 archive"):
        read(tmp_path / "64.npz", {"x": Member("f")})


def test_file_larger_than_the_budget_is_not_opened_as_zip(tmp_path):
    with open(tmp_path / "large.npz", "wb") as file:
        file.truncate(3 * MIB)  # sparse: no disk space used
    with pytest.raises(NpzError,
                       match=r"large.npz: is 3,145,728 bytes, more than the 1,049,576 allowed$"):
        read(tmp_path / "large.npz", max_total_bytes=1000)


# ---------------------------------------------------------------- hostile members

class Trap:
    """Unpickling a Trap creates the file it names: proof that something was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def test_pickled_member_is_refused_unopened(tmp_path):
    trap = tmp_path / "unpickled"
    np.savez(tmp_path / "p.npz", obj=np.array([Trap(trap)], dtype=object))
    with pytest.raises(NpzError,
                       match="member 'obj' holds pickled Python objects; numvae never unpickles"):
        read(tmp_path / "p.npz", {"obj": Member("f")})
    assert not trap.exists()
    with pytest.raises(ValueError, match="never 'O'"):
        read(tmp_path / "p.npz", {"obj": Member("fO")})


def test_member_longer_or_shorter_than_declared(tmp_path):
    write_zip(tmp_path / "long.npz", {"x.npy": npy_of("<f8", (4,), bytes(10 * MIB))},
              zipfile.ZIP_DEFLATED)
    with pytest.raises(NpzError,
                       match="member 'x' holds more than the 32 data bytes its header declares$"):
        read(tmp_path / "long.npz", {"x": Member("f")})
    write_zip(tmp_path / "short.npz", {"x.npy": npy_of("<f8", (100,), bytes(80))})
    with pytest.raises(NpzError, match=r"member 'x' holds 80 of the 800 data bytes its header "
                                       r"declares \(truncated\)$"):
        read(tmp_path / "short.npz", {"x": Member("f")})


def test_duplicate_member_names(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"
        write_zip(tmp_path / "dup.npz", {"x.npy": npy_of("<f8", (1,), bytes(8))})
        with zipfile.ZipFile(tmp_path / "dup.npz", "a") as archive:
            archive.writestr("x.npy", npy_of("<f8", (2,), bytes(16)))
    with pytest.raises(NpzError, match="member 'x' appears twice$"):
        read(tmp_path / "dup.npz", {"x": Member("f")})


def test_other_compression_methods_and_encryption(tmp_path):
    write_zip(tmp_path / "bz.npz", {"x.npy": npy_of("<f8", (1,), bytes(8))}, zipfile.ZIP_BZIP2)
    with pytest.raises(NpzError,
                       match=r"member 'x' uses zip compression method 12, expected stored \(0\)"):
        read(tmp_path / "bz.npz", {"x": Member("f")})
    data = bytearray(write_zip(tmp_path / "enc.npz",
                               {"x.npy": npy_of("<f8", (1,), bytes(8))}).read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" bit
        data[data.index(signature) + flags_at] |= 1
    (tmp_path / "enc.npz").write_bytes(bytes(data))
    with pytest.raises(NpzError, match="member 'x' is encrypted$"):
        read(tmp_path / "enc.npz", {"x": Member("f")})


MALFORMED_HEADERS = [
    ("{", "malformed .npy header"),
    ("{'descr': '<f8'", "malformed .npy header"),
    ("(" * 300 + ")" * 300, "malformed .npy header"),  # nesting beyond the parser's limit
    ("{'descr': 1" + "0" * 5000 + "}", "malformed .npy header"),  # an int too long to convert
    ("\x00", "malformed .npy header"),
    ("[1, 2]", "not a dict of descr, fortran_order and shape"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}", "not a dict of descr"),
    ("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,)}", "expected a plain dtype"),
    ("{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
     "has fortran_order 0, expected True or False"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}", "has shape"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (True,)}", "has shape"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': [1]}", "has shape"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (1,) * 9}", "malformed"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1)}",
     "at most 8 sizes"),
    ("{'descr': '<q9', 'fortran_order': False, 'shape': (1,)}", "unknown dtype '<q9'"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", "holds 8 of the 16 data bytes"),
    ("{'descr': '|V0', 'fortran_order': False, 'shape': (2,)}", "kind 'V'"),
    ("{'descr': '" + "x" * 200 + "', 'fortran_order': False, 'shape': (1,)}",
     r"has dtype 'xxx.*\.\.\., expected"),
]


@pytest.mark.parametrize("header, message", MALFORMED_HEADERS)
def test_malformed_npy_headers(tmp_path, header, message):
    write_zip(tmp_path / "h.npz", {"x.npy": npy(header, bytes(8))})
    with pytest.raises(NpzError, match=message) as info:
        read(tmp_path / "h.npz", {"x": Member("f")})
    assert str(info.value).startswith(f"{tmp_path / 'h.npz'}: member 'x' ")
    assert len(str(info.value)) < len(str(tmp_path)) + 160


@pytest.mark.parametrize("member, message", [
    (b"", r"is not a .npy array \(it does not start with \\x93NUMPY\)"),
    (b"PK\x03\x04", "is not a .npy array"),
    (b"\x93NUMPY\x04\x00", "has .npy format version 4.0, expected 1.0, 2.0 or 3.0"),
    (b"\x93NUMPY\x01", "has .npy format version 1, expected"),
    (b"\x93NUMPY\x01\x00\x10", "has a truncated .npy header"),
    (b"\x93NUMPY\x02\x00\xff\xff\xff\xff",
     "declares a 4,294,967,295-byte .npy header, more than the 10,000"),
    (b"\x93NUMPY\x03\x00\x02\x00\x00\x00\xff\xfe", r"is damaged \('utf-8' codec"),
])
def test_malformed_npy_starts(tmp_path, member, message):
    write_zip(tmp_path / "s.npz", {"x.npy": member})
    with pytest.raises(NpzError, match=f"s.npz: member 'x' {message}"):
        read(tmp_path / "s.npz", {"x": Member("f")})


# ---------------------------------------------------------------- files that are not .npz files

@pytest.mark.parametrize("content, message", [
    (b"",
     r"is not a .npz \(zip\) archive, or its directory is damaged \(File is not a zip file\)$"),
    (b"PK\x03\x04" + bytes(100), "is not a .npz"),
    (npy_of("<f8", (1,), bytes(8)), "is not a .npz"),
])
def test_not_a_zip_archive(tmp_path, content, message):
    (tmp_path / "n.npz").write_bytes(content)
    with pytest.raises(NpzError, match=message):
        read(tmp_path / "n.npz")
    with pytest.raises(NpzError, match=message):
        NpzReader(tmp_path / "n.npz", max_total_bytes=MIB)


def test_paths_that_are_not_regular_files(tmp_path):
    with pytest.raises(NpzError, match=r"nothing.npz: does not exist$"):
        read(tmp_path / "nothing.npz")
    with pytest.raises(NpzError, match=f"^{tmp_path}: is a folder, expected a .npz file$"):
        read(tmp_path)
    if os.path.exists("/dev/zero"):  # a device that never ends
        with pytest.raises(NpzError, match="^/dev/zero: is a device, expected a .npz file$"):
            read("/dev/zero")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")  # opening it for reading would wait for a writer
    outcome = []

    def attempt():
        try:
            read(tmp_path / "pipe.npz")
        except NpzError as err:
            outcome.append(str(err))
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # unblock it, so that the test run can end
        with open(tmp_path / "pipe.npz", "wb"):
            pass
        pytest.fail("read_npz waited on a named pipe")
    assert outcome == [f"{tmp_path / 'pipe.npz'}: is a named pipe, expected a .npz file"]


def test_error_class_or_callable(tmp_path):
    class CheckpointError(ValueError):
        pass
    with pytest.raises(CheckpointError, match=r"^checkpoint .*gone.npz: does not exist$"):
        read(tmp_path / "gone.npz", error=lambda message: CheckpointError(f"checkpoint {message}"))
    with pytest.raises(CheckpointError, match=r"gone.npz: does not exist$"):
        read(tmp_path / "gone.npz", error=CheckpointError)


@pytest.mark.parametrize("options, error, message", [
    (dict(expected=[("weights", "f")]), TypeError, "expected: expected a dict"),
    (dict(expected={"w": "f"}), TypeError, "entry 'w' must map a str to a Member"),
    (dict(expected={"w": Member("")}), ValueError, r"expected\['w'\].kinds"),
    (dict(expected={"w": Member("f", [3])}), TypeError, r"expected\['w'\].shape"),
    (dict(max_total_bytes=-1), ValueError,
     "max_total_bytes: expected a number of bytes >= 0, got -1"),
    (dict(max_total_bytes=True), TypeError, "max_total_bytes"),
    (dict(max_member_bytes=1.5), TypeError, "max_member_bytes"),
    (dict(unexpected="warn"), ValueError, "unexpected: expected 'error' or 'ignore', got 'warn'"),
])
def test_bad_arguments(tmp_path, options, error, message):
    np.savez(tmp_path / "a.npz", **ARRAYS)
    with pytest.raises(error, match=message):
        read(tmp_path / "a.npz", **options)
    with pytest.raises(TypeError, match="path: expected a path"):
        read(None)


# ---------------------------------------------------------------- fuzzing

def valid_files(tmp_path):
    np.savez(tmp_path / "stored.npz", **ARRAYS)
    np.savez_compressed(tmp_path / "deflated.npz", **ARRAYS)
    return [(tmp_path / name).read_bytes() for name in ("stored.npz", "deflated.npz")]


@FUZZ
@given(which=st.integers(0, 1), fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_files_give_npz_error(tmp_path, which, fraction):
    valid = valid_files(tmp_path)[which]
    (tmp_path / "cut.npz").write_bytes(valid[:int(fraction * len(valid))])
    with pytest.raises(NpzError):
        read(tmp_path / "cut.npz")


@FUZZ
@given(which=st.integers(0, 1), data=st.data())
def test_damaged_bytes_give_npz_error_or_checked_arrays(tmp_path, which, data):
    damaged = bytearray(valid_files(tmp_path)[which])
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    (tmp_path / "damaged.npz").write_bytes(bytes(damaged))
    read_or_error(tmp_path / "damaged.npz")


DESCRS = ["<f8", ">f4", "<i8", "|u1", "|b1", "<U3", "|O", "<c16", "|V8", "<M8", "f", "<f", "<U0",
          "S2",
          "<f8 ", "", "a", "<f800", "<U1000000", "<U10000000", "<U99999999999", "<U9999999999"]
sizes = st.one_of(st.integers(0, 4), st.integers(-3, 2**70), st.booleans(), st.floats(), st.none())


@FUZZ
@given(descr=st.one_of(st.sampled_from(DESCRS), st.text(max_size=6)),
       fortran=st.one_of(st.booleans(), st.integers(-1, 2), st.none()),
       shape=st.one_of(st.lists(sizes, max_size=10).map(tuple), sizes, st.lists(st.integers(0, 3))),
       payload=st.binary(max_size=80), version=st.sampled_from([(1, 0), (2, 0), (3, 0)]))
def test_random_npy_headers_give_npz_error_or_checked_arrays(tmp_path, descr, fortran, shape,
                                                             payload,
                                                             version):
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape})
    write_zip(tmp_path / "h.npz", {"x.npy": npy(header, payload, version)})
    result = read_or_error(tmp_path / "h.npz", {"x": Member("fiubUc")})
    if result is not None:
        assert result["x"].nbytes == len(payload) and result["x"].shape == shape


@FUZZ
@given(header=st.one_of(st.text(max_size=120),
                        st.binary(max_size=120).map(lambda b: b.decode("latin-1"))),
       payload=st.binary(max_size=40))
def test_random_header_text_gives_npz_error_or_checked_arrays(tmp_path, header, payload):
    write_zip(tmp_path / "t.npz", {"x.npy": npy(header, payload, (3, 0))}, zipfile.ZIP_DEFLATED)
    read_or_error(tmp_path / "t.npz", {"x": Member("fiubU")})


# ---------------------------------------------------------------- a zip bomb, under a memory limit

def write_bomb_zip(path, stored, bomb_name, bomb_start, zeros_mib):
    """A zip archive of the ``stored`` members (name -> bytes) and ``bomb_name``: ``bomb_start``
    then ``zeros_mib`` MiB of zeros, deflated to about 1 KiB per MiB.

    Written by hand, piece by piece, so that the content is never held: a full flush
    after each MiB resets the compressor, so every MiB deflates to the same bytes.
    """
    compressor, mib = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(MIB)  # raw deflate, as in zip
    start = compressor.compress(bomb_start) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    crc = zlib.crc32(bomb_start)
    for _ in range(zeros_mib):
        crc = zlib.crc32(mib, crc)
    entries = [(name, 0, zlib.crc32(data), len(data), len(data)) for name, data in stored.items()]
    entries.append((bomb_name, 8, crc, len(start) + zeros_mib * len(piece) + len(end),
                    len(bomb_start) + zeros_mib * MIB))
    directory = b""
    with open(path, "wb") as file:
        for name, method, crc, packed, size in entries:
            encoded, offset = name.encode(), file.tell()
            file.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, packed,
                                   size,
                                   len(encoded), 0) + encoded)
            if name in stored:
                file.write(stored[name])
            else:
                file.write(start)
                for _ in range(zeros_mib):
                    file.write(piece)
                file.write(end)
            directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                                     crc,
                                     packed, size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
        directory_at = file.tell()
        file.write(directory)
        file.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                               len(directory),
                               directory_at, 0))


def test_bomb_zip_helper_makes_a_valid_archive(tmp_path):
    write_bomb_zip(tmp_path / "small.npz", {"a.npy": npy_of("<f8", (1,), bytes(8))}, "b.npy",
                   npy_of("|u1", (2 * MIB,)), 2)
    with np.load(tmp_path / "small.npz") as npz:
        assert npz["a"].shape == (1,) and npz["b"].shape == (2 * MIB,) and not npz["b"].any()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_one_gib_member_is_never_inflated_within_a_memory_limit(tmp_path):
    weights = npy_of("<f4", (3, 4), np.ones((3, 4), np.float32).tobytes())
    write_bomb_zip(tmp_path / "extra.npz", {"weights.npy": weights}, "junk.npy",
                   npy_of("|u1", (2**30,)),
                   1024)
    # 48 bytes, then 1 GiB
    write_bomb_zip(tmp_path / "lying.npz", {}, "weights.npy", weights[:-48], 1024)
    assert (tmp_path / "extra.npz").stat().st_size < 2 * MIB
    limit = 400 * MIB  # Python with NumPy needs about 110 MB of address space
    code = f"""
import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import numpy as np
from numvae.io.npz import Member, NpzError, read_npz
extra, lying = {str(tmp_path / "extra.npz")!r}, {str(tmp_path / "lying.npz")!r}
expected = {{"weights": Member("f", (3, 4))}}
try:  # what np.load does: the bomb must be real, or this test proves nothing
    dict(np.load(extra))
except MemoryError:
    print("np.load: MemoryError")
print("ignored:", read_npz(extra, expected, max_total_bytes=10**8,
unexpected="ignore")["weights"].sum())
for path in (extra, lying):
    try:
        read_npz(path, expected, max_total_bytes=10**8)
    except NpzError as err:
        print(err)
"""
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == [
        "np.load: MemoryError", "ignored: 12.0",
        f"{tmp_path / 'extra.npz'}: has unexpected member 'junk'",
        f"{tmp_path / 'lying.npz'}: member 'weights' holds more than the 48 data bytes its header declares"]
