"""The adapter registry: built-in families, register_adapter, and the probe.adapters entry point."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import probe
from probe import ProbeError
from probe.maps import registry

PLUGIN = '''
import torch
import probe

priority = 40


def sniff(spec):
    return spec.startswith("toyfam:")


def load(spec, **options):
    scale = float(spec.split(":", 1)[1])
    return probe.wrap(lambda x: x.mean((2, 3)) * scale, lambda z: z[:, :, None, None].expand(-1, -1, 4, 4),
                      (3,), name=f"toyfam {scale}")
'''


@pytest.fixture
def clean_registry(monkeypatch):
    """Registry state restored after the test (entry points read again)."""
    monkeypatch.setattr(registry, "_ADAPTERS", dict(registry._ADAPTERS))
    monkeypatch.setattr(registry, "_entry_points_read", False)


def test_builtin_families_are_registered_adapters():
    names = [a.name for a in registry.adapters()]
    for name in ("builtin", "open_clip", "code", "file", "folder", "hub"):
        assert name in names
    assert names.index("builtin") < names.index("code") < names.index("hub")


def test_register_adapter_adds_a_family(clean_registry):
    seen = []
    registry.register_adapter("mine", lambda s: s.startswith("mine:"),
                              lambda s, **o: seen.append(s) or probe.wrap(lambda x: x.mean((2, 3)),
                                                                          lambda z: z[:, :, None, None], (3,)))
    m = probe.load("mine:anything")
    assert seen == ["mine:anything"] and m.latent_shape() == (3,)
    with pytest.raises(ProbeError, match="already registered"):
        registry.register_adapter("mine", lambda s: False, lambda s: None)


def test_entry_point_adapter_is_found_without_editing_probe(tmp_path, monkeypatch, clean_registry):
    # a tiny installed package: its module and a dist-info folder declaring the entry point
    (tmp_path / "toyfam_adapter.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "toyfam_adapter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyfam-adapter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[probe.adapters]\ntoyfam = toyfam_adapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toyfam_adapter", raising=False)
    m = probe.load("toyfam:0.5")
    assert m.name == "toyfam 0.5"
    torch.testing.assert_close(m.f(torch.ones(2, 3)), 0.5 * torch.ones(2, 3))
    assert [a.priority for a in registry.adapters() if a.name == "toyfam"] == [40]


def test_broken_entry_point_fails_in_one_line_only_when_used(tmp_path, monkeypatch, clean_registry):
    info = tmp_path / "broken_adapter-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-adapter\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[probe.adapters]\nbroken = no_such_module_abc:thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = [a.name for a in registry.adapters()]
    assert "broken" in names and "builtin" in names  # the built-in families still work
    with pytest.raises(ProbeError, match="adapter 'broken'.*failed to load"):
        registry._ADAPTERS["broken"].load("x")


def test_unknown_spec_names_every_kind():
    with pytest.raises(ProbeError, match=r"FILE.py:factory.*Hub id.*builtin:") as e:
        probe.load("no-such-model-anywhere")
    assert "\n" not in str(e.value)


def test_model_args_are_adapter_options_for_other_families(clean_registry):
    seen = {}

    def load(spec, **options):
        seen.update(options)
        return probe.wrap(lambda x: x.flatten(1), lambda z: z.view(-1, 1, 4, 4), (16,))

    registry.register_adapter("opts", lambda s: s.startswith("opts:"), load)
    m = probe.load("opts:x", model_args={"subfolder": "vae"}, image_size=4)
    assert seen == {"subfolder": "vae"} and m.image_size == 4
    with pytest.raises(ProbeError, match="takes image size 4, not 8"):
        probe.load("opts:x", image_size=8)
