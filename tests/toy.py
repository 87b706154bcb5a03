"""A toy training task shared by the core tests and the DDP worker (through core.data.make_loader)."""

import torch
import torch.nn.functional as F

from songkit.core.data import make_loader


class ToyTask:
    """Classify 2-D points by the sign of x0 * x1 (XOR-like): needs a hidden layer."""

    def __init__(self, n=256, batch_size=32, seed=0, workers=0):
        g = torch.Generator().manual_seed(1234)  # the data is fixed; only the order depends on seed
        self.x = torch.randn(n, 2, generator=g)
        self.y = ((self.x[:, 0] * self.x[:, 1]) > 0).long()
        self.vx = torch.randn(128, 2, generator=g)
        self.vy = ((self.vx[:, 0] * self.vx[:, 1]) > 0).long()
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.dataset = torch.utils.data.TensorDataset(self.x, self.y)

    def num_batches(self, epoch, rank, world):
        return len(self.x) // (self.batch_size * world)

    def batches(self, epoch, rank, world):
        return make_loader(self.dataset, batch_size=self.batch_size, shuffle=True, seed=self.seed, epoch=epoch,
                           rank=rank, world=world, workers=self.workers, drop_last=True)

    def train_step(self, model, batch, device):
        x, y = (t.to(device) for t in batch)
        return F.cross_entropy(model(x).float(), y), len(y)

    def evaluate(self, model, device):
        logits = model(self.vx.to(device)).float()
        return {"val_loss": F.cross_entropy(logits, self.vy).item(),
                "val_acc": (logits.argmax(-1) == self.vy).float().mean().item()}


def make_model():
    """A fresh, unseeded model: fit seeds before it calls this (so the tests see the real seeding)."""
    return torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 2))


class Keep:
    """A model factory that remembers what it built (fit builds the model itself)."""

    def __init__(self):
        self.model = None

    def __call__(self):
        self.model = make_model()
        return self.model


META = {"task": "toy", "model": "mlp", "config": {"hidden": 32}, "vocab": ["neg", "pos"]}
