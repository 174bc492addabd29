"""numvae.io.idx: IDX files (MNIST's format) written and read back, gzipped or not; every
malformed file (truncated, corrupt, a gzip bomb, a named pipe) refused in one line, with
sizes checked before memory is asked for; fuzzed bytes give an IDXError or an array."""
import gzip
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from helpers import call_on_a_named_pipe
from numvae.io.idx import IDXError, read_idx, write_idx

# Hypothesis examples that rewrite one file in tmp_path are independent; hence this suppression.
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def files_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (5, 28, 28), (0, 28, 28), (2, 1, 3, 2)])
def test_idx_round_trip(tmp_path, suffix, shape):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")
    result = read_idx(path)
    assert result.dtype == np.uint8 and result.shape == shape
    np.testing.assert_array_equal(result, array)
    result[...] = 0  # the result is an ordinary writable array


@FUZZ
@given(array=arrays(np.uint8, array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)),
       gz=st.booleans())
def test_idx_round_trip_any_shape(tmp_path, array, gz):
    path = tmp_path / ("any.idx.gz" if gz else "any.idx")
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)


def test_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "a.gz", array)
    (tmp_path / "a.gz").rename(tmp_path / "a.idx")  # gzipped, but not named so
    write_idx(tmp_path / "b.idx", array)
    (tmp_path / "b.idx").rename(tmp_path / "b.gz")  # raw, but named .gz
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), array)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "b.gz")), array)


def test_write_idx_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


RAW = bytes([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]) + bytes(range(60))  # 3 x 4 x 5
GZ = gzip.compress(RAW)
RANDOM_RAW = (bytes([0, 0, 8, 1, 0, 0, 0x10, 0])
              + np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
RANDOM_GZ = gzip.compress(RANDOM_RAW)


@pytest.mark.parametrize("data, message", [
    (b"", "file is empty"),
    (b"\x00\x00", "file is 2 bytes, too short"),
    (b"\x01\x00" + RAW[2:], "not an IDX file: it starts with bytes 01 00, expected 00 00"),
    (b"PK\x03\x04" + RAW[4:], "starts with bytes 50 4b"),
    (RAW[:2] + b"\x0d" + RAW[3:], r"type code is 0x0d \(float32\), expected 0x08"),
    (RAW[:2] + b"\x42" + RAW[3:], r"type code is 0x42 \(unknown type\)"),
    (RAW[:3] + b"\x00" + RAW[4:], "0 dimensions"),
    (RAW[:10], r"10 bytes, too short for an IDX header with 3 dimensions \(16 bytes\)"),
    (RAW[:-1], r"file is 75 bytes, expected 76 for 3 x 4 x 5 uint8 items \(truncated\?\)"),
    (RAW + b"\x00", r"file is longer than the 76 bytes expected for 3 x 4 x 5 uint8 items "
                    r"\(trailing bytes\?\)"),
    (gzip.compress(RAW + bytes(1000)), r"decompressed file is longer than the 76 bytes expected .*trailing"),
    (RAW[:3] + b"\xff" + bytes(4 * 255), r"IDX header says 255 dimensions, expected 1 to 4$"),
    (RAW[:3] + b"\x05", r"IDX header says 5 dimensions"),
    # the header is checked before anything is allocated or read
    (bytes([0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0]),
     r"promises 65536 x 65536 x 768 = 3,298,534,883,328 items, more than the 50,000,000"),
    (gzip.compress(bytes([0, 0, 8, 1, 2, 250, 240, 129])),
     r"promises 50000001 items, more than the 50,000,000"),
    (gzip.compress(RAW[:-3]), r"decompressed file is 73 bytes, expected 76 .*truncated"),
    (gzip.compress(b""), "decompressed file is empty"),
    (GZ[:len(GZ) // 2], "corrupt gzip stream"),
    (GZ[:-4] + b"\xff\xff\xff\xff", "corrupt gzip stream"),  # wrong length in the trailer
    (RANDOM_GZ[:500] + bytes(255 - b for b in RANDOM_GZ[500:520]) + RANDOM_GZ[520:],
     "corrupt gzip stream"),
    (b"\x1f\x8b" + b"garbage" * 5, "corrupt gzip stream"),
])
def test_corrupt_idx_files(tmp_path, data, message):
    path = tmp_path / "bad-file.gz"
    path.write_bytes(data)
    with pytest.raises(IDXError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)  # the message names the file
    assert isinstance(info.value, ValueError)


def test_idx_error_messages_stay_short(tmp_path):
    path = tmp_path / "many-dims"
    for ndim in (4, 5, 200, 255):
        path.write_bytes(bytes([0, 0, 8, ndim]) + b"\xff\xff\xff\xff" * ndim)
        with pytest.raises(IDXError) as info:
            read_idx(path)
        assert len(str(info.value)) < len(str(path)) + 200, str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_idx_paths_that_are_not_files(tmp_path):
    with pytest.raises(IDXError, match=f"^{tmp_path}: is a folder, expected an IDX file$"):
        read_idx(tmp_path)
    os.mkfifo(tmp_path / "pipe")  # open() would wait for a writer; read_idx must not
    pipe = tmp_path / "pipe"
    assert call_on_a_named_pipe(lambda: read_or_idx_error(pipe), pipe, "read_idx") is None


ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 400 * 2**20  # Python with NumPy needs about 110 MB of address space


def write_gzip_bomb(path, header, zeros_mib=1024):
    """A gzip file of ``header`` followed by ``zeros_mib`` MiB of zeros: about 1 MB for 1 GiB.

    Built without holding the content: a full flush after each MiB of zeros resets
    the compressor, so every MiB compresses to the same bytes, written again and again.
    """
    compressor, mib = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(2**20)  # raw deflate
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert piece == compressor.compress(mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(zeros_mib):
        crc = zlib.crc32(mib, crc)
    with open(path, "wb") as file:
        file.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip, deflate, no name, mtime 0
        file.write(start)
        for _ in range(zeros_mib):
            file.write(piece)
        file.write(compressor.flush())  # the final block ...
        # ... the trailer
        file.write(struct.pack("<II", crc, (len(header) + zeros_mib * 2**20) % 2**32))


def run_with_memory_limit(code, limit=MEMORY_LIMIT):
    """Run ``code`` in a child Python limited to ``limit`` bytes of address space; its stdout."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                             env=environment, timeout=120)
    assert process.returncode == 0, process.stderr
    return process.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is enforced on Linux")
def test_gzip_bomb_is_refused_within_a_memory_limit(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    # 60000 x 28 x 28
    write_gzip_bomb(bomb, bytes([0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28]))
    assert bomb.stat().st_size < 2 * 2**20
    output = run_with_memory_limit(f"""
import gzip
from numvae.io import datasets
path = {str(bomb)!r}
try:  # what read_idx used to do: the bomb must be real, or this test proves nothing
    gzip.decompress(open(path, "rb").read())
except MemoryError:
    print("naive: MemoryError")
for read in (lambda: datasets.read_idx(path),
             lambda: datasets._verify_download("train-images-idx3-ubyte.gz", open(path, "rb").read())):
    try:
        read()
    except datasets.IDXError as err:
        print("numvae:", err)
""")
    lines = output.splitlines()
    assert lines[0] == "naive: MemoryError"
    expected = "decompressed file is longer than the 47040016 bytes expected for 60000 x 28 x 28"
    assert lines[1] == f"numvae: {bomb}: {expected} uint8 items (trailing bytes?)"
    assert lines[2].startswith(f"numvae: download: {expected}") and len(lines) == 3


def test_idx_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="path: expected a path"):
        read_idx(3)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing.gz")
    with pytest.raises(TypeError, match="uint8, got float64"):
        write_idx(tmp_path / "x", np.zeros(3))
    with pytest.raises(TypeError, match="uint8, got list"):
        write_idx(tmp_path / "x", [1, 2])
    with pytest.raises(ValueError, match="0-d array"):
        write_idx(tmp_path / "x", np.array(3, dtype=np.uint8))
    assert files_in(tmp_path) == []


def read_or_idx_error(path):
    """read_idx's result, or None if it raised IDXError; any other error fails the test."""
    try:
        result = read_idx(path)
    except IDXError:
        return None
    assert result.dtype == np.uint8
    return result


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.binary(max_size=300).map(lambda b: b"\x1f\x8b" + b),
                 st.binary(max_size=300).map(lambda b: b"\x1f\x8b\x08\x00" + b),
                 st.binary(max_size=300).map(lambda b: b"\x00\x00\x08" + b)))
def test_random_bytes_give_idx_error_or_array(tmp_path, data):
    path = tmp_path / "fuzz"
    path.write_bytes(data)
    read_or_idx_error(path)


@FUZZ
@given(valid=st.sampled_from([RAW, GZ, RANDOM_RAW, RANDOM_GZ]),
       fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_files_give_idx_error(tmp_path, valid, fraction):
    path = tmp_path / "cut"
    path.write_bytes(valid[:int(fraction * len(valid))])
    with pytest.raises(IDXError):
        read_idx(path)


@FUZZ
@given(valid=st.sampled_from([RAW, GZ, RANDOM_RAW, RANDOM_GZ]), data=st.data())
def test_flipped_bytes_give_idx_error_or_array(tmp_path, valid, data):
    position = data.draw(st.integers(0, len(valid) - 1))
    new_byte = data.draw(st.integers(0, 255))
    path = tmp_path / "flipped"
    path.write_bytes(valid[:position] + bytes([new_byte]) + valid[position + 1:])
    read_or_idx_error(path)
