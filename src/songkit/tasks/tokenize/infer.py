"""Tokenize pieces to records and records back to MIDI; load a token model and sample from it.

Python objects, bytes and paths in and out: the CLI reads stdin and writes stdout.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize import codec
from songkit.tasks.tokenize.constants import (
    GROUP_FAMILIES,
    TASK,
    Vocabulary,
    parse_json,
)
from songkit.tasks.tokenize.quantise import DecodeError, QScore, quantise, to_music
from songkit.tasks.tokenize.readers import Music, midi_bytes

# ---------------------------------------------------------------------------- files <-> records


def tokenize_pieces(pieces: Iterable[Music], vocab: Vocabulary, encoding: str, as_ids: bool = False) -> Iterator[dict]:
    """One JSON-ready record per piece (source, encoding, vocabulary hash and config, tracks, tokens)."""
    for music in pieces:
        q = quantise(music, vocab)
        yield codec.make_record(music.source, q, codec.encode(q, vocab, encoding), vocab, encoding, as_ids)


def decode_lines(lines: Iterable[str], name: str, vocab: Vocabulary | None = None) -> list[tuple[str, Music]]:
    """Validate and decode every record of a tokens JSONL text (``name`` for messages): (source, Music)
    per record. Everything is checked before anything is built; a bad record is a UserError naming
    ``name:line``."""
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{n}"
        rec = codec.parse_record(parse_json(line, where), where, vocab)
        try:
            q = codec.decode(rec.ids, rec.vocab, rec.encoding, rec.tracks, rec.tpq)
            music = to_music(q, rec.vocab, rec.source)
        except DecodeError as e:
            raise UserError(f"{where}: {e}") from None
        out.append((rec.source or f"line{n}", music))
    if not out:
        raise UserError(f"{name}: no token records")
    return out


def decode_targets(sources: list[str], out_dir: Path) -> list[Path]:
    """``out_dir/<source stem>.mid`` per record, numbered when two records share a stem."""
    targets, used = [], set()
    for k, source in enumerate(sources, 1):
        stem = Path(source.split("#")[0]).stem or f"line{k}"
        stem += f"-{source.split('#')[1]}" if "#" in source else ""
        target, n = out_dir / f"{stem}.mid", 1
        while target in used:
            n += 1
            target = out_dir / f"{stem}-{n}.mid"
        used.add(target)
        targets.append(target)
    return targets


def decode_records(text: str, name: str, out_dir: str | Path, vocab: Vocabulary | None = None,
                   force: bool = False, inputs: Iterable[Path] = ()) -> list[Path]:
    """Decode a tokens JSONL text to ``out_dir/<source stem>.mid``. Nothing is written unless every
    record decodes; an existing file is replaced only with ``force``, an input (``inputs``) never."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder (--decode writes one MIDI file per record)")
    from songkit.core.io import atomic_write_bytes, check_outputs

    decoded = decode_lines(text.splitlines(), name, vocab)
    targets = decode_targets([s for s, _ in decoded], out_dir)
    check_outputs(inputs, targets, force)
    blobs = [midi_bytes(m) for _, m in decoded]  # every piece fits MIDI before any file is written
    out_dir.mkdir(parents=True, exist_ok=True)
    for t, blob in zip(targets, blobs):
        atomic_write_bytes(t, blob)
    return targets


# ---------------------------------------------------------------------------- models


def _saved_vocab(saved) -> Vocabulary:
    """The vocabulary a checkpoint holds (its config within bounds, its hash); ValueError otherwise."""
    if not isinstance(saved, dict):
        raise TypeError("expected an object with a config")
    try:
        vocab = Vocabulary.from_config(saved.get("config"), "config")
    except UserError as e:
        raise ValueError(e.format_message()) from None
    if saved.get("hash") != vocab.hash:
        raise ValueError("hash mismatch")
    return vocab


def load(checkpoint: str | Path | None, device="cpu"):
    """(model, Vocabulary, Checkpoint) of a token checkpoint (None: the shipped one; a run folder: its
    best.ckpt), through core's one loader: every damaged field is one UserError line."""
    from songkit.core.checkpoint import load_model
    from songkit.tasks.tokenize.model import MODELS

    model, ck = load_model(checkpoint, TASK, MODELS, device, check_vocab=_saved_vocab)
    vocab = _saved_vocab(ck.vocab)
    if vocab.sizes(ck.config["encoding"]) != list(ck.config["vocab_sizes"]):
        raise UserError(f"{ck.path}: config.vocab_sizes: do not match the vocabulary")
    return model, vocab, ck


def sample_groups(model, vocab: Vocabulary, encoding: str, max_groups: int = 512, temperature: float = 1.0,
                  seed: int | None = None, device="cpu") -> np.ndarray:
    """Sample token groups one at a time; the head family first, then the others it allows."""
    import torch

    fams = GROUP_FAMILIES[encoding]
    V = vocab.families
    gen = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**31))
    head = V[fams[0]]
    group = torch.zeros(1, 1, len(fams), dtype=torch.long, device=device)
    group[0, 0, 0] = head.index("BOS")
    out, state = [], None
    notes, in_bar, bar_len = 0, False, None  # notes so far, a position set in this bar, bar length (steps)

    def positions(n):
        return list(range(2, 2 + min(n, len(V["beat"]) - 2)))

    def ts_len(i):
        if i < 2:
            return None
        num, den = V["timesig"][i][3:].split("/")
        return int(num) * 4 * vocab.config.grid // int(den)

    with torch.inference_mode():
        for _ in range(max_groups):
            logits, state = model(group, state)
            probs = [torch.softmax(lg[0, -1].float().cpu() / max(temperature, 1e-3), -1) for lg in logits]

            def draw(f, allowed, probs=probs):
                p = probs[f].clone()
                keep = torch.zeros_like(p, dtype=torch.bool)
                keep[allowed] = True
                p = p.masked_fill(~keep, 0)
                if not p.sum() > 0:  # also NaN
                    p = keep.float()
                return int(torch.multinomial(p / p.sum(), 1, generator=gen))

            ids = [0] * len(fams)
            # the grammar as masks: no EOS before a note, no note before a position, positions inside the bar
            heads = [i for i, t in enumerate(head) if t not in ("<ign>", "BOS")
                     and not (t == "EOS" and not notes)
                     and not (t == "Note" and not in_bar)
                     and not (t == "Same" and bar_len is None)]
            ids[0] = draw(0, heads)
            lead = head[ids[0]]
            if lead == "EOS":
                break
            values = {f: list(range(2, len(V[f]))) for f in ("tempo", "timesig", "chord")}
            if encoding == "cp" and lead == "Metrical":
                ids[1] = draw(1, [1] + (positions(bar_len) if bar_len else []))
                if ids[1] == 1:  # Bar
                    ids[3] = draw(3, ([1] if bar_len else []) + values["timesig"])
                    bar_len = ts_len(ids[3]) or bar_len
                    in_bar = False
                else:
                    ids[2] = draw(2, [1] + values["tempo"])
                    ids[4] = draw(4, [1] + values["chord"])
                    in_bar = True
            else:
                if encoding == "nb":
                    ids[3] = draw(3, [1] + (values["timesig"] if lead != "Same" else []))
                    bar_len = ts_len(ids[3]) or bar_len or 4 * vocab.config.grid
                    ids[1] = draw(1, positions(bar_len))
                    ids[2] = draw(2, [1] + values["tempo"])
                    ids[4] = draw(4, [1] + values["chord"])
                for f in range(5, 9):
                    ids[f] = draw(f, list(range(1, len(V[fams[f]]))))
                notes += 1
            out.append(ids)
            group = torch.tensor([[ids]], dtype=torch.long, device=device)
    return np.array(out, dtype=np.int64).reshape(-1, len(fams))


def repair_and_decode(groups: np.ndarray, vocab: Vocabulary, encoding: str) -> QScore:
    """Decode sampled groups, dropping each group the decoder calls impossible (e.g. a position past the bar)."""
    groups = groups.copy()
    for _ in range(len(groups) + 1):
        try:
            return codec.decode(groups, vocab, encoding)
        except DecodeError as e:
            msg = str(e)
            if not msg.startswith("group "):
                raise
            groups = np.delete(groups, int(msg.split()[1].rstrip(":")), axis=0)
    raise DecodeError("no decodable groups")


def sample_midi(checkpoint: str | Path | None, *, max_groups: int = 512, temperature: float = 1.0,
                seed: int | None = None, device="cpu") -> bytes:
    """Sample a piece from a token checkpoint; returns the MIDI file's bytes (the caller writes them)."""
    from songkit.core.device import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    model, vocab, ck = load(checkpoint, dev)
    groups = sample_groups(model, vocab, ck.config["encoding"], max_groups, temperature, seed, dev)
    try:
        q = repair_and_decode(groups, vocab, ck.config["encoding"])
    except DecodeError as e:
        raise UserError(f"{ck.path}: the model sampled nothing playable ({e}); try another --seed") from None
    return midi_bytes(to_music(q, vocab, "sample"))
