"""Exercises: write the VAE's pieces yourself, then let ``numvae exercise check`` grade them.

The stubs (``numvae/exercises/stubs/01_dense.py`` ...) ship inside the package. Each has the
task in its docstring, with the equation label of docs/derivations.md, the function
signatures, and bodies that raise ``NotImplementedError``. ``start(folder)`` copies fresh
ones into a folder of yours; ``numvae.exercises.grader.check_file(path)`` grades one.

    >>> from numvae import exercises
    >>> [exercise.name for exercise in exercises.EXERCISES][:2]
    ['01_dense', '02_encoder']
"""
import shutil
from collections import namedtuple
from pathlib import Path

STUB_DIR = Path(__file__).resolve().parent / "stubs"

# name: the stub's file name without ".py"; functions: what the student writes (and the
# grader checks, by these names); hints: the classic mistakes the grader recognises.
Exercise = namedtuple("Exercise", "name title functions hints")

EXERCISES = [
    Exercise("01_dense", "a Dense layer, ReLU and sigmoid backward (D1-D4)",
             ("dense_forward", "dense_backward", "relu_backward", "sigmoid_backward"),
             ("sign", "dW_transposed", "db_not_summed", "mean_vs_sum", "relu_mask",
              "sigmoid_of_output")),
    Exercise("02_encoder", "the slides' encoder: mean and log_var of q(z|x)",
             ("encoder_forward",), ("relu_on_heads", "compressor_relu", "heads_swapped")),
    Exercise("03_reparameterisation", "z = mean + exp(0.5 log_var) eps and its gradient (R1, V3)",
             ("reparameterise", "reparameterise_backward"), ("std_vs_var", "half")),
    Exercise("04_kl", "the Gaussian KL divergence and its gradient (K1, K2)",
             ("kl_divergence", "kl_divergence_backward"),
             ("kl_minus_one", "half", "std_vs_var", "sign", "mean_vs_sum")),
    Exercise("05_bernoulli",
             "the Bernoulli negative log-likelihood, stable for logits of +-1000 (B3, B4)",
             ("bernoulli_nll", "bernoulli_nll_backward"), ("softplus", "sign", "mean_vs_sum")),
    Exercise("06_vae_forward", "the slides' vae_gen forward pass (R1)",
             ("vae_forward",), ("std_vs_var", "logits_not_probs", "decoder_relu")),
    Exercise("07_loss_fn", "the slides' loss_fn (S1)",
             ("loss_fn",), ("slides_kl", "std_vs_var", "mean_vs_sum", "kl_weight")),
    Exercise("08_vae_backward", "the mean negative ELBO and every parameter's gradient (V1-V6)",
             ("vae_loss_and_grad",), ("mean_vs_sum", "std_vs_var", "kl_minus_one", "half", "sign",
                                      "kl_grad_sign", "fork_assign", "head_dropped",
                                      "relu_mask")),
    Exercise("09_adam", "one Adam step, in place (O2)",
             ("adam_step",), ("adam_bias", "sign", "in_place", "adam_t_plus_one", "adam_alias",
                              "eps_in_sqrt")),
    Exercise("10_iwae", "the importance-weighted bound by log-sum-exp (I2)",
             ("iwae_bound",), ("lse_overflow", "mean_vs_sum", "lse_global_max",
                               "lse_not_added_back")),
    Exercise("11_gaussian", "the Gaussian negative log-likelihood and its gradient (G1, G2)",
             ("gaussian_nll", "gaussian_nll_backward"),
             ("gaussian_constant", "sigma_squared", "half", "sign", "mean_vs_sum",
              "gaussian_log_sigma", "gaussian_grad_variance")),
    Exercise("12_train_my_vae",
             "the capstone: train the slides' VAE with your own functions of 06-09, draw its figures",
             ("train_my_vae",), ()),
]


def stub_path(name):
    """The shipped stub of exercise ``name`` ("01_dense"): a Path."""
    return STUB_DIR / f"{name}.py"


class StubsExist(FileExistsError):
    """``start`` found stubs in the folder already; ``existing``: their file names."""

    def __init__(self, folder, existing):
        super().__init__(f"{folder} already has {', '.join(existing)}; your work there is "
                         f"kept (overwrite=True replaces it with fresh stubs)")
        self.existing = existing


def start(folder, overwrite=False):
    """Copy fresh stubs of every exercise into ``folder`` (created if needed).

    An existing file of the same name is never replaced unless ``overwrite`` is true: else
    StubsExist (a FileExistsError) names the files already there, and nothing is copied.
    Returns the list of the Paths written.
    """
    folder = Path(folder)
    targets = [folder / f"{exercise.name}.py" for exercise in EXERCISES]
    existing = [target.name for target in targets if target.exists()]
    if existing and not overwrite:
        raise StubsExist(folder, existing)
    folder.mkdir(parents=True, exist_ok=True)
    for exercise, target in zip(EXERCISES, targets):
        shutil.copyfile(stub_path(exercise.name), target)
    return targets
