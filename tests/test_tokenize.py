"""Tokenize: quantisation, the three encodings and their exact round trip, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from songkit.core.errors import UserError
from songkit.tasks.tokenize import codec, data, readers
from songkit.tasks.tokenize.constants import ENCODINGS, TokenizerConfig, Vocabulary
from songkit.tasks.tokenize.quantise import (
    DecodeError,
    QScore,
    differences,
    quantise,
    to_music,
)
from songkit.tasks.tokenize.recognise import recognise_chords

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
POP909 = SHARED / "pop909" / "POP909"
VOCAB = Vocabulary(TokenizerConfig())


def make_midi(path, tpq=480, tracks=2, ts=((0, 4, 4),), tempos=((0, 100.0),), seed=0, n=60):
    """A MIDI file with off-grid notes, several tracks, tempo and time-signature changes."""
    import symusic

    rng = np.random.default_rng(seed)
    score = symusic.Score(tpq)
    for k in range(tracks):
        tr = symusic.Track(name=f"t{k}", program=[0, 33, 40][k % 3], is_drum=False)
        for _ in range(n):
            tr.notes.append(symusic.Note(int(rng.integers(0, 40 * tpq)), int(rng.integers(0, 3 * tpq)),
                                         int(rng.integers(30, 90)), int(rng.integers(1, 128))))
        score.tracks.append(tr)
    for t, q in tempos:
        score.tempos.append(symusic.Tempo(t, qpm=q))
    for t, a, b in ts:
        score.time_signatures.append(symusic.TimeSignature(t, a, b))
    score.dump_midi(str(path))
    return path


def roundtrip(path, vocab=VOCAB, tracks=None):
    """quantise(read(decode(encode(x)))) against quantise(x), for every encoding, via a MIDI file."""
    q = quantise(readers.read_music(path, tracks), vocab)
    for enc in ENCODINGS:
        ids = codec.encode(q, vocab, enc)
        q2 = codec.decode(ids, vocab, enc, q.tracks, q.tpq)
        out = Path(str(path) + f".{enc}.mid")
        readers.write_midi(to_music(q2, vocab), out)
        q3 = quantise(readers.read_music(out), vocab)
        assert differences(q, q3) == [], (path, enc)
        assert np.array_equal(codec.encode(q3, vocab, enc), ids), (path, enc)  # tokens are a fixed point
    return q


def test_vocabulary_is_stable_and_reloads(tmp_path):
    v = Vocabulary(TokenizerConfig())
    assert v.hash == VOCAB.hash  # deterministic from the config
    v.save(tmp_path / "v.json")
    w = Vocabulary.load(tmp_path / "v.json")
    assert w.hash == v.hash and w.families == v.families and w.remi == v.remi
    assert len(v.families["chord"]) == 2 + 133  # ign, conti, the CP paper's 133 chords
    assert Vocabulary(TokenizerConfig(grid=8)).hash != v.hash
    d = json.loads((tmp_path / "v.json").read_text())
    d["families"]["pitch"][5] = "Pitch_x"
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(UserError, match="hash"):
        Vocabulary.load(tmp_path / "bad.json")


@pytest.mark.parametrize("tpq", [480, 96, 384, 1000])
def test_roundtrip_synthetic_any_resolution(tmp_path, tpq):
    path = make_midi(tmp_path / "a.mid", tpq=tpq, tracks=3,
                     ts=((0, 4, 4), (16 * tpq, 3, 4), (25 * tpq, 6, 8), (31 * tpq + 7, 7, 8)),
                     tempos=((0, 100.0), (5 * tpq + 13, 133.0), (20 * tpq, 61.0)))
    q = roundtrip(path)
    assert [s[1:] for s in q.timesigs] == [(4, 4), (3, 4), (6, 8), (7, 8)]
    assert [b for _, b in q.tempos] == [101, 134, 62]  # nearest CP tempo bins
    assert len(q.notes) == 180 and set(q.notes[:, 4].tolist()) == {0, 1, 2}


def test_quantise_golden_values(tmp_path):
    import symusic

    score = symusic.Score(480)
    tr = symusic.Track(name="p", program=0, is_drum=False)
    # onset 130 ticks -> 16th 1 (120); 181 -> 2 (240: 1.51 rounds up);
    # duration 0 -> 1 step; 100 -> 2 steps (60 ticks each)
    for t, d, v in [(130, 100, 64), (181, 0, 1), (0, 480 * 20, 127)]:
        tr.notes.append(symusic.Note(t, d, 60 + t % 7, v))
    score.tracks.append(tr)
    score.dump_midi(str(tmp_path / "g.mid"))
    q = quantise(readers.read_music(tmp_path / "g.mid"), VOCAB)
    assert q.notes.tolist() == [[0, 64, 60, 127, 0], [1, 2, 60 + 130 % 7, 64, 0], [2, 1, 60 + 181 % 7, 2, 0]]
    assert q.tempos == [(0, 119)] and q.timesigs == [(0, 4, 4)]  # MIDI defaults, binned


def test_track_selection_and_strings(tmp_path):
    path = make_midi(tmp_path / "a.mid", tracks=3)
    q = roundtrip(path, tracks=[2])
    assert len(q.tracks) == 1 and q.tracks[0]["index"] == 2 and q.tracks[0]["program"] == 40
    ids = codec.encode(q, VOCAB, "cp")
    strings = codec.ids_to_strings(ids, VOCAB, "cp")
    assert strings[0][:2] == ["Metrical", "Bar"]
    assert np.array_equal(codec.strings_to_ids(strings, VOCAB, "cp"), ids)
    with pytest.raises(UserError, match="no track 5"):
        readers.read_music(path, [5])


def test_token_counts_nb_shorter_than_cp(tmp_path):
    q = quantise(readers.read_music(make_midi(tmp_path / "a.mid", tracks=1, n=200)), VOCAB)
    cp, nb, remi = (len(codec.encode(q, VOCAB, e)) for e in ENCODINGS)
    assert nb < cp < remi
    starts, _ = q.bars(4)
    positions = np.unique(np.concatenate([q.notes[:, 0], [p for p, _ in q.tempos + q.chords]]))
    assert cp == len(starts) + len(positions) + len(q.notes)  # a bar, a beat per position, a group per note
    groups = codec.encode(q, VOCAB, "nb")
    assert (groups[:, 6] > 0).sum() == len(q.notes)  # one NB group per note, plus groups with no note


def test_chord_recogniser_finds_triads():
    # C major then A minor, two quarters each, grid 4: positions 0 and 8
    notes = [[0, 16, p, 64, 0] for p in (60, 64, 67)] + [[8, 16, p, 64, 0] for p in (57, 60, 64)]
    q = QScore(np.array(notes), [(0, 120)], [(0, 4, 4)], tracks=[{"is_drum": False}])
    assert recognise_chords(q, 4, 8) == [(0, "C_M"), (8, "A_m")]


def test_pop909_harte_labels():
    assert readers.harte_to_label("C#:min7/b3") == "C#_m7"
    assert readers.harte_to_label("Bb:maj") == "A#_M"
    assert readers.harte_to_label("E:sus4(b7)") == "E_sus4"
    assert readers.harte_to_label("G:hdim7") == "G_/o7"
    assert readers.harte_to_label("N") == "N"


# ---------------------------------------------------------------- bad inputs


def test_bad_midi_inputs(tmp_path):
    good = make_midi(tmp_path / "a.mid").read_bytes()
    (tmp_path / "trunc.mid").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="trunc.mid: not a readable MIDI"):
        readers.read_music(tmp_path / "trunc.mid")
    (tmp_path / "text.mid").write_text("hello, not MIDI")
    with pytest.raises(UserError, match="text.mid: not a readable MIDI"):
        readers.read_music(tmp_path / "text.mid")
    make_midi(tmp_path / "empty.mid", n=0)
    with pytest.raises(UserError, match="empty.mid: no notes"):
        readers.read_music(tmp_path / "empty.mid")
    with pytest.raises(UserError, match="missing.mid: no such file"):
        readers.read_music(tmp_path / "missing.mid")
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    with pytest.raises(UserError, match="unknown file type"):
        readers.read_music(tmp_path / "x.wav")


def test_impossible_tokens_are_errors(tmp_path):
    q = quantise(readers.read_music(make_midi(tmp_path / "a.mid")), VOCAB)
    cp = codec.encode(q, VOCAB, "cp")
    bad = cp.copy()
    bad[1, 1] = VOCAB.index["beat"]["Pos_31"]  # position 31 in a 4/4 bar of 16 steps
    with pytest.raises(DecodeError, match="group 1: position 31 in a bar of 16"):
        codec.decode(bad, VOCAB, "cp")
    note_first = cp[[2, 0, 1]]  # a note before any bar
    with pytest.raises(DecodeError, match="group 0"):
        codec.decode(note_first, VOCAB, "cp")
    nb = codec.encode(q, VOCAB, "nb")
    bad = nb.copy()
    bad[0, 0] = 99
    with pytest.raises(DecodeError, match="out of range"):
        codec.decode(bad, VOCAB, "nb")
    remi = codec.encode(q, VOCAB, "remi").tolist()
    i = next(k for k, t in enumerate(remi) if VOCAB.remi[t].startswith("Pitch_"))
    with pytest.raises(DecodeError, match="without velocity"):
        codec.decode(np.array(remi[: i + 1] + [VOCAB.remi_index["Bar"]]), VOCAB, "remi")
    with pytest.raises(DecodeError, match="unknown token 'Pitch_200'"):
        codec.strings_to_ids([["Note"] + ["<ign>"] * 5 + ["Pitch_200", "Dur_1", "Vel_2"]], VOCAB, "cp")


def test_time_signature_outside_vocabulary(tmp_path):
    path = make_midi(tmp_path / "a.mid", ts=((0, 4, 4), (4 * 480, 17, 4)))
    with pytest.raises(UserError, match="a.mid: time signature 17/4 does not fit"):
        quantise(readers.read_music(path), VOCAB)


# ---------------------------------------------------------------- real data


def test_roundtrip_bach_chorales(tmp_path):
    paths = data.chorale_paths(limit=3)
    for i, p in enumerate(paths):
        src = tmp_path / f"c{i}.mxl"
        src.write_bytes(Path(p).read_bytes())
        q = roundtrip(src)
        assert len(q.tracks) >= 4 and len(q.chords) > 5


@pytest.mark.slow
def test_roundtrip_every_bach_chorale(tmp_path):
    for i, p in enumerate(data.chorale_paths()):
        src = tmp_path / f"c{i}{Path(p).suffix}"
        src.write_bytes(Path(p).read_bytes())
        roundtrip(src)


@pytest.mark.shared
@pytest.mark.skipif(not POP909.is_dir(), reason="needs ../shared/datasets/pop909")
def test_roundtrip_pop909_sample(tmp_path):
    for song in sorted(POP909.iterdir())[:5]:
        src = tmp_path / song.name
        src.mkdir()
        (src / f"{song.name}.mid").write_bytes((song / f"{song.name}.mid").read_bytes())
        q = roundtrip(src / f"{song.name}.mid")
        # with chord_midi.txt beside it the chords come from the annotation
        ann = readers.read_music(song / f"{song.name}.mid")
        assert ann.chords and len(q.chords) > 0


def test_abc_pickup_bar_and_chords(tmp_path):
    abc = tmp_path / "t.abc"
    abc.write_text("X:1\nT:test\nM:6/8\nL:1/8\nQ:1/4=100\nK:D\nA|dfa afd|B2c d3|]\n")
    q = roundtrip(abc)
    assert q.timesigs == [(0, 6, 8)] and q.tempos == [(0, 101)]
    # the pickup eighth sits at the end of a padded first bar (6/8 = 12 sixteenths, pickup at 10)
    assert q.notes[0].tolist()[:3] == [10, 4, 69] and q.notes[1, 0] == 12
    assert q.chords[:2] == [(8, "A_M"), (12, "D_M")]


@pytest.mark.parametrize("cfg", [TokenizerConfig(grid=12, duration_res=24, velocity_bins=8, tempo_bins=16),
                                 TokenizerConfig(grid=2, duration_res=2, max_duration=4)])
def test_roundtrip_other_grids(tmp_path, cfg):
    vocab = Vocabulary(cfg)
    path = make_midi(tmp_path / "a.mid", tpq=1000, tracks=2, ts=((0, 4, 4), (12000, 5, 8)),
                     tempos=((0, 90.0), (7000, 140.0)))
    q = roundtrip(path, vocab)
    assert set(q.notes[:, 3].tolist()) <= {int(t[4:]) for t in vocab.families["velocity"][1:]}
    assert q.notes[:, 1].max() <= cfg.duration_res * cfg.max_duration
