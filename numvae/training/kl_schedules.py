"""Schedules of the KL weight for ``numvae.training.loop.fit``: one class per schedule, one
registry. A schedule maps the optimisation step t (1-based, counted over the whole run) to
a factor of the model's KL weight beta: the step's weight is beta * factor(t).

* ``Constant``: 1 throughout (beta as set);
* ``LinearWarmup``: from 0 to 1 over the first epochs (``fit``'s ``kl_warmup_epochs``);
* ``Cyclical``: the warm-up repeated (Fu et al. 2019), eq. KA1.

Any object with ``factor(step, steps_per_epoch)`` and ``settings()`` will do. The weight
only scales the KL term, so the gradient at step t is (V1)'s with beta_t in place of beta:
the parameters' gradient of D + beta_t R is dD + beta_t dR (eq. KA1).
"""
from numvae.validation import check_positive_float, check_positive_int


class Constant:
    """The KL weight beta throughout."""
    name = "constant"

    def factor(self, step, steps_per_epoch):
        return 1.0

    def settings(self):
        return {"name": self.name}


class LinearWarmup:
    """From 0 to 1 linearly over ``warmup_epochs`` epochs, step by step, then 1 (Bowman et
    al. 2016; the same as ``fit(kl_warmup_epochs=...)``)."""
    name = "warmup"

    def __init__(self, warmup_epochs):
        self.warmup_epochs = check_positive_int(warmup_epochs, "warmup_epochs")

    def factor(self, step, steps_per_epoch):
        return min(1.0, step / (self.warmup_epochs * steps_per_epoch))

    def settings(self):
        return {"name": self.name, "warmup_epochs": self.warmup_epochs}


class Cyclical:
    """Cyclical annealing (Fu, Li, Liu, Gao, Celikyilmaz & Carin 2019, eq. 6), eq. KA1:
    cycles of ``cycle_epochs`` epochs (Theta steps each); within a cycle, with position
    u_t = ((t - 1) mod Theta) / Theta in [0, 1), the factor rises linearly over the first
    fraction ``ramp`` (chi) of the cycle and stays at 1 for the rest:

        factor(t) = min(1, u_t / chi).

    Each cycle restarts at 0: the encoder learns to use z while the KL costs little, and
    keeps what it learnt when the weight returns.
    """
    name = "cyclical"

    def __init__(self, cycle_epochs, ramp=0.5):
        self.cycle_epochs = check_positive_int(cycle_epochs, "cycle_epochs")
        self.ramp = check_positive_float(ramp, "ramp")
        if self.ramp > 1.0:
            raise ValueError(f"ramp must be in (0, 1], the fraction of a cycle over which the "
                             f"weight rises; got {ramp!r}")

    def factor(self, step, steps_per_epoch):
        period = self.cycle_epochs * steps_per_epoch
        position = ((step - 1) % period) / period                     # u_t in [0, 1)
        return min(1.0, position / self.ramp)

    def settings(self):
        return {"name": self.name, "cycle_epochs": self.cycle_epochs, "ramp": self.ramp}


KL_SCHEDULES = {part.name: part for part in (Constant, LinearWarmup, Cyclical)}


def kl_schedule_from_settings(settings):
    """A schedule from its ``settings()`` (a checkpoint's, the command line's); None: None."""
    if settings is None:
        return None
    if not isinstance(settings, dict) or settings.get("name") not in KL_SCHEDULES:
        raise ValueError(f"kl_schedule must be a JSON object whose 'name' is one of "
                         f"{', '.join(repr(k) for k in KL_SCHEDULES)}; got {settings!r}")
    arguments = {key: value for key, value in settings.items() if key != "name"}
    try:
        return KL_SCHEDULES[settings["name"]](**arguments)
    except TypeError:
        raise ValueError(f"kl_schedule {settings['name']!r}: unexpected settings "
                         f"{sorted(arguments)}") from None
