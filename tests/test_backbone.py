"""Feature extraction with hooks, early stop, and every way of choosing backbone weights."""

import socket
import time

import pytest
import torch
import torchvision

from patchcore_lite import PatchCoreError
from patchcore_lite.backbone import (
    FeatureExtractor,
    imagenet_weights,
    load_backbone,
    state_dict_hash,
)


def seeded_resnet18(seed):
    torch.manual_seed(seed)
    return torchvision.models.resnet18().eval()


def image(b, h, w):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(0))


def record_calls(net, name):
    """Record each run of module `name`: hooks on its leaf modules, which every forward calls
    (the extractor's traced graph calls the net's own leaves, not its containers)."""
    calls, module = [], dict(net.named_modules())[name]
    leaves = [m for m in module.modules() if not list(m.children())] or [module]
    for leaf in leaves:
        leaf.register_forward_hook(lambda *_: calls.append(name))
    return calls


def test_resnet18_shapes_and_early_stop():
    net, _ = load_backbone("resnet18", None)
    extractor = FeatureExtractor(net, ["layer2", "layer3"])
    l3, l4, fc = record_calls(net, "layer3"), record_calls(net, "layer4"), record_calls(net, "fc")
    f2, f3 = extractor(image(2, 32, 48))
    assert f2.shape == (2, 128, 4, 6)
    assert f3.shape == (2, 256, 2, 3)
    assert l3 and l4 == fc == []  # the recording works (layer3 ran), and nothing after it ran


def test_hooks_see_the_outputs_they_claim():
    net, _ = load_backbone("resnet18", None)
    x = image(1, 32, 32)
    stem = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref2 = stem((x - mean) / std)
        ref3 = net.layer3(ref2)
    f2, f3 = FeatureExtractor(net, ("layer2", "layer3"))(x)
    torch.testing.assert_close(f2, ref2)
    torch.testing.assert_close(f3, ref3)


def test_dotted_layer_names_and_early_stop_mobilenet():
    net, _ = load_backbone("mobilenet_v2", None)
    extractor = FeatureExtractor(net, ("features.6", "features.13"))
    last, later = record_calls(net, "features.13"), record_calls(net, "features.14")
    f6, f13 = extractor(image(1, 32, 32))
    assert f6.shape == (1, 32, 4, 4)
    assert f13.shape == (1, 96, 2, 2)
    assert last and later == []


def test_hooked_extractor_removes_its_hooks():
    net, _ = load_backbone("resnet18", None)
    x = image(1, 32, 32)
    ref = FeatureExtractor(net, ("layer2", "layer3"))(x)
    with FeatureExtractor(net, ("layer2", "layer3"), hooks=True) as hooked:
        got = hooked(x)
        assert net.layer2._forward_hooks and net.layer3._forward_hooks
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b)
    assert not any(m._forward_hooks for m in net.modules())  # the caller's net is as it was


def test_unknown_backbone_is_named():
    with pytest.raises(PatchCoreError, match="--backbone.*resnet1234"):
        load_backbone("resnet1234", None)


def test_unknown_layer_is_named():
    net, _ = load_backbone("resnet18", None)
    with pytest.raises(PatchCoreError, match="--layers.*layer9"):
        FeatureExtractor(net, ("layer2", "layer9"))


def test_layer_without_a_feature_map_is_named():
    net, _ = load_backbone("resnet18", None)
    with pytest.raises(PatchCoreError, match="--layers.*'fc'"):
        FeatureExtractor(net, ("layer2", "fc"))(image(1, 32, 32))


def test_state_dict_file_without_head_loads(tmp_path):
    src = seeded_resnet18(7)
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith("fc.")}
    torch.save(sd, tmp_path / "r18.pth")
    net, label = load_backbone("resnet18", str(tmp_path / "r18.pth"), seed=0)
    assert label == str(tmp_path / "r18.pth")
    assert state_dict_hash(net) == state_dict_hash(src)
    x = image(1, 32, 32)
    got = FeatureExtractor(net, ("layer2", "layer3"))(x)
    want = FeatureExtractor(seeded_resnet18(7), ("layer2", "layer3"))(x)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)


def test_state_dict_with_another_head_loads(tmp_path):
    """A fine-tuned classifier head (other class count) is irrelevant to PatchCore."""
    src = seeded_resnet18(7)
    src.fc = torch.nn.Linear(512, 3)
    torch.save(src.state_dict(), tmp_path / "r18_3cls.pth")
    net, _ = load_backbone("resnet18", str(tmp_path / "r18_3cls.pth"))
    assert state_dict_hash(net) == state_dict_hash(src)


@pytest.mark.parametrize("sd", [
    {"encoder.weight": torch.zeros(3)},  # wrong keys
    {"conv1.weight": torch.zeros(1, 2, 3)},  # right key, wrong shape
])
def test_state_dict_that_does_not_fit_is_refused(tmp_path, sd):
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(PatchCoreError, match="bad.pth"):
        load_backbone("resnet18", str(tmp_path / "bad.pth"))


def test_unreadable_weights_file_is_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PatchCoreError, match="junk.pth"):
        load_backbone("resnet18", str(tmp_path / "junk.pth"))
    with pytest.raises(PatchCoreError, match="missing.pth"):
        load_backbone("resnet18", str(tmp_path / "missing.pth"))
    with pytest.raises(PatchCoreError, match="imagnet"):
        load_backbone("resnet18", "imagnet")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache; both restored afterwards."""
    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("PATCHCORE_LITE_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored on teardown
    torch.hub.set_dir(str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_imagenet_offline_fails_fast_naming_the_file(offline):
    checkpoint = imagenet_weights("resnet18").url.rsplit("/", 1)[1]
    t0 = time.perf_counter()
    with pytest.raises(PatchCoreError) as err:
        load_backbone("resnet18", "imagenet")
    assert time.perf_counter() - t0 < 5
    assert checkpoint in str(err.value)
    assert str(offline / "checkpoints" / checkpoint) in str(err.value)


def test_auto_offline_falls_back_to_random_with_warning(offline):
    with pytest.warns(UserWarning, match="RANDOM-INIT"):
        net, label = load_backbone("resnet18", "auto", seed=3)
    assert label == "random"
    assert state_dict_hash(net) == state_dict_hash(load_backbone("resnet18", None, seed=3)[0])


def test_imagenet_from_hub_cache(offline):
    """A checkpoint already in the hub cache is used without any network."""
    src = seeded_resnet18(11)
    checkpoint = offline / "checkpoints" / imagenet_weights("resnet18").url.rsplit("/", 1)[1]
    checkpoint.parent.mkdir(parents=True)
    torch.save(src.state_dict(), checkpoint)
    net, label = load_backbone("resnet18", "imagenet")
    assert label == "imagenet"
    assert state_dict_hash(net) == state_dict_hash(src)


def test_state_dict_hash_identifies_weights():
    a, b, c = (load_backbone("resnet18", None, seed=s)[0] for s in (0, 0, 1))
    assert state_dict_hash(a) == state_dict_hash(b)
    assert state_dict_hash(a) != state_dict_hash(c)


def test_random_init_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    load_backbone("resnet18", None, seed=5)
    assert torch.equal(torch.rand(3), before)
