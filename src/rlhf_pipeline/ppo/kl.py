"""KL estimators (Schulman's k1, k3) and the KL-coefficient controllers of Ziegler et al. 2019."""

from __future__ import annotations

import torch


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k1 = log pi(x) - log pi_ref(x) per sampled token (unbiased, can be negative)."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 = (r - 1) - log r with r = pi_ref(x) / pi(x) per sampled token (unbiased, >= 0)."""
    log_r = ref_logprobs - logprobs
    return torch.expm1(log_r) - log_r


class FixedKLController:
    """beta stays at its initial value."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. 2019: beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon).

    ``current_kl`` is the batch's mean per-sequence KL, ``n_steps`` the episodes in that batch.
    """

    def __init__(self, kl_coef: float, target: float, horizon: int):
        super().__init__(kl_coef)
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon


def make_kl_controller(kl_coef: float, adaptive: bool, target: float, horizon: int):
    """The controller a PPOConfig asks for."""
    return AdaptiveKLController(kl_coef, target, horizon) if adaptive else FixedKLController(kl_coef)
