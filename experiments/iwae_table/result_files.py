"""iwae_table's result files, read and checked: ``results.json`` (a row's training: the loss
of every epoch, the evaluation at each stage's end), ``final.json`` (``--final``: the last
epoch on every test image) and ``final_epoch<E>_k<K>.json`` (an earlier ``--final`` of the
row, kept here by ``keep_earlier_final`` when the row trained on and was evaluated again).
A file that is not what iwae_table wrote (truncated, hand-edited, a NaN) is refused with one
line naming the file and the field, and the program exits non-zero: a row is never dropped
from the table, nor printed as "nan", without a word.
"""
import json
import math
import numbers
import re

STAGE_NUMBERS = ("nll", "nll_se", "negative_elbo", "negative_elbo_se")
STAGE_COUNTS = ("epoch", "k", "n_images")


class ResultsError(SystemExit):
    """A result file that cannot be used; its message names the file and the field. A
    SystemExit, so that the command line prints that one line and exits with status 1."""


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite(value):
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _load(path):
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ResultsError(f"iwae_table: {path} is not readable JSON ({err})") from None
    if not isinstance(value, dict):
        raise ResultsError(f"iwae_table: {path} holds a {type(value).__name__}; "
                           f"expected a JSON object")
    return value


def describe(value):
    """What came, in a few words: a number or text as it is, a list by its length."""
    if value is None:
        return "missing (or null)"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a JSON object"
    return repr(value)


def _fail(path, field, expected, got):
    raise ResultsError(f"iwae_table: {path}: {field} is {describe(got)}; expected {expected}")


def _check_numbers(path, field, values, length=None):
    """A list of finite numbers (of ``length`` entries when given)."""
    if not isinstance(values, list) or (length is not None and len(values) != length):
        _fail(path, field, "a list" + (f" of {length} numbers" if length is not None else ""),
              values)
    for index, value in enumerate(values):
        if not _is_finite(value):
            _fail(path, f"{field}[{index}]", "a finite number", value)


def _check_evaluation(path, field, figures, complete=True):
    """A stage's (or the final) evaluation: counts, finite figures, one log p(x) per image."""
    if not isinstance(figures, dict):
        _fail(path, field, "a JSON object", figures)
    for key in STAGE_COUNTS if complete else ("epoch", "k"):
        if not _is_int(figures.get(key)) or figures[key] < 1:
            _fail(path, f"{field}.{key}", "an integer >= 1", figures.get(key))
    if complete:
        for key in STAGE_NUMBERS:
            if not _is_finite(figures.get(key)):
                _fail(path, f"{field}.{key}", "a finite number", figures.get(key))
    _check_numbers(path, f"{field}.per_example_log_px", figures.get("per_example_log_px"),
                   figures["n_images"] if complete else None)


def read_results(path):
    """``results.json``, checked: the row's name and options, one training loss per epoch,
    and at least one stage, each at an epoch already trained, in order."""
    results = _load(path)
    if not isinstance(results.get("row"), str):
        _fail(path, "row", "the row's name", results.get("row"))
    args = results.get("args")
    if not isinstance(args, dict) or not all(key in args for key in ("model", "k", "posterior")):
        _fail(path, "args", "the row's options (model, k, posterior)", args)
    _check_numbers(path, "train_loss", results.get("train_loss"))
    stages = results.get("stages")
    if not isinstance(stages, list) or not stages:
        _fail(path, "stages", "a non-empty list (a row is written at its first stage's end)",
              stages)
    previous = 0
    for index, stage in enumerate(stages):
        _check_evaluation(path, f"stages[{index}]", stage)
        if not previous < stage["epoch"] <= len(results["train_loss"]):
            _fail(path, f"stages[{index}].epoch", f"an epoch after {previous} and at most the "
                  f"{len(results['train_loss'])} epochs of train_loss", stage["epoch"])
        previous = stage["epoch"]
    return results


def read_final(path):
    """``final.json``, checked: complete (``nll`` present: every test image evaluated) or a
    stopped evaluation to resume (its chunks so far)."""
    final = _load(path)
    complete = "nll" in final
    _check_evaluation(path, "final", final, complete=complete)
    if not _is_int(final.get("chunk")) or final["chunk"] < 1:
        _fail(path, "final.chunk", "an integer >= 1", final.get("chunk"))
    return final


# the one name of a kept evaluation: written, read and (by --restart) removed by this pattern
EARLIER_FINAL_NAME = "final_epoch{epoch}_k{k}.json"
EARLIER_FINAL_PATTERN = re.compile(r"final_epoch(\d+)_k(\d+)\.json")


def earlier_final_path(folder, epoch, k):
    """Where a row's complete ``--final`` of ``epoch`` (K = ``k``) is kept once another
    evaluation replaces it in final.json."""
    return folder / EARLIER_FINAL_NAME.format(epoch=epoch, k=k)


def earlier_final_paths(folder):
    """The row's kept evaluations: the files of ``folder`` named as ``earlier_final_path``
    names them (no other file), sorted by name."""
    return sorted(path for path in folder.glob("final_epoch*.json")
                  if EARLIER_FINAL_PATTERN.fullmatch(path.name))


def keep_earlier_final(final_path, final):
    """Before ``final_path`` starts over for another epoch or K (the row trained on since
    its last ``--final``): keep its complete evaluation ``final`` as
    final_epoch<E>_k<K>.json, which the table lists beside the new one (what the extra
    epochs gained) and compares with the other rows' at epoch E, on every test image. A
    copy with the same content already there: nothing to do; a different one: refused, one
    line, nothing moved. ``--restart`` removes the kept files (``earlier_final_paths``)."""
    kept = earlier_final_path(final_path.parent, final["epoch"], final["k"])
    if kept.exists():
        if _load(kept) != final:
            raise ResultsError(f"iwae_table --final: {final_path} holds a complete evaluation "
                               f"of epoch {final['epoch']} and {kept} a different one; move "
                               f"one of them away before --final starts another epoch")
        return kept
    from numvae.io.files import atomic_write_bytes  # whole or not at all
    atomic_write_bytes(kept, final_path.read_bytes())  # final.json itself is replaced later
    return kept


def read_earlier_finals(folder):
    """The row's kept ``--final`` evaluations (final_epoch<E>_k<K>.json), checked and
    complete, in the order of their epochs."""
    finals = []
    for path in earlier_final_paths(folder):
        match = EARLIER_FINAL_PATTERN.fullmatch(path.name)
        final = read_final(path)
        if "nll" not in final:
            raise ResultsError(f"iwae_table: {path} is an unfinished evaluation; expected the "
                               f"complete evaluation of epoch {match.group(1)}")
        for field, group in (("epoch", 1), ("k", 2)):
            if final[field] != int(match.group(group)):
                _fail(path, f"final.{field}", f"{match.group(group)}, as the file's name says",
                      final[field])
        finals.append(final)
    return sorted(finals, key=lambda final: final["epoch"])


def read_row(folder):
    """A row of the table: its results.json, checked, with ``finals``: its complete
    ``--final`` evaluations on all the test images, the kept earlier ones first (an
    unfinished final.json is left out)."""
    results = read_results(folder / "results.json")
    final = read_final(folder / "final.json") if (folder / "final.json").exists() else {}
    return dict(results, finals=[*read_earlier_finals(folder), *([final] if "nll" in final
                                                                 else [])])


def trained_epochs(results):
    """How many epochs the row's results cover."""
    return len(results["train_loss"]) if results else 0
