#!/usr/bin/env python
"""Split one run's trajectory log into two disjoint sets of streams (by batch index): a stand-in for held-out
histories when only one PPO run exists. Same policy, so this is held-out episodes, not a held-out run."""
import json
import sys
from pathlib import Path

import pyarrow as pa

from rlhf_pipeline.ppo.trajectories import chunk_files, chunk_steps, read_trajectories, write_chunk

src, out, cut = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
info = json.loads((src / "_run.json").read_text())
bs = int(info["hparams"]["batch_size"])
for name, lo, hi in (("train", 0, cut), ("heldout", cut, bs)):
    d = out / name / "trajectories"
    d.mkdir(parents=True, exist_ok=True)
    whole = read_trajectories(src)  # every chunk verified
    for f in chunk_files(src):
        first, last = chunk_steps(f)
        t = whole[(whole["step"] >= first) & (whole["step"] <= last)]
        t = t[(t["batch_index"] >= lo) & (t["batch_index"] < hi)].copy()
        t["batch_index"] -= lo
        write_chunk(pa.Table.from_pandas(t, preserve_index=False), d / f.name, str(info.get("run", src.parent.name)))
    (d / "_run.json").write_text(json.dumps({**info, "hparams": {**info["hparams"], "batch_size": hi - lo}}))
    print(name, hi - lo)
