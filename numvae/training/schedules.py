"""Learning-rate schedules for ``numvae.training.loop.fit``: one class per schedule, one registry.

A schedule maps the epoch (0-based) to the learning rate, as a multiple of the run's
base rate (the optimiser's ``lr`` when training starts). ``fit`` sets ``optimizer.lr``
at the start of every epoch and stores the schedule's name and the base rate in the
training state, so that a resumed run follows the same schedule.

A new schedule is one class here plus one entry in ``SCHEDULES``.
"""
from numvae.validation import check_positive_float


class Constant:
    """The base rate throughout."""
    name = "constant"

    def factor(self, epoch):
        return 1.0


class Burda:
    """Burda, Grosse & Salakhutdinov (2016), section 5: stage i = 0..7 lasts 3^i epochs at
    lr = base * 10^(-i/7) (base 1e-3 in the paper), 3,280 epochs in all; the last rate
    stays after that."""
    name = "burda"
    n_stages = 8

    @staticmethod
    def stage_ends(n_stages=8):
        """The epoch at which each of the first ``n_stages`` stages ends: 1, 4, 13, 40, 121, ..."""
        ends, total = [], 0
        for i in range(n_stages):
            total += 3 ** i
            ends.append(total)
        return ends

    def stage(self, epoch):
        """The stage (0..7) of the 0-based ``epoch``."""
        for i, end in enumerate(self.stage_ends(self.n_stages)):
            if epoch < end:
                return i
        return self.n_stages - 1

    def factor(self, epoch):
        return 10.0 ** (-self.stage(epoch) / 7.0)


SCHEDULES = {part.name: part for part in (Constant, Burda)}


def learning_rate(name, base_lr, epoch):
    """The learning rate of schedule ``name`` at the 0-based ``epoch`` for base rate ``base_lr``."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(repr(k) for k in SCHEDULES)}; "
                         f"got {name!r}")
    return check_positive_float(base_lr, "base_lr") * SCHEDULES[name]().factor(epoch)
