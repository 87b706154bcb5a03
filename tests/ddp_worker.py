"""Run under torchrun: train the toy task with DDP and save this rank's final weights."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy import META, ToyTask, make_model  # noqa: E402

from songkit.core.train import TrainConfig, dist_env, fit  # noqa: E402

out = Path(sys.argv[1])
model = make_model()
fit(model, ToyTask(batch_size=16), TrainConfig(epochs=3, lr=1e-2), out, META, device="cpu")
rank, world = dist_env()
torch.save(model.state_dict(), out / f"rank{rank}.pt")
