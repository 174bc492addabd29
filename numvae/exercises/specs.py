"""What the grader knows about each exercise function: its inputs, its outputs, and how to
check its gradient by finite differences of the student's own forward.

A ``Spec`` has
* ``cases(rng)``: a list of ``Case``s, the inputs (float64, several shapes, non-square
  weights, extreme values where the task asks for stability);
* ``outputs``: the names of the returned values, in order ("dict" for a returned dict);
* ``forward``/``fd``: for a backward, the name of the forward it differentiates and
  ``fd(forward, case) -> (f, arrays)``: the scalar f() whose gradient with respect to
  ``arrays[name]`` is the output ``name``;
* ``call``: how to call the function and name its outputs (default: positionally);
* ``overflow_hint``: the hint for a non-finite result where numvae's is finite.
"""
from collections import namedtuple

import numpy as np

from numvae.model.vae import VAE
from numvae.nn.layers import sigmoid

# args: dict in the signature's order; extra: what else the checks need, and "hint": the
# mistake to suspect when only these (extreme) inputs fail; text: the inputs, for messages
Case = namedtuple("Case", "args extra text")


class Wrong(Exception):
    """The student's result is wrong: ``text`` says how, ``hint`` names a classic mistake."""

    def __init__(self, text, hint=None):
        super().__init__(text)
        self.text, self.hint = text, hint


def call_positionally(fn, case):
    """fn(*args) in the signature's order: students name their parameters as they like."""
    return fn(*case.args.values())


# rtol: "equal" for this function (the capstone's 50 steps of training: 1e-9)
Spec = namedtuple("Spec", "outputs cases forward fd call overflow_hint rtol",
                  defaults=(None, None, call_positionally, "not_finite", 1e-7))


def _case(text, extra=None, **args):
    return Case(args, extra or {}, text)


# --- inputs -----------------------------------------------------------------------------

def _dense_cases(rng, with_dy):
    cases = []
    for batch, n_in, n_out in [(3, 4, 5), (1, 6, 2), (5, 3, 3)]:  # non-square, batch 1
        x, W = rng.normal(size=(batch, n_in)), rng.normal(size=(n_in, n_out))
        b, dy = rng.normal(size=n_out), rng.normal(size=(batch, n_out))
        text = f"x {x.shape}, W {W.shape}"
        cases.append(_case(text, {"b": b}, dy=dy, x=x, W=W) if with_dy
                     else _case(text, x=x, W=W, b=b))
    return cases


def _elementwise_cases(rng, first, second, make_second):
    return [_case(f"{first}, {second} {shape}", **{first: rng.normal(size=shape),
                                                   second: make_second(rng.normal(size=shape))})
            for shape in [(3, 4), (1, 7), (6, 2)]]


def _latent_cases(rng, with_eps=True, with_dz=False, log_var_scale=1.0):
    cases = []
    for shape in [(4, 3), (1, 2), (6, 5)]:
        args = dict(mean=rng.normal(size=shape), log_var=log_var_scale * rng.normal(size=shape))
        if with_eps:
            args["eps"] = rng.normal(size=shape)
        if with_dz:
            args = dict(dz=rng.normal(size=shape), **args)
        cases.append(Case(args, {}, f"mean, log_var {shape}"))
    return cases


def _bernoulli_cases(rng):
    cases = []
    for shape, extreme in [((4, 7), False), ((3, 6), True), ((1, 5), True)]:
        logits, x = 3 * rng.normal(size=shape), rng.uniform(size=shape)
        if extreme:  # the task: finite for logits of +-1000, with binary and grey x
            logits[:, :2] = [1000.0, -1000.0]
            x[:, 0] = rng.integers(0, 2, size=shape[0])
        cases.append(_case(f"logits {shape}" + (" with +-1000" if extreme else ""),
                           {"hint": "softplus"} if extreme else None, logits=logits, x=x))
    return cases


def vae_params(rng, sizes):
    """Parameters of a small slides'-shaped VAE (float64, numvae's names), moved away from
    their initial values so that no gradient is trivially small."""
    input_dim, hidden, shared, latent, h1, h2 = sizes
    model = VAE(input_dim, shared, latent, encoder_hidden=(hidden,), decoder_hidden=(h1, h2),
                dtype=np.float64, seed=int(rng.integers(1 << 30)))
    return {name: value + 0.2 * rng.normal(size=value.shape)
            for name, value in model.params.items()}


def _vae_cases(rng, with_eps=True):
    cases = []
    for batch, sizes in [(4, (12, 9, 7, 3, 5, 8)), (1, (6, 5, 4, 2, 3, 7))]:
        input_dim, latent = sizes[0], sizes[3]
        args = dict(x=rng.uniform(size=(batch, input_dim)), params=vae_params(rng, sizes))
        if with_eps:
            args["eps"] = rng.normal(size=(batch, latent))
        cases.append(Case(args, {}, f"x ({batch}, {input_dim}), latent_dim {latent}"))
    return cases


def _loss_fn_cases(rng):
    cases = []
    for (batch, n, latent), kl_weight in [((4, 6, 3), 1.0), ((2, 5, 2), 0.5), ((3, 4, 4), 2.5)]:
        cases.append(_case(f"prediction ({batch}, {n}), kl_weight {kl_weight}",
                           prediction=rng.uniform(size=(batch, n)),
                           target=rng.uniform(size=(batch, n)),
                           mean=rng.normal(size=(batch, latent)),
                           log_var=rng.normal(size=(batch, latent)), kl_weight=kl_weight))
    return cases


def _adam_cases(rng):
    cases = []
    for shape, t, hyper in [((3, 4), 1, (1e-3, 0.9, 0.999, 1e-8)),
                            ((5,), 3, (1e-2, 0.8, 0.99, 1e-6)),
                            ((2, 3), 10_000, (1e-3, 0.9, 0.999, 1e-8))]:
        first = t == 1  # moments start at 0
        m = np.zeros(shape) if first else 0.1 * rng.normal(size=shape)
        v = np.zeros(shape) if first else rng.uniform(0.001, 0.01, size=shape)
        lr, beta1, beta2, eps = hyper
        cases.append(_case(f"param {shape}, t = {t}, lr = {lr}", param=rng.normal(size=shape),
                           grad=rng.normal(size=shape), m=m, v=v, t=t, lr=lr, beta1=beta1,
                           beta2=beta2, eps=eps))
    return cases


def _iwae_cases(rng):
    return [_case("log_weights (4, 5)", log_weights=3 * rng.normal(size=(4, 5))),
            _case("log_weights (3, 10) near -10,000", {"hint": "lse_overflow"},
                  log_weights=-10_000 + rng.normal(size=(3, 10))),
            _case("log_weights (2, 3) near +1,000", {"hint": "lse_overflow"},
                  log_weights=1_000 + rng.normal(size=(2, 3))),
            _case("log_weights (2, 1), K = 1", log_weights=rng.normal(size=(2, 1))),
            # rows of very different scales: a maximum taken over the whole batch fails
            _case("log_weights (2, 5): one row near -1, one near -10,000",
                  {"hint": "lse_global_max"},
                  log_weights=np.array([[-1.0], [-10_000.0]]) + rng.normal(size=(2, 5)))]


def _gaussian_cases(rng):
    """Three values of sigma (one below 1, where sigma and sigma^2 differ the other way)."""
    return [_case(f"prediction {shape}, sigma {sigma}", prediction=rng.uniform(size=shape),
                  x=rng.uniform(size=shape), sigma=sigma)
            for shape, sigma in [((4, 6), 1.0), ((2, 5), 0.3), ((3, 3), 2.0)]]


CAPSTONE = dict(steps=50, batch_size=128, lr=1e-3, seed=12)


def capstone_inputs(steps, batch_size, seed):
    """The capstone's inputs: the first steps x batch_size images of mnist-mini (float64),
    the slides' VAE's initial parameters (float64, numvae's names), the examples of each
    step's batch (steps, batch_size) and the eps of every step (steps, batch_size, 2)."""
    from numvae.io.datasets import load_mnist_mini  # late: only a capstone file needs it
    rng = np.random.default_rng(seed)
    images = load_mnist_mini()[0].images[: steps * batch_size].astype(np.float64)
    model = VAE(784, 128, 2, dtype=np.float64, seed=seed)
    params = {name: value.copy() for name, value in model.params.items()}
    order = rng.permutation(len(images)).reshape(steps, batch_size)
    eps = rng.standard_normal((steps, batch_size, 2))
    return images, params, order, eps


def _capstone_cases(rng):
    images, params, order, eps = capstone_inputs(CAPSTONE["steps"], CAPSTONE["batch_size"],
                                                 CAPSTONE["seed"])
    return [_case(f"{CAPSTONE['steps']} steps of batch {CAPSTONE['batch_size']} on mnist-mini, "
                  f"float64", x=images, params=params, order=order, eps=eps, lr=CAPSTONE["lr"])]


# --- calls ------------------------------------------------------------------------------

def call_loss_and_grad(fn, case):
    """(loss, grads) -> a dict {"loss": loss, "grads[<name>]": gradient, ...}, the gradients
    in the order of the backward pass (decoder's last layer first), so that the first wrong
    one the grader reports is where the student's backward pass goes wrong."""
    out = fn(*case.args.values())
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise Wrong(f"should return (loss, grads) with grads a dict; got {type(out).__name__}")
    loss, grads = out
    return {"loss": loss, **{f"grads[{name}]": grads.get(name)
                             for name in reversed(list(case.args["params"]))}}


def call_in_place(fn, case):
    """Call adam_step on copies of param, m, v; the results are the step taken,
    ``param_after - param_before``, and m, v after the call (compared as they are, a step of
    1e-3 would hide its own errors behind the rounding of a param of size 1)."""
    state = {name: case.args[name].copy() for name in ("param", "m", "v")}
    fn(*dict(case.args, **state).values())
    unchanged = [name for name in state if np.array_equal(state[name], case.args[name])]
    if unchanged:
        raise Wrong(f"{', '.join(unchanged)} unchanged after the call", "in_place")
    return {"the step (param after - param before)": state["param"] - case.args["param"],
            "m": state["m"], "v": state["v"]}


# --- finite differences of the student's forward ----------------------------------------

def _fd_dense(forward, case):
    x, W, b, dy = (case.args["x"].copy(), case.args["W"].copy(), case.extra["b"].copy(),
                   case.args["dy"])
    return (lambda: np.sum(forward(x, W, b) * dy)), {"dx": x, "dW": W, "db": b}


def _fd_reparameterise(forward, case):
    mean, log_var, eps, dz = (case.args[k].copy() for k in ("mean", "log_var", "eps", "dz"))
    return (lambda: np.sum(forward(mean, log_var, eps) * dz)), {"dmean": mean, "dlog_var": log_var}


def _fd_kl(forward, case):
    mean, log_var = case.args["mean"].copy(), case.args["log_var"].copy()
    return (lambda: np.sum(forward(mean, log_var))), {"dmean": mean, "dlog_var": log_var}


def _fd_bernoulli(forward, case):
    logits, x = case.args["logits"].copy(), case.args["x"]
    return (lambda: np.sum(forward(logits, x))), {"dlogits": logits}


def _fd_vae(forward, case):
    params = {name: value.copy() for name, value in case.args["params"].items()}
    x, eps = case.args["x"], case.args["eps"]
    return ((lambda: forward(x, params, eps)[0]),  # the backward pass's order, as in the call
            {f"grads[{name}]": params[name] for name in reversed(list(params))})


def _fd_gaussian(forward, case):
    prediction, x, sigma = case.args["prediction"].copy(), case.args["x"], case.args["sigma"]
    return (lambda: np.sum(forward(prediction, x, sigma))), {"dprediction": prediction}


def call_capstone(fn, case):
    """train_my_vae(x, params, order, eps, lr) -> its losses, one per step, as an array."""
    losses = fn(*case.args.values())
    if losses is None:
        raise Wrong("should return the list of the losses, one per step; got None")
    return np.asarray(losses, dtype=np.float64)


def shape_hint(function, name, shape, case):
    """The hint for a result of the wrong shape, if there is a classic one."""
    if function == "dense_backward" and name == "dW" and shape == case.args["W"].T.shape:
        return "dW_transposed"
    if function == "dense_backward" and name == "db" and len(shape) == 2:
        return "db_not_summed"
    return None


SPECS = {
    "dense_forward": Spec(("y",), lambda rng: _dense_cases(rng, False)),
    "dense_backward": Spec(("dx", "dW", "db"), lambda rng: _dense_cases(rng, True),
                           "dense_forward", _fd_dense),
    "relu_backward": Spec(("dx",), lambda rng: _elementwise_cases(rng, "dy", "x", lambda a: a)),
    "sigmoid_backward": Spec(("dx",), lambda rng: _elementwise_cases(rng, "dy", "y", sigmoid)),
    "encoder_forward": Spec(("mean", "log_var"), lambda rng: _vae_cases(rng, with_eps=False)),
    "reparameterise": Spec(("z",), _latent_cases),
    "reparameterise_backward": Spec(("dmean", "dlog_var"),
                                    lambda rng: _latent_cases(rng, with_dz=True),
                                    "reparameterise", _fd_reparameterise),
    "kl_divergence": Spec(("kl",), lambda rng: _latent_cases(rng, False, log_var_scale=1.5)),
    "kl_divergence_backward": Spec(("dmean", "dlog_var"),
                                   lambda rng: _latent_cases(rng, False, log_var_scale=1.5),
                                   "kl_divergence", _fd_kl),
    "bernoulli_nll": Spec(("nll",), _bernoulli_cases, overflow_hint="softplus"),
    "bernoulli_nll_backward": Spec(("dlogits",), _bernoulli_cases, "bernoulli_nll", _fd_bernoulli),
    "vae_forward": Spec("dict", _vae_cases),
    "loss_fn": Spec(("loss",), _loss_fn_cases),
    "vae_loss_and_grad": Spec("dict", _vae_cases, "vae_loss_and_grad", _fd_vae,
                              call_loss_and_grad),
    "adam_step": Spec("dict", _adam_cases, call=call_in_place),
    "iwae_bound": Spec(("bound",), _iwae_cases, overflow_hint="lse_overflow"),
    "gaussian_nll": Spec(("nll",), _gaussian_cases),
    "gaussian_nll_backward": Spec(("dprediction",), _gaussian_cases, "gaussian_nll", _fd_gaussian),
    "train_my_vae": Spec(("losses",), _capstone_cases, call=call_capstone, rtol=1e-9),
}
