"""LoRA adapter settings shared by every stage that can train adapters (SFT, PPO)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Section, setting


@dataclass
class LoraSettings(Section):
    """PEFT LoRA adapter settings (used by SFT and PPO)."""

    section = "lora"

    enabled: bool = setting(False, help="Train LoRA adapters instead of all weights.")
    r: int = setting(16, ge=1, help="Adapter rank.")
    alpha: int = setting(32, ge=1, help="LoRA scaling numerator (lora_alpha).")
    dropout: float = setting(0.05, ge=0, le=1, help="Dropout on the adapter input.")
    target_modules: list[str] | None = setting(None, help="Module names to adapt; null lets PEFT pick the "
                                               "architecture's defaults.")

    def peft_config(self, task_type: str = "CAUSAL_LM"):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type=task_type)


@dataclass
class PPOLoraSettings(LoraSettings):
    """As :class:`LoraSettings`, but adapter dropout defaults to 0 (PPO wants dropout off; the
    reference model is then the base model with the adapters disabled)."""

    dropout: float = setting(0.0, ge=0, le=1, help="Dropout on the adapter input (0: PPO wants dropout off).")
