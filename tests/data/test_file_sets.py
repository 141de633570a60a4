"""Sets from disk and from HF datasets: folders, .npz, parquet, imagefolder; offline failures."""
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from probe import ProbeError
from probe.data import load_images

RNG = np.random.default_rng(0)


def write_folder(root, sizes=((12, 12),) * 3, classes=("cat", "dog")):
    arrays = []
    for c in classes:
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            a = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(a).save(root / c / f"{i}.png")
            arrays.append(a)
    return arrays


def test_folder_with_class_subfolders(tmp_path):
    arrays = write_folder(tmp_path / "pets")
    s = load_images(tmp_path / "pets")
    assert s.images.shape == (6, 3, 12, 12) and s.classes == ["cat", "dog"]
    assert s.labels is not None
    assert s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(s.images, torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2))  # png is lossless
    one = load_images(tmp_path / "pets" / "dog" / "1.png")
    assert len(one) == 1 and torch.equal(one.images[0], s.images[4]) and one.labels is None
    with pytest.raises(ProbeError, match="no such file"):
        load_images("missing.png")
    sub, ref = load_images(str(tmp_path / "pets"), n=4, seed=2), s.subset(4, seed=2)
    assert sub.labels is not None and ref.labels is not None
    assert torch.equal(sub.images, ref.images) and torch.equal(sub.labels, ref.labels)


def test_folder_split_subfolder_grey_and_sizes(tmp_path):
    write_folder(tmp_path / "d" / "test", sizes=((10, 20), (16, 16)), classes=("a",))
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "d" / "test" / "a" / "grey.png")
    with pytest.raises(ProbeError, match="differ in size.*resolution"):
        load_images(tmp_path / "d")
    s = load_images(tmp_path / "d", resolution=8)
    assert s.labels is not None
    assert s.images.shape == (3, 3, 8, 8) and s.labels.tolist() == [0, 0, 0]
    assert s.images[2].unique().tolist() == [7]  # the grey image, repeated to RGB
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no pictures here")
    with pytest.raises(ProbeError, match="no images"):
        load_images(tmp_path / "empty")


def test_npz_layouts_labels_and_missing_images(tmp_path):
    nhwc = RNG.integers(0, 256, (9, 5, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=nhwc, labels=np.arange(9) % 2, classes=np.array(["no", "yes"]))
    np.savez(tmp_path / "b.npz", images=nhwc.transpose(0, 3, 1, 2))
    np.savez(tmp_path / "c.npz", images=nhwc[..., 0])
    a = load_images(tmp_path / "a.npz")
    assert torch.equal(a.images, torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    assert a.labels is not None
    assert a.labels.dtype == torch.int64 and a.classes == ["no", "yes"] and a.name == "a"
    assert torch.equal(load_images(tmp_path / "b.npz").images, a.images)
    assert load_images(tmp_path / "c.npz").images.shape == (9, 1, 5, 5)
    assert torch.equal(load_images(tmp_path / "a.npz", n=3, seed=1).images, a.subset(3, seed=1).images)
    np.savez(tmp_path / "bad.npz", pixels=nhwc)
    with pytest.raises(ProbeError, match="no 'images'.*pixels"):
        load_images(tmp_path / "bad.npz")
    with pytest.raises(ProbeError, match="no such .npz"):
        load_images(tmp_path / "gone.npz")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return datasets


def test_parquet_with_image_and_classlabel_columns(tmp_path, hf_cache):
    ds = hf_cache
    arrays = [RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8) for _ in range(8)]
    feats = ds.Features({"img": ds.Image(), "fine_label": ds.ClassLabel(names=[f"c{i}" for i in range(4)]),
                         "note": ds.Value("string")})
    table = ds.Dataset.from_dict({"img": [Image.fromarray(a) for a in arrays], "fine_label": [i % 4 for i in range(8)],
                                  "note": ["x"] * 8}, features=feats)
    table.to_parquet(str(tmp_path / "set.parquet"))
    s = load_images(tmp_path / "set.parquet")
    assert s.labels is not None
    assert s.images.shape == (8, 3, 6, 10) and s.labels.tolist() == [0, 1, 2, 3] * 2
    assert torch.equal(s.images, torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2))
    assert s.classes == ["c0", "c1", "c2", "c3"]
    sub = load_images(f"hf:parquet:{tmp_path / 'set.parquet'}", n=3, seed=4, resolution=4)
    assert torch.equal(sub.images, s.subset(3, seed=4).resize(4).images)


def test_imagefolder_through_hf_matches_the_folder_loader(tmp_path, hf_cache):
    write_folder(tmp_path / "pets")
    via_hf = load_images(f"hf:imagefolder:{tmp_path / 'pets'}")
    direct = load_images(tmp_path / "pets")
    assert via_hf.classes == direct.classes == ["cat", "dog"]
    hf_labels, direct_labels = via_hf.labels, direct.labels
    assert hf_labels is not None and direct_labels is not None
    order = sorted(range(6), key=lambda i: (hf_labels[i].item(), via_hf.images[i].sum().item()))
    want = sorted(range(6), key=lambda i: (direct_labels[i].item(), direct.images[i].sum().item()))
    assert torch.equal(via_hf.images[order], direct.images[want])


def test_unknown_name_offline_fails_in_one_line(monkeypatch, hf_cache):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in ("no-such-set-xyz", "hf:someone/eurosat-xyz"):
        with pytest.raises(ProbeError) as e:
            load_images(spec)
        msg = str(e.value)
        assert spec.removeprefix("hf:") in msg and "offline" in msg.lower() and "\n" not in msg
    with pytest.raises(ProbeError, match="not a built-in set: fashion-mnist"):  # a typo shows the real names
        load_images("fashion-mnst")


def test_no_network_fails_fast_without_retries(monkeypatch, hf_cache):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)

    def unreachable(*a, **k):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(socket.socket, "connect", unreachable)
    with pytest.raises(ProbeError, match="'someone/places365-xyz'.*unreachable"):
        load_images("hf:someone/places365-xyz")


def test_load_images_resize_option(tmp_path):
    from PIL import Image as PILImage

    from probe.data import load_images

    for i in range(3):
        PILImage.fromarray((np.random.default_rng(i).random((20, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    near = load_images(tmp_path, resolution=10, resize="nearest")
    bil = load_images(tmp_path, resolution=10)
    assert near.images.shape == bil.images.shape == (3, 3, 10, 10)
    assert "filter=nearest" in near.ops[-1] and "filter=bilinear" in bil.ops[-1]
    assert not torch.equal(near.images, bil.images)
    with pytest.raises(ProbeError, match="resize is 'none'"):
        load_images(tmp_path, resolution=10, resize="none")
    with pytest.raises(ProbeError, match="unknown resize"):
        load_images(tmp_path, resize="area")
