"""One mapping from a config section to TRL's trainer configs (src/rlhf_pipeline/trl_args.py): for the demo
settings (config/config.yaml), the SFT, reward-model and debater-DPO trainer configs equal TRL configs
written out by hand, keyword by keyword, as the trainers configured them before the mapping was shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import trl

from rlhf_pipeline.ad.config import ADModelConfig
from rlhf_pipeline.debate.training import dpo_trainer_config
from rlhf_pipeline.reward.train import reward_trainer_config
from rlhf_pipeline.sft import SFTConfig, sft_trainer_config
from rlhf_pipeline.trl_args import training_args
from rlhf_pipeline.workflow_config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
NO_CKPT = {"save_strategy": "no", "report_to": [], "dataloader_num_workers": 0, "disable_tqdm": False}


@pytest.fixture(scope="module")
def demo():
    return resolve_config([], {}, ROOT, check_paths=False)[0]


def test_sft_config_of_the_demo(demo, tmp_path):
    assert sft_trainer_config(demo.sft, None, tmp_path) == trl.SFTConfig(
        output_dir=str(tmp_path), **NO_CKPT, seed=0, data_seed=0, num_train_epochs=3.0, learning_rate=3e-3,
        per_device_train_batch_size=16, per_device_eval_batch_size=16, gradient_accumulation_steps=1, max_length=64,
        bf16=False, lr_scheduler_type="linear", warmup_steps=0.05, logging_steps=10, eval_strategy="epoch",
        completion_only_loss=True)


def test_reward_config_of_the_demo(demo, tmp_path):
    # member seed 2 (not a setting of rm), 1000 training pairs: 1000 // 32 // 4 = 7 steps per log line
    assert reward_trainer_config(demo.rm, 2, 1000, None, tmp_path) == trl.RewardConfig(
        output_dir=str(tmp_path), **NO_CKPT, seed=2, data_seed=2, num_train_epochs=1.0, learning_rate=1e-4,
        per_device_train_batch_size=32, max_length=64, bf16=False, activation_checkpointing=False,
        eval_strategy="no", logging_steps=7, dataloader_pin_memory=torch.cuda.is_available())
    ckpt = tmp_path / "ckpt"
    assert reward_trainer_config(demo.rm, 2, 1000, ckpt, tmp_path) == trl.RewardConfig(
        output_dir=str(ckpt), save_strategy="steps", save_steps=0.1, save_total_limit=2, report_to=[],
        dataloader_num_workers=0, disable_tqdm=False, seed=2, data_seed=2, num_train_epochs=1.0, learning_rate=1e-4,
        per_device_train_batch_size=32, max_length=64, bf16=False, activation_checkpointing=False,
        eval_strategy="no", logging_steps=7, dataloader_pin_memory=torch.cuda.is_available())


def test_dpo_config_of_the_demo(demo, tmp_path):
    dpo = demo.debate.training.dpo
    assert dpo_trainer_config(dpo, None, tmp_path) == trl.DPOConfig(
        output_dir=str(tmp_path), **NO_CKPT, seed=0, data_seed=0, beta=0.1, loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, 1.0], num_train_epochs=4.0, learning_rate=1e-3, per_device_train_batch_size=8,
        gradient_accumulation_steps=1, max_length=320, bf16=False, lr_scheduler_type="linear", logging_steps=5)
    no_nll = type(dpo).from_dict({**dpo.to_dict(), "nll_weight": 0.0})
    assert dpo_trainer_config(no_nll, None, tmp_path).loss_type == ["sigmoid"]
    assert dpo_trainer_config(no_nll, None, tmp_path).loss_weights is None


def test_training_args_maps_the_settings_a_section_has(tmp_path):
    sft = SFTConfig(epochs=2, learning_rate=0.5, batch_size=3, grad_accum=4, max_length=9, bf16=True, seed=7)
    assert training_args(sft, None, tmp_path) == {
        "output_dir": str(tmp_path), **NO_CKPT, "seed": 7, "data_seed": 7, "num_train_epochs": 2,
        "learning_rate": 0.5, "per_device_train_batch_size": 3, "gradient_accumulation_steps": 4, "max_length": 9,
        "bf16": torch.cuda.is_available(), "lr_scheduler_type": "linear"}  # bf16 only on a GPU
    assert training_args(sft, None, tmp_path, seed=11)["data_seed"] == 11
    # the AD LM's section has no grad_accum, max_length or bf16: TRL's defaults, and float32
    ad = training_args(ADModelConfig(), None, tmp_path)
    assert not {"gradient_accumulation_steps", "max_length"} & set(ad) and ad["bf16"] is False
