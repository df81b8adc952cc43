"""KL coefficient controllers for the penalty against the frozen reference policy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FixedKLController:
    """A constant ``kl_coef``.

    >>> c = FixedKLController(0.1); c.update(kl=5.0, n_steps=100); c.value
    0.1
    """

    value: float

    def update(self, kl: float, n_steps: int) -> None:
        """Nothing to adapt."""


@dataclass
class AdaptiveKLController:
    """Move ``kl_coef`` so the per-episode KL tracks ``target`` (Ziegler et al. 2019, sec. 2.2).

    ``coef <- coef * (1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon)``.

    >>> c = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    >>> c.update(kl=12.0, n_steps=500); round(c.value, 4)  # KL too high: the penalty grows
    0.11
    >>> c.update(kl=1.0, n_steps=500); round(c.value, 4)  # KL too low: it shrinks
    0.099
    """

    value: float
    target: float
    horizon: int = 10_000

    def __post_init__(self) -> None:
        if not self.target > 0 or not self.horizon > 0:
            raise ValueError(f"kl_target and kl_horizon must be > 0, got {self.target}, {self.horizon}")

    def update(self, kl: float, n_steps: int) -> None:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl_controller(kl_coef: float, kl_target: float | None, kl_horizon: int):
    """Fixed when ``kl_target`` is None, else adaptive."""
    if not kl_coef >= 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if kl_target is None:
        return FixedKLController(float(kl_coef))
    return AdaptiveKLController(float(kl_coef), float(kl_target), int(kl_horizon))
