"""LoRA adapter settings shared by every stage that can train adapters (SFT, PPO)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoraSettings:
    """PEFT LoRA adapter settings (used by SFT and PPO)."""

    enabled: bool = False
    """Train LoRA adapters instead of all weights."""
    r: int = 16
    """Adapter rank."""
    alpha: int = 32
    """LoRA scaling numerator (``lora_alpha``)."""
    dropout: float = 0.05
    """Dropout on the adapter input."""
    target_modules: list[str] | None = None
    """Module names to adapt; ``None`` lets PEFT pick the architecture's defaults."""

    def peft_config(self, task_type: str = "CAUSAL_LM"):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type=task_type)
