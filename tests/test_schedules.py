"""numvae.training.schedules: each schedule's factor by epoch, the registry, and the rate
``fit`` sets from it (the resumed run's schedule is tested with ``fit`` in test_iwae.py)."""
import numpy as np
import pytest

from numvae.training.schedules import SCHEDULES, Burda, Constant, learning_rate


def test_constant_keeps_the_base_rate():
    assert [Constant().factor(epoch) for epoch in (0, 1, 10**6)] == [1.0, 1.0, 1.0]
    assert learning_rate("constant", 3e-4, 99) == 3e-4


def test_burda_stages_last_three_to_the_i_epochs():
    burda = Burda()
    assert Burda.stage_ends(3) == [1, 4, 13]
    stages = [burda.stage(epoch) for epoch in range(14)]
    assert stages == [0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3]  # 1, 3 and 9 epochs
    assert burda.stage(3279) == 7 and burda.stage(10**5) == 7   # the last rate stays
    np.testing.assert_allclose(burda.factor(4), 10 ** (-2 / 7), rtol=1e-15)


def test_the_registry_names_each_schedule():
    assert SCHEDULES == {"constant": Constant, "burda": Burda}


@pytest.mark.parametrize("base_lr", [0.0, -1e-3, float("nan")])
def test_a_bad_base_rate_is_refused(base_lr):
    with pytest.raises(ValueError, match="base_lr"):
        learning_rate("burda", base_lr, 0)


def test_burda_schedule():
    assert Burda.stage_ends() == [1, 4, 13, 40, 121, 364, 1093, 3280]
    rates = [learning_rate("burda", 1e-3, epoch) for epoch in (0, 1, 3, 4, 3279, 4000)]
    expected = [1e-3, 1e-3 * 10 ** (-1 / 7), 1e-3 * 10 ** (-1 / 7), 1e-3 * 10 ** (-2 / 7),
                1e-4, 1e-4]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="schedule must be one of"):
        learning_rate("cosine!", 1e-3, 0)
