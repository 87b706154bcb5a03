"""Run under torchrun: train the toy task with DDP (DataLoader + DistributedSampler) and save this rank's weights."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy import META, Keep, ToyTask  # noqa: E402

from songkit.core.train import TrainConfig, dist_env, fit  # noqa: E402

out = Path(sys.argv[1])
built = Keep()
fit(built, ToyTask(batch_size=16), TrainConfig(epochs=3, lr=1e-2), out, META, device="cpu")
rank, world = dist_env()
torch.save(built.model.state_dict(), out / f"rank{rank}.pt")
