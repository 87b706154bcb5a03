"""A toy training task shared by the core tests and the DDP worker."""

import torch
import torch.nn.functional as F


class ToyTask:
    """Classify 2-D points by the sign of x0 * x1 (XOR-like): needs a hidden layer."""

    def __init__(self, n=256, batch_size=32, seed=0):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, 2, generator=g)
        self.y = ((self.x[:, 0] * self.x[:, 1]) > 0).long()
        self.vx = torch.randn(128, 2, generator=g)
        self.vy = ((self.vx[:, 0] * self.vx[:, 1]) > 0).long()
        self.batch_size, self.seed = batch_size, seed

    def num_batches(self, epoch, rank, world):
        return len(self.x) // (self.batch_size * world)

    def batches(self, epoch, rank, world):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        step = self.batch_size * world
        for i in range(self.num_batches(epoch, rank, world)):
            idx = order[i * step: (i + 1) * step][rank::world]
            yield self.x[idx], self.y[idx]

    def train_step(self, model, batch, device):
        x, y = (t.to(device) for t in batch)
        return F.cross_entropy(model(x), y), len(y)

    def evaluate(self, model, device):
        logits = model(self.vx.to(device))
        return {"val_loss": F.cross_entropy(logits, self.vy).item(),
                "val_acc": (logits.argmax(-1) == self.vy).float().mean().item()}


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 2))



META = {"task": "toy", "model": "mlp", "config": {"hidden": 32}, "vocab": ["neg", "pos"]}
