"""Burda, Grosse & Salakhutdinov (2016), Table 1 (MNIST, after 3,280 epochs): the figures
numvae's rows are set beside, in one place. Keys: (stochastic layers, model, k)."""

# test NLL in nats, K = 5000
NLL = {(1, "vae", 1): 86.76, (1, "vae", 5): 86.47, (1, "vae", 50): 86.35,
       (1, "iwae", 5): 85.54, (1, "iwae", 50): 84.78,
       (2, "vae", 1): 85.33, (2, "vae", 5): 85.01, (2, "vae", 50): 84.78,
       (2, "iwae", 5): 83.89, (2, "iwae", 50): 82.90}
# active units (Cov_x E_q[u] > 1e-2), one number per stochastic layer, z1 first; from the
# paper's Table 1 as we recall it (the stored copies of the paper stop before the table)
ACTIVE = {(1, "vae", 1): "19", (1, "vae", 5): "20", (1, "vae", 50): "20",
          (1, "iwae", 5): "22", (1, "iwae", 50): "25",
          (2, "vae", 1): "16+5", (2, "vae", 5): "17+5", (2, "vae", 50): "17+5",
          (2, "iwae", 5): "21+5", (2, "iwae", 50): "26+7"}


def row_key(args):
    """(layers, model, k) of a row's arguments (results.json's "args"), or None for a row
    the paper has no counterpart of (a flow posterior)."""
    if args["posterior"] != "diagonal_gaussian":
        return None
    key = (args.get("layers", 1), args["model"], args["k"])
    return key if key in NLL else None
