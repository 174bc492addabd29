"""THE FAST PATH's helper: freed memory kept for the next training step (glibc's malloc).

Nothing here is needed to understand the VAE, and no number changes with it. A training
step of the conv VAE allocates some hundred megabytes of temporaries (patch matrices, their
products, activations) and frees them before the next step. glibc's malloc returns large
blocks to the system: blocks above its mmap threshold are unmapped when freed, and the top
of the heap is trimmed once more than the trim threshold is free. The next step then asks
the kernel for the same memory again, and the kernel hands out fresh pages, each zeroed on
first touch. On the 2-core AMD EPYC of docs/performance.md ("The convolutions") that
took a fifth of the conv VAE's step: 83-92 ms a step with glibc's defaults, 65-74 ms with
the thresholds below (``python -m benchmarks.speed.conv_vae``, 1 thread, alternated runs).

``keep_freed_memory()`` raises both thresholds (``mallopt``) so that the blocks stay in the
process and are reused: the mmap threshold to 32 MiB, glibc's largest (arrays up to that
size come from the heap), the trim threshold to 1 GiB (free memory at the top of the heap
is kept up to that much). The price: the process keeps the memory of its largest step
instead of returning it between steps. Building the conv architecture calls it
(``numvae.model.architectures.Conv``); it does nothing on a C library other than glibc.

``set_keep_memory(False)``, or the environment variable ``NUMVAE_KEEP_MEMORY=0``, turns it
off (after it was applied: glibc's starting thresholds, 128 KiB, are set back, without its
own adjustment of them, which ``mallopt`` switches off for good).
"""
import ctypes
import os

ENVIRONMENT = "NUMVAE_KEEP_MEMORY"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
KEPT = {M_MMAP_THRESHOLD: 32 * 2 ** 20, M_TRIM_THRESHOLD: 2 ** 30}
GLIBC_START = {M_MMAP_THRESHOLD: 128 * 2 ** 10, M_TRIM_THRESHOLD: 128 * 2 ** 10}

# on None: not read from the environment yet; applied: the thresholds KEPT are in effect
_settings = {"on": None, "applied": False}


def _from_environment():
    """False if NUMVAE_KEEP_MEMORY is 0, True if it is unset, empty or 1, else ValueError."""
    text = os.environ.get(ENVIRONMENT, "").strip()
    if text not in ("", "0", "1"):
        raise ValueError(f"the environment variable {ENVIRONMENT} must be 0 (off) or 1 (on); "
                         f"got {text!r}")
    return text != "0"


def _glibc_mallopt():
    """glibc's ``mallopt(int, int)`` from the C library this process runs on, or None."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return None
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, ValueError, OSError):  # not glibc, no confstr, no such symbol
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def _set_thresholds(values, mallopt=None):
    """mallopt(parameter, value) for each entry; True if the C library took them all."""
    mallopt = mallopt or _glibc_mallopt()
    if mallopt is None:
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in values.items())


def keep_freed_memory(mallopt=None):
    """Keep freed memory for reuse, if the setting is on (the default) and the C library is
    glibc; once per process. Returns True if the kept thresholds are in effect.
    ``mallopt``: the function to call instead of glibc's (the tests pass a recorder)."""
    if _settings["on"] is None:
        _settings["on"] = _from_environment()
    if _settings["on"] and not _settings["applied"]:
        _settings["applied"] = _set_thresholds(KEPT, mallopt)
    return _settings["applied"]


def set_keep_memory(on, mallopt=None):
    """Keep freed memory from the next ``keep_freed_memory()`` on (True), not (False: if it
    was applied, glibc's starting thresholds are set back) or as the environment says
    (None, read then). Returns the previous setting (None: the environment's, not read)."""
    if on is not None and not isinstance(on, bool):
        raise ValueError(f"set_keep_memory: on must be True, False or None; got {on!r}")
    previous, _settings["on"] = _settings["on"], on
    if not on and _settings["applied"]:
        _set_thresholds(GLIBC_START, mallopt)
        _settings["applied"] = False
    return previous
