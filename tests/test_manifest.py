"""The weights manifest: its content, its one source of truth, and its validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from zoo import manifest as manifest_module
from zoo.errors import ManifestError
from zoo.manifest import PACKAGE_MANIFEST, REPOSITORY_COPY, load_manifest, save_manifest
from zoo.registry import get_model_entry

# The tags the builders resolve: zoo.<builder>(weights="<tag>").
BUILDER_TAGS = {("mobilenet_v1", "mlperf"), ("resnet50", "mlperf"), ("flownet2_sd", "nvidia")}


@pytest.fixture
def package_data() -> dict:
    return json.loads(PACKAGE_MANIFEST.read_text())


def test_repository_copy_is_identical_to_the_package_manifest():
    assert REPOSITORY_COPY.read_bytes() == PACKAGE_MANIFEST.read_bytes(), (
        "weights/manifest.json differs from zoo/manifest.json: edit zoo/manifest.json and copy it "
        "(scripts/publish_weights.py and fetch_upstream.py --record write both)")


def test_package_manifest_covers_the_builder_tags_and_validates():
    manifest = load_manifest(PACKAGE_MANIFEST)
    assert {(e.model, e.tag) for e in manifest.entries.values()} == BUILDER_TAGS


def test_descriptive_fields_agree_with_the_registry():
    for entry in load_manifest(PACKAGE_MANIFEST).entries.values():
        model = get_model_entry(entry.model)
        assert entry.preprocessing == model.preprocessing, entry.key
        assert entry.label_offset == model.label_offset, entry.key
        assert dict(entry.reference_metric) == model.reference_metric, entry.key


def test_every_upstream_fact_has_a_citation():
    for entry in load_manifest(PACKAGE_MANIFEST).entries.values():
        upstream = entry.upstream
        assert upstream.citation.get("urls"), entry.key
        for fact in ("sha256", "md5", "size"):
            if getattr(upstream, fact) is not None:
                assert upstream.citation.get(fact), f"{entry.key}: {fact} has no citation"
        if not upstream.verifiable:
            assert "none published" in upstream.citation.get("sha256", ""), entry.key


def test_upstream_facts():
    entries = load_manifest(PACKAGE_MANIFEST).entries
    mobilenet = entries["mobilenet_v1.mlperf"].upstream
    assert mobilenet.file == "mobilenet_v1_1.0_224.tgz"
    assert mobilenet.urls[0].startswith("https://zenodo.org/record/2269307/")
    assert mobilenet.urls[1].startswith("http://download.tensorflow.org/models/mobilenet_v1_2018_08_02/")
    assert (mobilenet.size, mobilenet.sha256) == (
        94321559, "2fadeabb9968ec6833bee903900dda6e61b3947200535874ce2fe42a8493abc0")
    resnet = entries["resnet50.mlperf"].upstream
    assert resnet.urls == ("https://zenodo.org/record/2535873/files/resnet50_v1.pb",)
    assert (resnet.md5, resnet.sha256) == ("7b94a2da05dd30f6c0af23a46bc08886", None)
    flownet = entries["flownet2_sd.nvidia"].upstream
    assert flownet.urls == ("https://drive.google.com/uc?export=download&id=1QiT0bxXF04qLWc3ml0kPPlwmHwp24r75",)
    assert not flownet.verifiable


def test_converted_records_are_consistent():
    for entry in load_manifest(PACKAGE_MANIFEST).entries.values():
        converted = entry.converted
        if converted.sha256 is None:
            assert (converted.file, converted.urls, converted.size) == (None, (), None), entry.key
        else:
            assert converted.file == f"{entry.model}-{entry.tag}-{converted.sha256[:8]}.safetensors"


def test_zoo_manifest_env_overrides_the_package_manifest(tmp_path, monkeypatch, package_data):
    del package_data["weights"]["flownet2_sd.nvidia"]
    override = tmp_path / "private.json"
    override.write_text(json.dumps(package_data))
    monkeypatch.setenv("ZOO_MANIFEST", str(override))
    manifest = load_manifest()
    assert manifest.path == override
    with pytest.raises(ManifestError, match=f"{override}.*no weights tag 'nvidia' for model 'flownet2_sd'"):
        manifest.entry("flownet2_sd", "nvidia")


def test_select_names_entries_by_key_or_model():
    manifest = load_manifest(PACKAGE_MANIFEST)
    assert manifest.select([]) == list(manifest.entries)
    assert manifest.select(["resnet50", "flownet2_sd.nvidia"]) == ["resnet50.mlperf", "flownet2_sd.nvidia"]
    with pytest.raises(ManifestError, match="no entry 'vgg16'"):
        manifest.select(["vgg16"])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda w: w["resnet50.mlperf"]["upstream"].update(md5="XYZ"), "resnet50.mlperf.upstream: md5"),
        (lambda w: w["mobilenet_v1.mlperf"]["upstream"].update(sha256="ab" * 31), "upstream: sha256"),
        (lambda w: w["mobilenet_v1.mlperf"]["upstream"].update(size=-1), "size must be a positive"),
        (lambda w: w["mobilenet_v1.mlperf"]["upstream"].update(urls=["ftp://x/y"]), "http"),
        (lambda w: w["mobilenet_v1.mlperf"]["upstream"].update(file="../escape.tgz"), "bare file name"),
        (lambda w: w["resnet50.mlperf"]["converted"].update(urls=["https://x/y"]), "stay empty until sha256"),
        (lambda w: w["resnet50.mlperf"]["converted"].update(sha256="0" * 64, file="wrong.safetensors", size=1),
         "resnet50-mlperf-00000000.safetensors"),
        (lambda w: w.update({"resnet50": w.pop("resnet50.mlperf")}), "'<model>.<tag>'"),
        (lambda w: w["resnet50.mlperf"].pop("label_offset"), "missing 'label_offset'"),
    ],
)
def test_malformed_manifests_are_refused_naming_file_and_entry(tmp_path, package_data, edit, message):
    edit(package_data["weights"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(package_data))
    with pytest.raises(ManifestError, match=message) as error:
        load_manifest(path)
    assert str(path) in str(error.value)


def test_unreadable_manifest_is_named(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ManifestError, match="broken.json: not a readable JSON"):
        load_manifest(tmp_path / "broken.json")


def test_save_manifest_writes_the_package_file_and_its_repository_copy(tmp_path, monkeypatch, package_data):
    package, copy_path = tmp_path / "zoo" / "manifest.json", tmp_path / "weights" / "manifest.json"
    package.parent.mkdir()
    copy_path.parent.mkdir()
    monkeypatch.setattr(manifest_module, "PACKAGE_MANIFEST", package)
    monkeypatch.setattr(manifest_module, "REPOSITORY_COPY", copy_path)
    assert save_manifest(package_data, package) == [package, copy_path]
    assert package.read_bytes() == copy_path.read_bytes() == PACKAGE_MANIFEST.read_bytes()
    other = tmp_path / "other.json"
    assert save_manifest(package_data, other) == [other]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["manifest.json", "manifest.json", "other.json"]


def test_save_manifest_refuses_invalid_data_and_keeps_the_old_file(tmp_path, package_data):
    path = tmp_path / "m.json"
    save_manifest(package_data, path)
    before = path.read_bytes()
    broken = copy.deepcopy(package_data)
    broken["weights"]["resnet50.mlperf"]["upstream"]["md5"] = "nope"
    with pytest.raises(ManifestError):
        save_manifest(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in Path(tmp_path).iterdir()] == ["m.json"]
