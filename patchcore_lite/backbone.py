"""Step 1: a pretrained CNN with forward hooks that returns intermediate feature maps.

The forward pass stops as soon as every requested layer has produced its output, so
nothing after the deepest hooked layer (e.g. `layer4`, `fc`) is ever computed.
"""

from __future__ import annotations

import hashlib
import os
import socket
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn

from .errors import PatchCoreError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "heads.")  # classifier heads PatchCore never uses
WEIGHT_CHOICES = ("auto", "imagenet", "none")


def _check_backbone(name: str) -> None:
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise PatchCoreError(
            f"--backbone: unknown backbone '{name}' (try resnet18, resnet34, resnet50, "
            "wide_resnet50_2 or another torchvision classification model)"
        )


def imagenet_weights(name: str) -> torchvision.models.WeightsEnum:
    """torchvision's ImageNet weight enum for `name` (V1 where it exists, as in the paper)."""
    enum = torchvision.models.get_model_weights(name)
    return getattr(enum, "IMAGENET1K_V1", None) or enum.DEFAULT


def hub_checkpoint(name: str) -> Path:
    """Where torch hub caches (and looks for) the ImageNet checkpoint of `name`."""
    url = imagenet_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _online(url: str, timeout: float = 3.0) -> bool:
    host = url.split("/")[2]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Load ImageNet weights from the hub cache, downloading them only if the host answers."""
    target, url = hub_checkpoint(name), imagenet_weights(name).url
    if not target.exists():
        if os.environ.get("PATCHCORE_LITE_OFFLINE") == "1" or not _online(url):
            raise PatchCoreError(
                f"--weights imagenet: cannot download {url} (offline); place the file at "
                f"{target} or pass --weights PATH_TO_STATE_DICT.pth"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(target), progress=True)
    return _read_state_dict(target)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (weights_only: no arbitrary unpickling)."""
    if not path.is_file():
        raise PatchCoreError(f"--weights: file not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any load failure is a bad file for the user
        raise PatchCoreError(f"--weights: cannot read state dict {path}: {str(e).splitlines()[0]}")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise PatchCoreError(f"--weights: {path} is not a state dict of tensors")
    return sd


def _load_into(net: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    sd = {k: v for k, v in sd.items() if not k.startswith(HEAD_PREFIXES)}  # head never runs
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatch: first offending line names the key
        bad = next((s.strip() for s in str(e).splitlines() if "size mismatch" in s), str(e))
        raise PatchCoreError(f"--weights: {source} does not fit the backbone ({bad[:200]})")
    missing = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    if missing or unexpected:
        bad = (missing or unexpected)[0]
        what = "missing" if missing else "unexpected"
        raise PatchCoreError(f"--weights: {source} does not fit the backbone ({what} key '{bad}')")


def load_backbone(name: str, weights: str | None, seed: int = 0) -> tuple[nn.Module, str]:
    """Build torchvision model `name` and return it with what its weights are.

    weights: "imagenet", "auto" (imagenet if available, else random init with a warning),
    "none"/None (random init from `seed`) or a path to a state dict. The returned label is
    "imagenet", "random" or the file path: every output reports it.
    """
    _check_backbone(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # random init is reproducible and leaves global RNG alone
        net = torchvision.models.get_model(name, weights=None)
    spec = "none" if weights is None else str(weights)
    if spec == "none":
        return net.eval(), "random"
    if spec in ("imagenet", "auto"):
        try:
            _load_into(net, _imagenet_state_dict(name), "imagenet checkpoint")
            return net.eval(), "imagenet"
        except PatchCoreError as e:
            if spec == "imagenet":
                raise
            warnings.warn(f"weights=auto: {e}; using RANDOM-INIT weights (seed {seed})",
                          stacklevel=2)
            return net.eval(), "random"
    path = Path(spec)
    if not path.suffix and not path.exists():
        raise PatchCoreError(f"--weights: expected one of {WEIGHT_CHOICES} or a file, got '{spec}'")
    _load_into(net, _read_state_dict(path), str(path))
    return net.eval(), str(path)


def describe_weights(weights_used: str, seed: int | None = None) -> str:
    """What the backbone weights are, in words for every output: never hide a random init."""
    if weights_used == "imagenet":
        return "ImageNet-pretrained"
    if weights_used == "random":
        return f"RANDOM-INIT ({'' if seed is None else f'seed {seed}, '}not pretrained)"
    return f"weights from {weights_used}"


def state_dict_hash(net: nn.Module) -> str:
    """sha256 over the backbone's tensors (classifier head excluded): the weights' identity."""
    h = hashlib.sha256()
    for key, t in sorted(net.state_dict().items()):
        if key.startswith(HEAD_PREFIXES):
            continue
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def truncate(net: nn.Module, layers: tuple[str, ...]) -> nn.Module:
    """A traced copy of `net` that returns the outputs of `layers` and runs nothing after them.

    torchvision's feature extraction traces the forward (torch.fx) and drops every operation the
    requested outputs do not need, so `layer4` and `fc` never run. The graph shares `net`'s modules
    and weights, adds no hooks to it, and can be exported (ONNX, torch.export) since it has no
    Python control flow such as an exception that stops the forward.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    return create_feature_extractor(net.eval(), return_nodes={n: n for n in layers})


class FeatureExtractor(nn.Module):
    """Runs `net` on ImageNet-normalised input and returns the outputs of `layers`.

    By default the forward runs a truncated graph of the net (`truncate`). With hooks=True it runs
    the net itself with forward hooks on the layers, as notebook 01 teaches; the hooks are removed
    by `remove()` or on leaving a `with` block, so the caller's network is left as it was.
    """

    def __init__(self, net: nn.Module, layers: tuple[str, ...] | list[str], hooks: bool = False):
        super().__init__()
        modules = dict(net.named_modules())
        for layer in layers:
            if layer not in modules or layer == "":
                raise PatchCoreError(
                    f"--layers: unknown layer '{layer}' (e.g. layer1..layer4 for ResNets, "
                    "dotted names such as features.6 for other models)"
                )
        self.layers = tuple(layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self._out: dict[str, torch.Tensor] = {}
        self.handles = []
        if hooks:
            self.body = net.eval()
            self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in self.layers]
        else:
            self.body = truncate(net, self.layers)

    def _hook(self, layer: str):
        def fn(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            self._out[layer] = output
        return fn

    def remove(self) -> None:
        """Remove the forward hooks from the network (hooks=True); safe to call twice."""
        for h in self.handles:
            h.remove()
        self.handles = []

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, 3, H, W) in [0, 1] -> one (B, C_l, H_l, W_l) map per requested layer."""
        with torch.inference_mode(not torch.jit.is_tracing() and not torch.compiler.is_compiling()):
            out = self.body((x - self.mean) / self.std)
            if self.handles:  # hooked net: the outputs were collected on the way
                out, self._out = self._out, {}
        feats = [out[layer] for layer in self.layers]
        for layer, f in zip(self.layers, feats):
            if not isinstance(f, torch.Tensor) or f.dim() != 4:
                raise PatchCoreError(f"--layers: '{layer}' does not output a (B, C, H, W) "
                                     "feature map; pick a convolutional stage")
        return feats
