"""Train the toy task (slowly enough to be killed mid-epoch); `--resume` when asked."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from toy import META, ToyTask, make_model  # noqa: E402

from songkit.core.train import TrainConfig, fit  # noqa: E402


class SlowToy(ToyTask):
    def train_step(self, model, batch, device):
        time.sleep(0.004)  # widen the window in which a kill lands inside an epoch
        return super().train_step(model, batch, device)


fit(make_model, SlowToy(n=512, batch_size=16), TrainConfig(epochs=6, lr=1e-2), Path(sys.argv[1]), META,
    device="cpu", resume=len(sys.argv) > 2)
