"""Segmentation models: every one maps (B, 3, H, W) images to (B, C, H, W) logits.

(One module of about 420 lines for five architectures of 40-80 lines each, so MODELS and the shared
config live beside every model they build.)

``MODELS = {name: (ConfigDataclass, ModuleClass)}``; a checkpoint stores the config as a
dict and the one loader (``core.checkpoint.load_model``) rebuilds the module from it. Every config
holds what the model's inputs depend on (input size, normalisation mean and std), so prediction uses
the values the model was trained with. H and W must be multiples of 32 (the data pipeline pads to that).
All models are conv nets: ``channels_last = True`` (core runs them channels-last under autocast).

- ``fcn``: the seed's baseline, exactly (five stride-2 convs, five stride-2 transposed convs).
- ``unet``: Ronneberger et al. 2015 with batch norm and padded convs (width configurable).
- ``erfnet``: Romera et al. 2018, the reference implementation's layers (about 2.07 M parameters).
- ``darrennet``: the seed's ERFNet variant: more factorised blocks and more dropout.
- ``resnet34_unet``: a U-Net decoder on torchvision's ResNet34 (same state-dict keys, so
  ``resnet34-b627a593.pth`` loads into ``model.encoder`` unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from songkit.tasks.segment.constants import (
    INITS,
    MAX_SIZE,
    MEAN,
    MIN_SIZE,
    NUM_CLASSES,
    STD,
)

# ---------------------------------------------------------------- initialisation


def init_weights(module: nn.Module, scheme: str) -> None:
    """Xavier (uniform, eq. 1 of the seed) or Kaiming (normal, fan_out, ReLU) for every conv;
    biases zero, batch-norm scale 1 / shift 0. ``default`` keeps PyTorch's own init."""
    if scheme == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                raise ValueError(f"unknown init {scheme!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- what every model's inputs depend on


@dataclass
class InputConfig:
    """Fields every segmentation config has: the classes, the initialisation, and the input pipeline
    (shorter side fed to the model, per-channel normalisation), saved in the checkpoint."""

    num_classes: int = NUM_CLASSES
    init: str = "kaiming"  # the seed's U-Net used Kaiming
    size: int = 64  # training crop side; the shorter picture side at prediction
    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    def check(self) -> None:
        """Ranges of the fields (ValueError "field: problem"; the loader turns it into a UserError)."""
        if not 1 <= self.num_classes <= 255:
            raise ValueError(f"num_classes: {self.num_classes} outside 1-255 (255 is void)")
        if self.init not in INITS:
            raise ValueError(f"init: {self.init!r} not one of {', '.join(INITS)}")
        if not MIN_SIZE <= self.size <= MAX_SIZE or self.size % 32:
            raise ValueError(f"size: {self.size} is not a multiple of 32 in {MIN_SIZE}-{MAX_SIZE}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(isinstance(v, (int, float)) and -10 <= v <= 10 for v in values):
                raise ValueError(f"{name}: expected 3 numbers, got {values!r}")
        if not all(v > 1e-3 for v in self.std):
            raise ValueError(f"std: {self.std!r} has a value at or below 0.001")


class ConvNet(nn.Module):
    """Base of every model here: conv nets, channels-last under autocast (read by core.device.place_model)."""

    channels_last: ClassVar[bool] = True

    def __init__(self, cfg: InputConfig):
        super().__init__()
        self.cfg = cfg  # infer.py reads size/mean/std from the loaded model


# ---------------------------------------------------------------- the seed's baseline FCN


@dataclass
class FCNConfig(InputConfig):
    init: str = "xavier"  # the seed's baseline used Xavier


class FCN(ConvNet):
    """The seed's baseline: conv(3x3, stride 2) -> ReLU -> BN five times (3-32-64-128-256-512),
    then transposed conv(3x3, stride 2, output_padding 1) -> ReLU -> BN five times
    (512-512-256-128-64-32), then a 1x1 classifier. 5,500,245 parameters for 21 classes.

    The seed lists the decoder as "512 to 256 to 128 to 64 to 32" with five layers; five layers
    need one more width, and the course starter code it follows keeps 512 in the first one.
    """

    def __init__(self, cfg: FCNConfig):
        super().__init__(cfg)
        enc = (3, 32, 64, 128, 256, 512)
        dec = (512, 512, 256, 128, 64, 32)
        self.encoder = nn.ModuleList(
            nn.ModuleDict({"conv": nn.Conv2d(a, b, 3, stride=2, padding=1), "bn": nn.BatchNorm2d(b)})
            for a, b in pairwise(enc)
        )
        self.decoder = nn.ModuleList(
            nn.ModuleDict({
                "deconv": nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1),
                "bn": nn.BatchNorm2d(b),
            })
            for a, b in pairwise(dec)
        )
        self.classifier = nn.Conv2d(32, cfg.num_classes, 1)
        init_weights(self, cfg.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, C, H, W)
        for layer in self.encoder:
            x = layer["bn"](F.relu(layer["conv"](x)))  # (B, 512, H/32, W/32) at the end
        for layer in self.decoder:
            x = layer["bn"](F.relu(layer["deconv"](x)))  # (B, 32, H, W) at the end
        return self.classifier(x)


# ---------------------------------------------------------------- U-Net


@dataclass
class UNetConfig(InputConfig):
    base: int = 32  # widths base, 2*base, ... 16*base (64 in the paper: 31 M parameters)

    def check(self) -> None:
        super().check()
        if not 1 <= self.base <= 256:
            raise ValueError(f"base: {self.base} outside 1-256")


def _double_conv(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
        nn.Conv2d(b, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
    )


class UNet(ConvNet):
    """U-Net: four max-pool downs, four transposed-conv ups with skip concatenation."""

    def __init__(self, cfg: UNetConfig):
        super().__init__(cfg)
        w = [cfg.base * 2**i for i in range(5)]
        self.inc = _double_conv(3, w[0])
        self.downs = nn.ModuleList(_double_conv(w[i], w[i + 1]) for i in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2) for i in reversed(range(4)))
        self.up_convs = nn.ModuleList(_double_conv(2 * w[i], w[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(w[0], cfg.num_classes, 1)
        init_weights(self, cfg.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]  # (B, w0, H, W)
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))  # ... (B, w4, H/16, W/16)
        y = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            y = conv(torch.cat([skips.pop(), up(y)], dim=1))
        return self.head(y)


# ---------------------------------------------------------------- ERFNet (Romera et al. 2018)


@dataclass
class ERFNetConfig(InputConfig):
    drop_64: float = 0.03  # dropout of the five 64-channel blocks (reference code)
    drop_128: float = 0.3  # dropout of the eight dilated 128-channel blocks (reference code)
    drop_decoder: float = 0.0
    blocks_64: int = 5
    dilated_rounds: int = 2  # rounds of dilations (2, 4, 8, 16)
    decoder_blocks: int = 2  # factorised blocks after each upsampler

    def check(self) -> None:
        super().check()
        for name in ("drop_64", "drop_128", "drop_decoder"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: {getattr(self, name)} outside [0, 1)")
        for name in ("blocks_64", "dilated_rounds", "decoder_blocks"):
            if not 0 <= getattr(self, name) <= 16:
                raise ValueError(f"{name}: {getattr(self, name)} outside 0-16")


class DownsamplerBlock(nn.Module):
    """Concatenate a stride-2 3x3 conv (b - a channels) with a 2x2 max-pool (a channels)."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.conv = nn.Conv2d(a, b - a, 3, stride=2, padding=1, bias=True)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(b, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class NonBottleneck1D(nn.Module):
    """ERFNet's factorised residual block: 3x1, 1x3, 3x1 (dilated), 1x3 (dilated)."""

    def __init__(self, channels: int, dropout: float, dilation: int):
        super().__init__()
        c, d = channels, dilation
        self.conv3x1_1 = nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=True)
        self.conv1x3_1 = nn.Conv2d(c, c, (1, 3), padding=(0, 1), bias=True)
        self.bn1 = nn.BatchNorm2d(c, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(c, c, (3, 1), padding=(d, 0), dilation=(d, 1), bias=True)
        self.conv1x3_2 = nn.Conv2d(c, c, (1, 3), padding=(0, d), dilation=(1, d), bias=True)
        self.bn2 = nn.BatchNorm2d(c, eps=1e-3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv3x1_1(x))
        y = F.relu(self.bn1(self.conv1x3_1(y)))
        y = F.relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return F.relu(y + x)


class UpsamplerBlock(nn.Module):
    def __init__(self, a: int, b: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1, bias=True)
        self.bn = nn.BatchNorm2d(b, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ERFNet(ConvNet):
    """Encoder to 1/8 resolution (factorised dilated residual blocks), small decoder back up."""

    def __init__(self, cfg: ERFNetConfig):
        super().__init__(cfg)
        enc: list[nn.Module] = [DownsamplerBlock(3, 16), DownsamplerBlock(16, 64)]
        enc += [NonBottleneck1D(64, cfg.drop_64, 1) for _ in range(cfg.blocks_64)]
        enc.append(DownsamplerBlock(64, 128))
        for _ in range(cfg.dilated_rounds):
            enc += [NonBottleneck1D(128, cfg.drop_128, d) for d in (2, 4, 8, 16)]
        self.encoder = nn.Sequential(*enc)  # (B, 128, H/8, W/8)
        dec: list[nn.Module] = [UpsamplerBlock(128, 64)]
        dec += [NonBottleneck1D(64, cfg.drop_decoder, 1) for _ in range(cfg.decoder_blocks)]
        dec.append(UpsamplerBlock(64, 16))
        dec += [NonBottleneck1D(16, cfg.drop_decoder, 1) for _ in range(cfg.decoder_blocks)]
        self.decoder = nn.Sequential(*dec)  # (B, 16, H/2, W/2)
        self.output_conv = nn.ConvTranspose2d(16, cfg.num_classes, 2, stride=2)  # (B, C, H, W)
        init_weights(self, cfg.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_conv(self.decoder(self.encoder(x)))


@dataclass
class DarrenNetConfig(ERFNetConfig):
    """The seed's "DarrenNet": ERFNet with more convolutions and higher dropout. The seed gives
    no numbers; here: 7 blocks at 64 channels (ERFNet: 5), three rounds of dilated blocks
    (ERFNet: 2), three decoder blocks per stage (ERFNet: 2), dropout 0.1 / 0.4 / 0.1
    (ERFNet: 0.03 / 0.3 / 0)."""

    drop_64: float = 0.1
    drop_128: float = 0.4
    drop_decoder: float = 0.1
    blocks_64: int = 7
    dilated_rounds: int = 3
    decoder_blocks: int = 3


class DarrenNet(ERFNet):
    pass


# ---------------------------------------------------------------- ResNet34 encoder (torchvision layout)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock: same attribute names, so the same state-dict keys."""

    def __init__(self, a: int, b: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(b)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(b, b, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(b)
        self.downsample = None
        if stride != 1 or a != b:
            self.downsample = nn.Sequential(nn.Conv2d(a, b, 1, stride=stride, bias=False), nn.BatchNorm2d(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class ResNet34Encoder(nn.Module):
    """torchvision's resnet34 without avgpool/fc: keys conv1, bn1, layer1.0.conv1 ... layer4.2.bn2.

    ``forward`` returns the five feature maps a U-Net decoder needs:
    (B, 64, H/2), (B, 64, H/4), (B, 128, H/8), (B, 256, H/16), (B, 512, H/32).
    """

    LAYERS = (3, 4, 6, 3)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        a = 64
        for i, (n, b) in enumerate(zip(self.LAYERS, widths)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(a, b, stride)] + [BasicBlock(b, b) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            a = b

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x0 = self.relu(self.bn1(self.conv1(x)))
        x1 = self.layer1(self.maxpool(x0))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x0, x1, x2, x3, x4]

    def load_torchvision(self, state_dict: dict, source: str = "state dict") -> None:
        """Load a torchvision resnet34 state dict (``fc.*`` ignored) strictly."""
        from songkit.core.errors import UserError

        sd = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
        own = self.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing or unexpected:
            raise UserError(
                f"{source}: not a torchvision resnet34 state dict "
                f"(missing {', '.join(missing[:3]) or 'none'}; unexpected {', '.join(unexpected[:3]) or 'none'})"
            )
        for k, v in sd.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise UserError(f"{source}: {k} has shape {tuple(v.shape)}, resnet34 needs {tuple(own[k].shape)}")
        self.load_state_dict(sd, strict=True)


@dataclass
class ResNetUNetConfig(InputConfig):
    # init: for the decoder, and the encoder when no weights are loaded
    decoder: tuple[int, ...] = (256, 128, 64, 32, 16)  # widths at H/16, H/8, H/4, H/2, H

    def check(self) -> None:
        super().check()
        if len(self.decoder) != 5 or not all(isinstance(v, int) and 1 <= v <= 1024 for v in self.decoder):
            raise ValueError(f"decoder: expected 5 widths in 1-1024, got {self.decoder!r}")


class ResNet34UNet(ConvNet):
    """U-Net decoder over the ResNet34 encoder (as segmentation_models_pytorch's Unet('resnet34'))."""

    def __init__(self, cfg: ResNetUNetConfig):
        super().__init__(cfg)
        self.encoder = ResNet34Encoder()
        skips = (256, 128, 64, 64, 0)  # encoder channels joined at each decoder stage
        a = 512
        blocks = []
        for b, s in zip(cfg.decoder, skips):
            blocks.append(_double_conv(a + s, b))
            a = b
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(a, cfg.num_classes, 3, padding=1)
        init_weights(self, cfg.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats.pop()  # (B, 512, H/32, W/32)
        for block in self.blocks:
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            if feats:
                y = torch.cat([y, feats.pop()], dim=1)
            y = block(y)
        return self.head(y)  # (B, C, H, W)


MODELS = {
    "fcn": (FCNConfig, FCN),
    "unet": (UNetConfig, UNet),
    "erfnet": (ERFNetConfig, ERFNet),
    "darrennet": (DarrenNetConfig, DarrenNet),
    "resnet34_unet": (ResNetUNetConfig, ResNet34UNet),
}


def build_model(name: str, **fields) -> nn.Module:
    """Model ``name`` with its default config, ``fields`` overriding some (tests, benchmarks)."""
    cfg_cls, cls = MODELS[name]
    return cls(cfg_cls(**fields))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
