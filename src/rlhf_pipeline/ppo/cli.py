"""CLI stage of the PPO family: ``ppo`` (see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import PipelineError
from ..runs import PPORunConfig
from ..stage import CKPT_HELP, Record, arg, need_paths, read_prompts, stage


@stage("PPO (or GRPO, RLOO, online DPO: the run's optimizer) of the SFT policy against one proxy RM or an "
       "ensemble objective.", config=PPORunConfig, args=[
    arg("--policy", required=True, help="initial policy (SFT model dir)"),
    arg("--rm-dirs", nargs="+", required=True, help="proxy RM model dirs, one per rm_seeds entry, in order"),
    arg("--train-prompts", required=True, help="JSONL with 'prompt' (rollout prompts)"),
    arg("--eval-prompts", required=True, help="JSONL with 'prompt' (held-out eval prompts)"),
    arg("--out-dir", required=True, help="eval/, train_log.csv, model/, tb/"),
    arg("--ckpt-dir", required=True, help=CKPT_HELP),
])
def cmd_ppo(args, run: PPORunConfig) -> Record:
    from ..reward.ensemble import EnsembleReward
    from . import train_ppo

    if len(args.rm_dirs) != len(run.rm_seeds):
        raise PipelineError(f"--rm-dirs: {len(args.rm_dirs)} director(ies) for rm_seeds {run.rm_seeds}; "
                            "give one RM directory per member, in rm_seeds order")
    for d in args.rm_dirs:
        if not Path(d).is_dir():
            raise PipelineError(f"{d}: proxy RM not found (is that RM seed trained?)")
    need_paths(args.policy, args.train_prompts, args.eval_prompts)
    train_prompts = read_prompts(args.train_prompts)
    eval_prompts = read_prompts(args.eval_prompts, run.n_eval_prompts)
    reward = EnsembleReward(args.rm_dirs, objective=run.objective, uwo_weight=run.uwo_weight,
                            standardize=run.standardize, batch_size=run.reward_batch_size)
    run_info = {"reward": {k: v for k, v in run.to_dict().items() if k != "hparams"}, "rm_dirs": list(args.rm_dirs)}
    if run.optimizer == "ppo":
        summary = train_ppo(run.hparams, args.policy, reward, train_prompts, eval_prompts, args.out_dir,
                            args.ckpt_dir, run_info=run_info)
    else:
        from .trl_optim import train_trl

        summary = train_trl(run.optimizer, run.hparams, args.policy, reward, train_prompts, eval_prompts,
                            args.out_dir, args.ckpt_dir, run_info=run_info)
    return Record({**run.to_dict(), "rm_dirs": args.rm_dirs}, seed=run.hparams.seed,
                  extra={"last": summary.get("last"), "steps": summary.get("steps")})
