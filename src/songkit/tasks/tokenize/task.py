"""Tokenize files to JSON lines and back; train, evaluate and sample the token models."""

from __future__ import annotations

import dataclasses
import json
import sys
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from songkit.core.errors import UserError
from songkit.tasks.tokenize import data
from songkit.tasks.tokenize import encoding as E
from songkit.tasks.tokenize.spec import CONTI_FAMILIES, GROUP_FAMILIES, TokenizerConfig, Vocabulary

TASK = "tokenize"


# ---------------------------------------------------------------------------- vocabulary


def resolve_vocab(path: str | Path | None, cfg: TokenizerConfig | None = None) -> Vocabulary:
    """The vocabulary in ``path`` if it exists; else one from ``cfg``, saved to ``path`` when given."""
    if path is not None and Path(path).exists():
        return Vocabulary.load(path)
    cfg = cfg or TokenizerConfig()
    try:
        cfg.check()
    except ValueError as e:
        raise UserError(f"tokenizer options: {e}") from None
    vocab = Vocabulary(cfg)
    if path is not None:
        vocab.save(path)
    return vocab


# ---------------------------------------------------------------------------- files <-> JSON lines


def tokenize_file(path: Path, vocab: Vocabulary, encoding: str, ids: bool = False,
                  tracks: list[int] | None = None) -> dict:
    """One file -> one JSON-ready record: source, encoding, vocabulary hash and config, tracks, tokens."""
    q = E.quantise(data.read_music(path, tracks), vocab)
    tok = E.encode(q, vocab, encoding)
    rec = {"source": str(path), "encoding": encoding, "vocab_hash": vocab.hash,
           "config": dataclasses.asdict(vocab.config), "ticks_per_quarter": q.tpq, "tracks": q.tracks}
    if encoding != "remi":
        rec["families"] = list(GROUP_FAMILIES[encoding])
    rec["tokens"] = tok.tolist() if ids else E.ids_to_strings(tok, vocab, encoding)
    return rec


def tokenize_files(paths: Iterable[Path], vocab: Vocabulary, encoding: str, ids: bool = False,
                   tracks: list[int] | None = None) -> Iterator[dict]:
    """Records for many files, in order."""
    for p in paths:
        yield tokenize_file(p, vocab, encoding, ids, tracks)


def decode_records(tokens_path: str | Path, out_dir: str | Path, vocab: Vocabulary | None = None) -> list[Path]:
    """Decode every line of a tokens JSONL file (``-``: stdin) to ``out_dir/<source stem>.mid``."""
    name = str(tokens_path)
    lines = sys.stdin.read().splitlines() if name == "-" else _read_lines(Path(tokens_path))
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder (--decode writes one MIDI file per line)")
    written, used = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{n}"
        try:
            rec = json.loads(line)
            enc, tokens = rec["encoding"], rec["tokens"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{where}: not a songkit tokens record ({e.__class__.__name__})") from None
        if enc not in ("cp", "nb", "remi"):
            raise UserError(f"{where}: unknown encoding {enc!r}")
        v = vocab
        if v is None:
            try:
                v = Vocabulary(TokenizerConfig(**rec.get("config", {})))
            except TypeError as e:
                raise UserError(f"{where}: bad tokenizer config ({e})") from None
        if rec.get("vocab_hash") not in (None, v.hash):
            raise UserError(f"{where}: tokens made with vocabulary {rec.get('vocab_hash')}, not {v.hash} (pass --vocab)")
        try:
            flat = tokens if enc == "remi" else [t for g in tokens for t in g]
            if flat and isinstance(flat[0], str):
                ids = E.strings_to_ids(tokens, v, enc)
            else:
                ids = np.asarray(tokens, dtype=np.int64)
                if enc != "remi":
                    ids = ids.reshape(-1, len(GROUP_FAMILIES[enc]))
            q = E.decode(ids, v, enc, rec.get("tracks"), int(rec.get("ticks_per_quarter", 480)))
        except (E.DecodeError, ValueError, TypeError) as e:
            raise UserError(f"{where}: {e}") from None
        stem = Path(rec.get("source") or f"line{n}").stem or f"line{n}"
        target, k = out_dir / f"{stem}.mid", 1
        while target in used:
            k += 1
            target = out_dir / f"{stem}-{k}.mid"
        used.add(target)
        data.write_midi(E.to_music(q, v, str(target)), target)
        written.append(target)
    if not written:
        raise UserError(f"{name}: no token records")
    return written


def _read_lines(p: Path) -> list[str]:
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    try:
        return p.read_text().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a text (JSON lines) file") from None


# ---------------------------------------------------------------------------- datasets for the models


def default_data_dir(limit: int | None = None) -> Path:
    """The embedded default: music21's Bach chorales, converted once to MIDI in the local cache."""
    from songkit.core.io import cache_dir

    out = cache_dir("tokenize", "bach-chorales")
    if len(list(out.glob("*.mid"))) < (limit or len(data.chorale_paths())):
        write_chorales(out, limit)
    return out


def write_chorales(out: Path, limit: int | None = None) -> list[Path]:
    """Write the music21 Bach chorales as MIDI files (notes, tempos, time signatures, chord markers)."""
    from songkit.core.progress import track

    vocab = Vocabulary(TokenizerConfig())
    written = []
    paths = data.chorale_paths(limit)
    for p in track(paths, total=len(paths), description="chorales -> MIDI"):
        target = out / (Path(p).stem + ".mid")
        if not target.exists():
            q = E.quantise(data.read_music(p), vocab)
            data.write_midi(E.to_music(q, vocab, str(target)), target)
        written.append(target)
    return written


def is_validation(path: Path) -> bool:
    """Song-level split: a file is in the validation set when crc32 of its name is 0 mod 10."""
    return zlib.crc32(path.stem.encode()) % 10 == 0


def encode_songs(files: list[Path], vocab: Vocabulary, encoding: str) -> list[np.ndarray]:
    """Each file as (G + 2, F) ids with a BOS group first and an EOS group last."""
    from songkit.core.progress import track

    head = GROUP_FAMILIES[encoding][0]
    bos, eos = vocab.index[head]["BOS"], vocab.index[head]["EOS"]
    songs = []
    for f in track(files, total=len(files), description=f"tokenizing ({encoding})"):
        g = E.encode(E.quantise(data.read_music(f), vocab), vocab, encoding)
        edge = np.zeros((2, g.shape[1]), np.int64)
        edge[0, 0], edge[1, 0] = bos, eos
        songs.append(np.concatenate([edge[:1], g, edge[1:]]))
    return songs


def scored_mask(targets, encoding: str):
    """(B, T, F) bool: the targets the seed's accuracy counts (not padding, ignore or CONTI)."""
    import torch

    fams = GROUP_FAMILIES[encoding]
    conti = torch.tensor([f in CONTI_FAMILIES for f in fams], device=targets.device)
    real = (targets[..., :1] != 0)  # padding groups are all zeros
    return real & (targets != 0) & ~(conti & (targets == 1))


class TokenTrainTask:
    """Teacher forcing over random windows of ``seq_len`` groups; song-level validation split."""

    def __init__(self, train_songs, val_songs, encoding: str, seq_len: int, batch_size: int, seed: int,
                 loss: str = "ce", gamma: float = 2.0):
        self.train, self.val = train_songs, val_songs
        self.encoding, self.seq_len, self.batch_size, self.seed = encoding, seq_len, batch_size, seed
        self.loss, self.gamma = loss, gamma
        self.lengths = np.array([len(s) for s in train_songs])
        self.n_windows = max(1, int(self.lengths.sum()) // seq_len)

    def num_batches(self, epoch, rank, world):
        return max(1, self.n_windows // (self.batch_size * world))

    def batches(self, epoch, rank, world):
        import torch

        rng = np.random.default_rng([self.seed, epoch])
        p = self.lengths / self.lengths.sum()
        n = self.num_batches(epoch, rank, world) * world
        for b in range(n):
            songs = rng.choice(len(self.train), size=self.batch_size, p=p)
            starts = rng.integers(0, np.maximum(1, self.lengths[songs] - self.seq_len))
            if b % world != rank:
                continue
            yield torch.from_numpy(np.stack([_window(self.train[s], st, self.seq_len + 1)
                                             for s, st in zip(songs, starts)]))

    def losses(self, model, batch, device):
        """Mean loss over families, and the logits (padding targets are left out)."""
        import torch.nn.functional as F

        batch = batch.to(device)
        x, y = batch[:, :-1], batch[:, 1:]  # (B, T, F)
        logits, _ = model(x)
        pad = y[..., 0] == 0  # (B, T)
        total = 0.0
        for f, lg in enumerate(logits):
            t = y[..., f].masked_fill(pad, -100).reshape(-1)
            lg = lg.reshape(-1, lg.shape[-1])
            if self.loss == "focal":
                from songkit.tasks.tokenize.model import focal_loss

                total = total + focal_loss(lg, t, self.gamma)
            else:
                total = total + F.cross_entropy(lg.float(), t, ignore_index=-100)
        return total / len(logits), logits, y

    def train_step(self, model, batch, device):
        loss, _, y = self.losses(model, batch, device)
        return loss, int((y[..., 0] != 0).sum())

    def evaluate(self, model, device):
        return evaluate_songs(model, self.val, self.encoding, self.seq_len, device, self)


def _window(song: np.ndarray, start: int, length: int) -> np.ndarray:
    w = song[start:start + length]
    if len(w) < length:
        w = np.concatenate([w, np.zeros((length - len(w), song.shape[1]), np.int64)])
    return w


def evaluate_songs(model, songs, encoding, seq_len, device, task=None, batch_size: int = 32) -> dict:
    """val_loss and the seed's accuracy (overall and per family) over whole songs, window by window."""
    import torch

    fams = GROUP_FAMILIES[encoding]
    windows = [_window(s, st, seq_len + 1) for s in songs for st in range(0, max(1, len(s) - 1), seq_len)]
    correct = torch.zeros(len(fams), dtype=torch.float64)
    counted = torch.zeros(len(fams), dtype=torch.float64)
    loss_sum, n_items = 0.0, 0
    task = task or TokenTrainTask([np.zeros((2, len(fams)), np.int64)], [], encoding, seq_len, 1, 0)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            batch = torch.from_numpy(np.stack(windows[i:i + batch_size]))
            loss, logits, y = task.losses(model, batch, device)
            items = int((y[..., 0] != 0).sum())
            loss_sum += float(loss) * items
            n_items += items
            mask = scored_mask(y, encoding)
            for f, lg in enumerate(logits):
                hit = (lg.argmax(-1) == y[..., f]) & mask[..., f]
                correct[f] += hit.sum().item()
                counted[f] += mask[..., f].sum().item()
    out = {"val_loss": loss_sum / max(1, n_items),
           "val_acc": float(correct.sum() / counted.sum().clamp(min=1))}
    for f, name in enumerate(fams):
        if counted[f] > 0:
            out[f"acc_{name}"] = float(correct[f] / counted[f])
    return out


def dataset_files(data_paths: list[Path] | None) -> list[Path]:
    """Files for training/eval: the given files/folders, or the embedded chorales."""
    from songkit.core.io import expand_inputs

    if not data_paths:
        return sorted(default_data_dir().glob("*.mid"))
    # POP909 keeps alternative arrangements in NNN/versions/: the dataset is the NNN/NNN.mid files
    return [f for f in expand_inputs(data_paths, data.SUFFIXES) if f.parent.name != "versions"]


def split_files(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Song-level (train, validation) split; at least one song on each side when possible."""
    val = [f for f in files if is_validation(f)]
    train = [f for f in files if not is_validation(f)]
    if not val and len(train) > 1:
        val, train = train[-1:], train[:-1]
    if not train:
        train = val
    return train, val


# ---------------------------------------------------------------------------- checkpoints and sampling


def load_token_model(checkpoint: str | Path, device="cpu"):
    """(model, Vocabulary, Checkpoint) from a tokenize checkpoint."""
    from songkit.core.checkpoint import load_checkpoint
    from songkit.tasks.tokenize.model import MODELS

    if checkpoint is None:
        from songkit.core.checkpoint import default_checkpoint

        checkpoint = default_checkpoint(TASK)
    ck = load_checkpoint(checkpoint, task=TASK)
    if ck.model not in MODELS:
        raise UserError(f"{checkpoint}: unknown tokenize model {ck.model!r}")
    cfg_cls, cls = MODELS[ck.model]
    model = cls(cfg_cls(**ck.config))
    model.load_state_dict(ck.state_dict)
    model.to(device).eval()
    vocab = Vocabulary(TokenizerConfig(**ck.vocab["config"]))
    if vocab.hash != ck.vocab.get("hash"):
        raise UserError(f"{checkpoint}: vocabulary hash mismatch")
    return model, vocab, ck


def evaluate_checkpoint(checkpoint, data_paths, device="cpu", split: str = "val", batch_size: int = 32) -> dict:
    """The seed's accuracy for a checkpoint on the validation split (or all) of a dataset."""
    from songkit.core.device import resolve_device

    dev = resolve_device(device)
    model, vocab, ck = load_token_model(checkpoint, dev)
    files = dataset_files(data_paths)
    if split == "val":
        files = split_files(files)[1]
    songs = encode_songs(files, vocab, ck.config["encoding"])
    res = evaluate_songs(model, songs, ck.config["encoding"], int(ck.extra.get("seq_len", 128)), dev,
                         batch_size=batch_size)
    return {"checkpoint": str(ck.path), "model": ck.model, "encoding": ck.config["encoding"],
            "songs": len(songs), "groups": int(sum(len(s) for s in songs)), **res}


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

    with torch.no_grad():
        for _ in range(max_groups):
            logits, state = model(group, state)
            probs = [torch.softmax(lg[0, -1].float().cpu() / max(temperature, 1e-3), -1) for lg in logits]

            def draw(f, allowed):
                p = probs[f].clone()
                keep = torch.zeros_like(p, dtype=torch.bool)
                keep[allowed] = True
                p = p.masked_fill(~keep, 0)
                if p.sum() <= 0:
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


def repair_and_decode(groups: np.ndarray, vocab: Vocabulary, encoding: str) -> E.QScore:
    """Decode sampled groups, dropping each group the decoder calls impossible (e.g. a position past the bar)."""
    groups = groups.copy()
    for _ in range(len(groups) + 1):
        try:
            return E.decode(groups, vocab, encoding)
        except E.DecodeError as e:
            msg = str(e)
            if not msg.startswith("group "):
                raise
            i = int(msg.split()[1].rstrip(":"))
            groups = np.delete(groups, i, axis=0)
    raise E.DecodeError("no decodable groups")


def sample_midi(checkpoint, out_path, *, max_groups: int = 512, temperature: float = 1.0,
                seed: int | None = None, device="cpu") -> Path | None:
    """Sample a piece from a tokenize checkpoint and write it as MIDI (``-``: stdout)."""
    from songkit.core.device import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else device
    model, vocab, ck = load_token_model(checkpoint, dev)
    enc = ck.config["encoding"]
    groups = sample_groups(model, vocab, enc, max_groups, temperature, seed, dev)
    try:
        q = repair_and_decode(groups, vocab, enc)
    except E.DecodeError as e:
        raise UserError(f"{checkpoint}: the model sampled nothing playable ({e}); try another --seed") from None
    music = E.to_music(q, vocab, str(out_path))
    if str(out_path) == "-":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            data.write_midi(music, Path(tmp) / "s.mid")
            sys.stdout.buffer.write((Path(tmp) / "s.mid").read_bytes())
            sys.stdout.buffer.flush()
        return None
    data.write_midi(music, out_path)
    return Path(out_path)
