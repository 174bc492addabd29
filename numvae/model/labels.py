"""Class labels for a conditional VAE: checked once, turned into one-hot rows (eq. CD1).

A conditional model feeds the one-hot label beside the data to the encoder,
[x, onehot(y)], and beside the latent point to the decoder, [z, onehot(y)];
``condition`` builds those inputs from the labels checked here.
"""
import numpy as np


def check_labels(y, n_classes, batch, name="y"):
    """Labels y: (batch,) integers in [0, n_classes), as an int64 array; else a clear error."""
    if y is None:
        raise ValueError(f"this conditional model (n_classes={n_classes}) needs the labels "
                         f"{name}: (batch,) integers in [0, {n_classes})")
    array = np.asarray(y)
    if (array.dtype.kind == "f" and np.isfinite(array).all()
            and np.array_equal(array, np.round(array))):
        array = array.astype(np.int64)  # 3.0 is the label 3
    if array.dtype.kind not in "iu" or array.shape != (batch,):
        raise ValueError(f"{name} must hold one integer label per example, shape ({batch},); "
                         f"got shape {array.shape} of {array.dtype}")
    if batch and (array.min() < 0 or array.max() >= n_classes):
        bad = array[(array < 0) | (array >= n_classes)][0]
        raise ValueError(f"{name} holds the label {bad}; expected integers in [0, {n_classes})")
    return array.astype(np.int64, copy=False)


def one_hot(y, n_classes, dtype):
    """The one-hot rows of checked labels y (batch,): (batch, n_classes), row b has a 1 at
    column y_b and 0 elsewhere (eq. CD1)."""
    rows = np.zeros((len(y), n_classes), dtype)
    rows[np.arange(len(y)), y] = 1
    return rows


def condition(a, y, n_classes):
    """[a, onehot(y)] (eq. CD1): the encoder's input (a = x) or the decoder's (a = z) of a
    conditional model; a (rows, width), rows = S * batch for S draws per example (the
    labels repeat). y: checked labels (``check_labels``), or None: ``a`` itself."""
    if y is None:
        return a
    return np.concatenate([a, np.tile(one_hot(y, n_classes, a.dtype), (len(a) // len(y), 1))],
                          axis=1)
