"""``numvae train``'s options, in groups (data, model, objective, optimisation, output),
each with its help and its default; ``numvae.commands.train`` runs them."""
from numvae.commands.common import (
    add_widths_option,
    epochs_option,
    float_in,
    int_in,
    lr_option,
    nonnegative_float,
    nonnegative_int,
    seed_option,
    sigma_option,
    width_option,
)
from numvae.io import datasets
from numvae.model.architectures import ARCHITECTURES
from numvae.model.parts import REGISTRIES as PARTS
from numvae.nn.layers import ACTIVATIONS
from numvae.training.schedules import SCHEDULES


def add_parser(commands):
    p = commands.add_parser("train", help="train a VAE and write checkpoint, history and figures",
                            description="Train a VAE; write into --out the checkpoint "
                            "(checkpoint.npz, saved after every epoch), the history "
                            "(history.json, history.csv), metrics.json and the figures.")
    data, model, objective, optimisation, output = (p.add_argument_group(title) for title in (
        "data", "model", "objective", "optimisation", "output"))
    data.add_argument("--dataset", default="auto", choices=datasets.DATASET_NAMES,
                      help="auto (default): full MNIST if it can be found or downloaded, else "
                      "the embedded 10,000-image subset (mnist-mini); fashion-mnist: "
                      "Zalando's clothes in MNIST's format (found in Debian's "
                      "/usr/share/datasets/fashion-mnist, else downloaded); digits: the "
                      "embedded 1,797 8x8 digits of scikit-learn, a full run in seconds")
    data.add_argument("--data-dir", help="folder holding the four MNIST IDX files (default: "
                      "$NUMVAE_DATA_DIR, else the cache folder downloads go to)")
    data.add_argument("--binarize", action="store_true",
                      help="dynamic binarisation: a fresh Bernoulli draw of each pixel every "
                      "epoch (default: grey levels)")
    data.add_argument("--val-size", type=nonnegative_int,
                      help="training images held out for validation (default: 5000 on mnist "
                      "and fashion-mnist, 1000 on mnist-mini, 200 on digits and toy)")
    model.add_argument("--latent-dim", type=width_option, default=2,
                       help="dimensions of the code z")
    model.add_argument("--shared-dim", type=width_option, default=128,
                       help="width of the encoder's shared layer, before the mean and log_var "
                       "heads")
    model.add_argument("--likelihood", choices=list(PARTS["likelihood"]), default="bernoulli",
                       help="p(x|z): bernoulli (grey levels as probabilities) or gaussian "
                       "(with --sigma)")
    model.add_argument("--sigma", type=sigma_option, default=1.0,
                       help="standard deviation of the Gaussian likelihood")
    model.add_argument("--activation", choices=list(ACTIVATIONS), default="relu",
                       help="the hidden layers' activation (default: relu, the slides')")
    model.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="mlp",
                       help="mlp (default): the slides' Dense layers; conv: two convolutions "
                       "down and two transposed convolutions up (square images)")
    model.add_argument("--posterior", choices=sorted(PARTS["posterior"]), default="diagonal_gaussian",
                       help="diagonal_gaussian (default, the slides'), iaf (an inverse "
                       "autoregressive flow after it) or point (a plain autoencoder, with "
                       "--objective reconstruction)")
    model.add_argument("--flow-steps", type=int_in(1, 100), default=1,
                       help="steps of the iaf posterior")
    add_widths_option(model, "--flow-hidden", (50,),
                      "hidden widths of each iaf step's MADE, with commas: 200,100")
    model.add_argument("--prior", choices=sorted(PARTS["prior"]), default="standard_normal",
                       help="standard_normal (default) or mixture (a learnt Gaussian mixture)")
    model.add_argument("--prior-components", type=int_in(1, 1000), default=10,
                       help="components of the mixture prior")
    model.add_argument("--conditional", action="store_true",
                       help="a conditional VAE: the one-hot label goes to the encoder and the "
                       "decoder")
    objective.add_argument("--objective", choices=sorted(PARTS["objective"]), default="elbo",
                           help="elbo (default); iwae, the importance-weighted bound (refuses "
                           "--kl-weight other than 1 and --kl-warmup-epochs); reconstruction, "
                           "the reconstruction error alone (a plain autoencoder, with "
                           "--posterior point); free_bits, the ELBO with a floor on each "
                           "dimension's KL (set by --free-bits)")
    objective.add_argument("--n-samples", type=int_in(1, 100_000), default=1,
                           help="samples of z per example in the training loss (K of the IWAE)")
    objective.add_argument("--kl-weight", type=nonnegative_float, default=1.0,
                           help="the KL term's weight in the ELBO (beta)")
    objective.add_argument("--kl-warmup-epochs", type=int_in(0, 100_000), default=0,
                           help="epochs over which the KL weight rises from 0 to --kl-weight")
    objective.add_argument("--free-bits", type=nonnegative_float, default=0.0, metavar="TAU",
                           help="free bits (Kingma et al. 2016): a floor TAU, in nats, on each "
                           "latent dimension's batch-averaged KL, below which the KL is not "
                           "pushed down (objective free_bits; needs the diagonal Gaussian "
                           "posterior and the standard normal prior; default 0: none)")
    objective.add_argument("--kl-schedule", choices=["constant", "cyclical"], default="constant",
                           help="the KL weight over training: constant (--kl-weight, after "
                           "--kl-warmup-epochs if given) or cyclical (Fu et al. 2019: from 0 to "
                           "--kl-weight over the first --kl-cycle-ramp of each cycle of "
                           "--kl-cycle-epochs epochs)")
    objective.add_argument("--kl-cycle-epochs", type=int_in(1, 100_000), metavar="N",
                           help="epochs per cycle of --kl-schedule cyclical (default 10)")
    objective.add_argument("--kl-cycle-ramp", type=float_in(0.0, 1.0, low_open=True),
                           metavar="FRACTION",
                           help="fraction of each cycle over which the KL weight rises "
                           "(default 0.5)")
    optimisation.add_argument("--epochs", type=epochs_option,
                              help="epochs, counted from the start of the run (default: 10 on "
                              "mnist and fashion-mnist, 30 on mnist-mini, 100 on digits, 50 on "
                              "toy)")
    optimisation.add_argument("--batch-size", type=width_option, default=128,
                              help="examples per step")
    optimisation.add_argument("--lr", type=lr_option, default=1e-3,
                              help="Adam's learning rate")
    optimisation.add_argument("--schedule", choices=sorted(SCHEDULES), default="constant",
                              help="learning-rate schedule relative to --lr (burda: 3^i epochs at "
                              "lr * 10^(-i/7), i = 0..7); a resumed run keeps its own")
    optimisation.add_argument("--seed", type=seed_option, default=0,
                              help="seeds the weights, the batches and every random draw")
    optimisation.add_argument("--processes", type=int, choices=(1, 2), default=1,
                              help="2: each step shared by two processes, half of the batch "
                              "each (the numbers of one process up to rounding; start it with "
                              "OPENBLAS_NUM_THREADS=1)")
    output.add_argument("--out", help="output folder (default: a new runs/<timestamp>); an "
                        "existing folder that holds files is refused unless --overwrite")
    output.add_argument("--overwrite", action="store_true",
                        help="replace the files of a previous run in --out")
    output.add_argument("--resume", metavar="CHECKPOINT",
                        help="continue the run saved in CHECKPOINT exactly where it stopped")
    output.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none when stderr is not a terminal)")
    output.add_argument("--no-plots", action="store_true", help="skip the figures")
    return p
