"""A linear-chain CRF over the 25 classes, trained with the network (``--crf``; CNN+CRF, Korzeniowski & Widmer 2016).

The transition scores are tied like the HMM's learned transitions (``hmm.tied_index``): a score per
(quality from, quality to, root interval), 108 numbers, so the 12 keys share them. The frame scores are the
network's logits. Training minimises the path's negative log-likelihood; frames the majmin reduction leaves out
(``IGNORE``) are marginalised, not scored. Decoding is ``hmm.viterbi`` with these scores as its transitions
(per-frame log-softmax adds the same constant to every path, so it does not change the best path).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from songkit.tasks.chords import constants as C


def _tied_cells() -> torch.Tensor:
    """(25, 25) index of each transition's tied cell in a flattened (3, 3, 12) table."""
    from songkit.tasks.chords.hmm import tied_index

    K = C.NUM_CLASSES
    idx = torch.empty(K, K, dtype=torch.long)
    for a in range(K):
        for b in range(K):
            qa, qb, iv = tied_index(a, b)
            idx[a, b] = (qa * 3 + qb) * 12 + iv
    return idx


class TiedTransitions(nn.Module):
    """Key-invariant transition scores ``(25, 25)`` (rows: from) from a (3, 3, 12) table."""

    def __init__(self, self_prob: float = C.SELF_PROB):
        super().__init__()
        K = C.NUM_CLASSES
        self.register_buffer("cells", _tied_cells(), persistent=False)
        # start from the fixed HMM: staying log(p), any move log((1 - p) / 24)
        table = torch.full((3, 3, 12), math.log((1 - self_prob) / (K - 1)))
        for q in range(3):
            table[q, q, 0] = math.log(self_prob)
        self.table = nn.Parameter(table)

    def forward(self) -> torch.Tensor:
        return self.table.reshape(-1)[self.cells]  # (25, 25)


def log_partition(scores: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """log of the sum over all class paths of exp(frame scores + transition scores): ``(B, T, K)`` -> ``(B,)``."""
    alpha = scores[:, 0]  # (B, K)
    for t in range(1, scores.shape[1]):
        alpha = torch.logsumexp(alpha[:, :, None] + trans, dim=1) + scores[:, t]  # (B, K from, K to) -> (B, K)
    return torch.logsumexp(alpha, dim=1)


def nll(logits: torch.Tensor, labels: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the labelled paths: logits ``(B, T, K)``, labels ``(B, T)`` with
    ``IGNORE`` where any class may stand (marginalised). A window with no labelled frame costs 0."""
    logits = logits.float()
    keep = labels != C.IGNORE  # (B, T)
    allowed = torch.ones_like(logits, dtype=torch.bool)
    allowed[keep] = nn.functional.one_hot(labels[keep], logits.shape[-1]).bool()
    gold = logits.masked_fill(~allowed, -1e4)  # (B, T, K): only the labelled class where there is a label
    both = log_partition(torch.cat([logits, gold]), trans)  # (2B,): all paths, then the label's paths
    B = logits.shape[0]
    return (both[:B] - both[B:]).sum()
