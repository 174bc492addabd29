"""``numvae evaluate``: test-set negative ELBO, KL per dimension, active units, what the
latent code holds (rate, distortion, mutual information, marginal KL) and the
importance-weighted estimate of log p(x)."""
from numvae.commands.common import (
    add_data_options,
    has_elbo,
    open_checkpoint,
    positive_int,
    result_line,
    samples_option,
    test_data,
)
from numvae.diagnostics import evaluate
from numvae.diagnostics.latent_info import format_latent_information, latent_information


def add_parser(commands):
    p = commands.add_parser("evaluate",
                            help="test-set negative ELBO and importance-weighted log p(x)",
                            description="Evaluate CHECKPOINT's model on the test images of "
                            "the data set it was trained on: the negative ELBO with its "
                            "reconstruction and KL parts, the KL per latent dimension, the "
                            "active units and the importance-weighted estimate of log p(x).")
    p.add_argument("checkpoint", help="a checkpoint written by numvae train or import")
    p.add_argument("--iwae-k", type=samples_option, default=100,
                   help="importance samples K (0: skip; default 100)")
    p.add_argument("--n", type=positive_int, help="evaluate only the first N test images")
    p.add_argument("--info-n", type=positive_int, default=1000,
                   help="images in the subset for the mutual information I_q (default 1000; "
                   "its estimate cannot exceed log of this number)")
    add_data_options(p)
    return p


def run(args):
    checkpoint = open_checkpoint(args.checkpoint, args.max_memory)
    model, data = checkpoint.model, test_data(checkpoint, args)
    images = data.images[: args.n] if args.n else data.images
    labels = data.labels[: len(images)]                 # read by a conditional model only
    result = evaluate.evaluate_elbo(model, images, labels=labels)
    print(result_line(model, result, where=f"{len(images)} test images:"))
    # a Monte Carlo KL (a mixture prior) has no split by dimension: NaN, shown as "n/a"
    per_dim = " ".join("n/a" if v != v else f"{v:.3f}" for v in result["kl_per_dim"])
    if hasattr(model, "expected_latents"):  # two stochastic layers: each its active units
        layers = evaluate.active_units_per_layer(model, images)
        print(f"KL per latent dimension of z2, the top layer (analytic): {per_dim}")
        print("active units (Var_x E_q[z|x] > 0.01): " + ", ".join(
            f"{layers[name][0]} of {len(layers[name][1])} in {name}" for name in ("z1", "z2")))
    else:
        n_active, _ = evaluate.active_units(model, images, labels=labels)
        active = f"{n_active} of {model.latent_dim} active units: Var_x E_q[z|x] > 0.01"
        if not has_elbo(model):  # no KL at all, not a KL of 0 in every dimension
            print(f"{active} (an autoencoder has no KL per latent dimension)")
        else:
            print(f"KL per latent dimension: {per_dim}  ({active})")
    if hasattr(model, "expected_latents"):
        print("rate, distortion, I_q: not measured for two stochastic layers (the aggregate "
              "posterior of z1 needs q(z1|x, z2))")
    else:
        info = latent_information(model, images, labels=labels, n_images=args.info_n)
        print(f"first {info['n_images']} of them: {format_latent_information(info)}")
    if args.iwae_k and not has_elbo(model):
        print("importance-weighted log p(x): not defined, the posterior is a point mass "
              "(an autoencoder); skipped")
    elif args.iwae_k:
        iwae = evaluate.iwae_log_likelihood(model, images, labels=labels, k=args.iwae_k)
        print(f"importance-weighted log p(x), K={args.iwae_k}: {iwae['log_px']:.2f} +- "
              f"{iwae['log_px_se']:.2f} nats (ELBO: {-result['loss']:.2f})")
    return 0
