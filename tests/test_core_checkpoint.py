import copy
import re
from dataclasses import dataclass, field

import pytest
import torch
from fuzz import DEFAULT_EXAMPLES, SLOW_EXAMPLES, check_case, fuzz
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from songkit.core.checkpoint import FORMAT_VERSION, build_config, load_checkpoint, load_model, save_checkpoint
from songkit.core.errors import UserError


def _save(path, **kw):
    model = torch.nn.Linear(3, 2)
    args = dict(task="generate", model="lstm", config={"hidden": 3}, vocab=["a", "b"],
                state_dict=model.state_dict(), history=[{"epoch": 1, "val_loss": 0.5}], extra={"seq_len": 8})
    args.update(kw)
    return model, save_checkpoint(path, **args)


def test_round_trip(tmp_path):
    model, path = _save(tmp_path / "a.ckpt")
    ck = load_checkpoint(path, task="generate")
    assert (ck.task, ck.model, ck.config, ck.vocab, ck.extra) == (
        "generate", "lstm", {"hidden": 3}, ["a", "b"], {"seq_len": 8})
    assert ck.history == [{"epoch": 1, "val_loss": 0.5}]
    for k, v in model.state_dict().items():
        assert torch.equal(ck.state_dict[k], v)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".a.ckpt*"))  # atomic: no temp left


def test_ddp_prefixes_are_stripped(tmp_path):
    sd = {"module.weight": torch.zeros(2), "_orig_mod.bias": torch.ones(1)}
    _, path = _save(tmp_path / "p.ckpt", state_dict=sd)
    assert set(load_checkpoint(path).state_dict) == {"weight", "bias"}


def test_other_task_is_refused(tmp_path):
    _, path = _save(tmp_path / "c.ckpt", task="chords")
    with pytest.raises(UserError, match="'chords' checkpoint.*'generate'"):
        load_checkpoint(path, task="generate")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_object_is_refused_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "songkit-checkpoint", "format_version": 1, "payload": Evil()}, path)
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "junk.ckpt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match="junk.ckpt: not a songkit checkpoint"):
        load_checkpoint(bad)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(1)}, plain)
    with pytest.raises(UserError, match="no songkit header"):
        load_checkpoint(plain)
    with pytest.raises(UserError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_newer_format_is_refused(tmp_path):
    path = tmp_path / "new.ckpt"
    _save(path)
    obj = torch.load(path, weights_only=True)
    obj["format_version"] = FORMAT_VERSION + 1
    torch.save(obj, path)
    with pytest.raises(UserError, match="newer"):
        load_checkpoint(path)


def test_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "keep.ckpt"
    _save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="only tensors and plain values"):
        save_checkpoint(path, task="generate", model="lstm", config={}, vocab=[], state_dict={"x": object()})
    assert path.read_bytes() == before


# ----------------------------------------------------------------------------- load_model (issue 14)
# A toy task defined here, so these tests do not depend on any task package.
@dataclass
class ToyMel:
    n_mels: int = 4
    fmin: float = 0.0

    def check(self):
        if not 1 <= self.n_mels <= 64:
            raise ValueError(f"n_mels: {self.n_mels} outside 1..64")


@dataclass
class ToyConfig:
    hidden: int = 5
    dropout: float = 0.1
    act: str = "relu"
    bias: bool = True
    sizes: tuple[int, ...] = (2, 3)
    limit: int | None = None
    layers: list[int] = field(default_factory=lambda: [3])
    mel: ToyMel = field(default_factory=ToyMel)

    def check(self):
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: {self.dropout} outside 0..1")
        if self.act not in ("relu", "tanh"):
            raise ValueError(f"act: {self.act!r}, expected relu or tanh")


class ToyNet(torch.nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.body = torch.nn.Linear(cfg.mel.n_mels, cfg.hidden, bias=cfg.bias)
        self.head = torch.nn.Linear(cfg.hidden, 2)

    def forward(self, x):  # (B, n_mels) -> (B, 2)
        return self.head(torch.relu(self.body(x)))


TOY_MODELS = {"net": (ToyConfig, ToyNet)}


def _toy(path, cfg=None, **kw):
    torch.manual_seed(0)
    cfg = cfg or ToyConfig()
    model = ToyNet(cfg)
    args = dict(task="toy", model="net", config=cfg, vocab=["no", "yes"], state_dict=model.state_dict())
    args.update(kw)
    save_checkpoint(path, **args)
    return model


def _edit(path, change):
    """Rewrite a saved checkpoint's payload with ``change(obj)`` (torch.save: no checksum update)."""
    obj = torch.load(path, weights_only=True)
    change(obj)
    torch.save(obj, path)


def test_load_model_round_trip(tmp_path):
    model = _toy(tmp_path / "m.ckpt", ToyConfig(hidden=7, sizes=(4, 5), limit=3, mel=ToyMel(n_mels=6)))
    loaded, ck = load_model(tmp_path / "m.ckpt", "toy", TOY_MODELS)
    assert loaded.cfg == ToyConfig(hidden=7, sizes=(4, 5), limit=3, mel=ToyMel(n_mels=6))
    assert isinstance(loaded.cfg.mel, ToyMel) and isinstance(loaded.cfg.sizes, tuple)
    assert not loaded.training and ck.vocab == ["no", "yes"]
    x = torch.randn(3, 6)
    assert torch.equal(loaded(x), model(x))


def test_run_folder_means_its_best_ckpt(tmp_path):
    _toy(tmp_path / "best.ckpt", ToyConfig(hidden=9))
    loaded, ck = load_model(tmp_path, "toy", TOY_MODELS)
    assert loaded.cfg.hidden == 9 and ck.path == tmp_path / "best.ckpt"
    assert load_checkpoint(tmp_path).path == tmp_path / "best.ckpt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: a folder without best.ckpt"):
        load_model(tmp_path / "empty", "toy", TOY_MODELS)


def test_old_checkpoint_without_checksum_loads(tmp_path):
    path = tmp_path / "old.ckpt"
    _toy(path)
    _edit(path, lambda o: o.pop("weights_sha256"))
    assert load_model(path, "toy", TOY_MODELS)[1].model == "net"


def _set_config(key, value):
    def change(obj):
        obj["config"][key] = value
    return change


def _set_mel(key, value):
    def change(obj):
        obj["config"]["mel"][key] = value
    return change


def _scale_weights(obj):
    obj["state_dict"]["body.weight"] = torch.zeros(3, 3)


DAMAGE = {
    # name: (change to the payload, what the one line says)
    "int as string": (_set_config("hidden", "x"), r"config\.hidden: 'x', expected an integer"),
    "bool for int": (_set_config("hidden", True), r"config\.hidden: True, expected an integer"),
    "float for int": (_set_config("hidden", 2.5), r"config\.hidden: 2\.5, expected an integer"),
    "out of range": (_set_config("dropout", 2), r"config\.dropout: 2\.0 outside 0\.\.1"),
    "NaN in config": (_set_config("dropout", float("nan")), r"config\.dropout: nan, expected a finite number"),
    "unknown choice": (_set_config("act", "gelu"), r"config\.act: 'gelu', expected relu or tanh"),
    "unknown key": (_set_config("bogus", 1), r"config\.bogus: unknown field"),
    "nested type": (_set_mel("n_mels", "many"), r"config\.mel\.n_mels: 'many', expected an integer"),
    "nested range": (_set_mel("n_mels", 0), r"config\.mel\.n_mels: 0 outside 1\.\.64"),
    "nested unknown": (_set_config("mel", {"n_mel": 4}), r"config\.mel\.n_mel: unknown field"),
    "nested not a dict": (_set_config("mel", [4]), r"config\.mel: a list, expected a dict"),
    "optional": (_set_config("limit", "3"), r"config\.limit: '3', expected an integer"),
    "list items": (_set_config("layers", [1, "2"]), r"config\.layers\[1\]: '2', expected an integer"),
    "list": (_set_config("layers", 3), r"config\.layers: 3, expected a list"),
    "huge int": (_set_config("hidden", 10**30), r"config\.hidden: 10+ is out of range"),
    "huge model": (_set_config("hidden", 2**40), r"state_dict\.body\.weight: shape \(5, 4\), the config gives"),
    "config not a dict": (lambda o: o.__setitem__("config", [1]), r": config: a list, expected dict"),
    "state_dict not a dict": (lambda o: o.__setitem__("state_dict", [1]), r": state_dict: a list, expected dict"),
    "weight not a tensor": (lambda o: o["state_dict"].__setitem__("head.bias", [0.0, 1.0]),
                            r"state_dict\.head\.bias: a list, expected a tensor"),
    "shape mismatch": (_scale_weights, r"state_dict\.body\.weight: shape \(3, 3\), the config gives \(5, 4\)"),
    "missing weight": (lambda o: o["state_dict"].pop("head.bias"), r"state_dict\.head\.bias: missing"),
    "extra weight": (lambda o: o["state_dict"].__setitem__("tail.w", torch.zeros(1)),
                     r"state_dict\.tail\.w: not a weight of model 'net'"),
    "NaN weight": (lambda o: o["state_dict"]["head.weight"].__setitem__((0, 0), float("nan")),
                   r"state_dict\.head\.weight: NaN or infinite weights"),
    "vocab type": (lambda o: o.__setitem__("vocab", torch.zeros(2)), r"vocab: a Tensor, expected plain values"),
    "unknown model": (lambda o: o.__setitem__("model", "gpt9"), r"model: unknown 'gpt9' \(expected one of net\)"),
    "model not a string": (lambda o: o.__setitem__("model", 3), r"model: a int, expected str"),
    "history type": (lambda o: o.__setitem__("history", "x"), r"history: a str, expected list or tuple"),
    "not a dict": (lambda o: (o.clear(), o.__setitem__("format", "songkit-checkpoint"),
                              o.__setitem__("format_version", 1)), r"task: missing"),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_damaged_checkpoint_is_one_line_naming_file_and_field(tmp_path, name):
    change, message = DAMAGE[name]
    path = tmp_path / "damaged.ckpt"
    _toy(path)
    if name != "NaN weight":  # the checksum would catch the NaN first; this tests the finiteness check
        _edit(path, lambda o: (change(o), o.pop("weights_sha256", None)))
    else:
        _edit(path, lambda o: (change(o), o.pop("weights_sha256")))
    with pytest.raises(UserError) as err:
        load_model(path, "toy", TOY_MODELS)
    line = err.value.format_message()
    assert "\n" not in line and line.startswith(str(path) + ": "), line
    assert re.search(message, line), line


def test_whole_payload_not_a_dict(tmp_path):
    path = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], path)
    with pytest.raises(UserError, match=r"list\.ckpt: not a songkit checkpoint \(no songkit header\)"):
        load_model(path, "toy", TOY_MODELS)


def test_flipped_bit_inside_a_weight_is_caught_by_the_checksum(tmp_path):
    path = tmp_path / "flip.ckpt"
    cfg = ToyConfig()
    marker = torch.full((cfg.hidden, cfg.mel.n_mels), 0.123456789)  # a byte pattern to find in the archive
    state = ToyNet(cfg).state_dict()
    state["body.weight"] = marker
    _toy(path, cfg, state_dict=state)
    data = bytearray(path.read_bytes())
    at = bytes(data).index(marker.numpy().tobytes())
    data[at + 5] ^= 0x04  # one bit of one float: still a valid archive and a finite weight
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"flip\.ckpt: state_dict: weights differ from their checksum"):
        load_model(path, "toy", TOY_MODELS)


def test_vocab_check_of_the_task(tmp_path):
    path = tmp_path / "v.ckpt"
    _toy(path, vocab=["a"])

    def two_labels(vocab):
        if len(vocab) != 2:
            raise ValueError(f"{len(vocab)} labels, expected 2")

    with pytest.raises(UserError, match=r"v\.ckpt: vocab: 1 labels, expected 2"):
        load_model(path, "toy", TOY_MODELS, check_vocab=two_labels)


def test_build_config_alone():
    assert build_config(ToyConfig, {"hidden": 3, "sizes": [1, 2]}, "x.ckpt") == ToyConfig(hidden=3, sizes=(1, 2))
    with pytest.raises(UserError, match=r"^x\.ckpt: config\.sizes: 'a', expected a list$"):
        build_config(ToyConfig, {"sizes": "a"}, "x.ckpt")


def _fuzz_archive(tmp_path, examples):
    """Byte-level damage of a whole archive: a UserError line or a model that loads, never a traceback."""
    path = tmp_path / "seed.ckpt"
    _toy(path)

    def parse(data: bytes):
        case = tmp_path / "case.ckpt"
        case.write_bytes(data)
        return load_model(case, "toy", TOY_MODELS)

    fuzz(parse, path.read_bytes(), examples=examples)


def test_fuzz_checkpoints(tmp_path):
    _fuzz_archive(tmp_path, 40)


@pytest.mark.slow
def test_fuzz_checkpoints_many(tmp_path):
    _fuzz_archive(tmp_path, SLOW_EXAMPLES)


# per kind of damage: hostile values where the payload has fields (the byte-level fuzz above rarely gets past
# the archive's own structure; these cases do)
HOSTILE_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, -(2**70), 10**400 // 10**300]),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
HOSTILE_TENSORS = st.builds(
    lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
    st.lists(st.integers(0, 6), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.bool,
                     torch.complex64]),
    st.sampled_from([0.0, 1.5, -3.0, float("nan"), float("inf"), 1e30]),
)
CONFIG_FIELDS = ["hidden", "dropout", "act", "bias", "sizes", "limit", "layers", "mel", "bogus"]
WEIGHTS = ["body.weight", "body.bias", "head.weight", "head.bias", "extra.weight"]


def _damage(obj, kind, key, value, tensor):
    if kind == "config":
        obj["config"][key] = value
    elif kind == "mel":
        obj["config"]["mel"][key] = value
    elif kind == "weight":
        obj["state_dict"][key] = tensor
    else:  # a top-level field
        obj[key] = value


@pytest.mark.parametrize("kind", ["config", "mel", "weight", "field"])
def test_fuzz_checkpoint_fields(tmp_path, kind):
    fuzz_fields(tmp_path, kind, DEFAULT_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["config", "mel", "weight", "field"])
def test_fuzz_checkpoint_fields_many(tmp_path, kind):
    fuzz_fields(tmp_path, kind, SLOW_EXAMPLES // 2)


def fuzz_fields(tmp_path, kind, examples):
    _toy(tmp_path / "seed.ckpt")
    seed = torch.load(tmp_path / "seed.ckpt", weights_only=True)
    keys = {"config": CONFIG_FIELDS, "mel": ["n_mels", "fmin", "bogus"], "weight": WEIGHTS,
            "field": ["task", "model", "config", "vocab", "state_dict", "history", "extra", "train_state",
                      "format_version", "weights_sha256"]}[kind]

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(keys), HOSTILE_VALUES, HOSTILE_TENSORS)
    def run(key, value, tensor):
        obj = copy.deepcopy(seed)
        _damage(obj, kind, key, value, tensor)
        obj.pop("weights_sha256", None) if kind == "weight" else None  # reach the checks behind the checksum
        path = tmp_path / "case.ckpt"
        torch.save(obj, path)
        check_case(lambda _: load_model(path, "toy", TOY_MODELS), repr((kind, key, value, tensor)).encode())

    run()


def test_shipped_copy_is_half_the_size_and_loads_into_the_fp32_model(tmp_path):
    from songkit.core.checkpoint import ship_checkpoint
    from songkit.tasks.generate.model import MODELS, CharLSTMConfig

    torch.manual_seed(0)
    cfg = CharLSTMConfig(vocab_size=8, embed_dim=16, hidden_size=64, num_layers=2)
    model = MODELS["lstm"][1](cfg).eval()
    src = save_checkpoint(tmp_path / "best.ckpt", task="generate", model="lstm", config=cfg,
                          vocab=list("\x00\x02\x03abcde"), state_dict=model.state_dict(), history=[{"epoch": 1}],
                          train_state={"step": 3})
    dst = ship_checkpoint(src, tmp_path / "default.ckpt", task="generate")
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    ck = load_checkpoint(dst, task="generate")
    assert ck.train_state is None and ck.history == [{"epoch": 1}] and ck.config == load_checkpoint(src).config
    assert {v.dtype for v in ck.state_dict.values()} == {torch.float16}
    shipped, _ = load_model(dst, "generate", MODELS)
    assert {p.dtype for p in shipped.parameters()} == {torch.float32}
    ids = torch.randint(0, 8, (2, 50))
    with torch.no_grad():
        want, got = model(ids)[0], shipped(ids)[0]
    assert (got - want).abs().max() < 2e-2 and not torch.equal(got, want)  # rounded, not the same tensors


def test_shipped_copy_refuses_what_float16_cannot_hold_and_its_own_input(tmp_path):
    from songkit.core.checkpoint import ship_checkpoint

    _, src = _save(tmp_path / "a.ckpt", state_dict={"weight": torch.tensor([1.0, 1e6])})
    before = src.read_bytes()
    with pytest.raises(UserError, match="weight: does not fit float16"):
        ship_checkpoint(src, tmp_path / "b.ckpt", task="generate")
    with pytest.raises(UserError, match="is the checkpoint being copied"):
        ship_checkpoint(src, src, task="generate")
    assert src.read_bytes() == before and not (tmp_path / "b.ckpt").exists()
