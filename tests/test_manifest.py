"""One source of truth per model: the registry's facts, the published record, and the generated index."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import zoo
from zoo import manifest as manifest_module
from zoo.errors import ManifestError, UnknownModelError, ZooError
from zoo.manifest import INDEX_PATH, PUBLISHED_RECORD, load_manifest, render_index, save_manifest
from zoo.registry import MODELS, RemoteFile, get_model_entry, list_models

ROOT = Path(__file__).resolve().parents[1]
# The tags the builders resolve: zoo.<builder>(weights="<tag>"), every registered model's.
BUILDER_TAGS = {(name, tag) for name in list_models() for tag in get_model_entry(name).tags}
# Tags users already load by name: they must stay.
KNOWN_TAGS = {("mobilenet_v1", "mlperf"), ("resnet50", "mlperf"), ("flownet2_sd", "nvidia")}
MOBILENET_SHA = "2fadeabb9968ec6833bee903900dda6e61b3947200535874ce2fe42a8493abc0"


def record(weights: dict | None = None) -> dict:
    return {"schema_version": 2, "weights": weights or {}}


def upstream_json(file: str = "m.tgz", urls=("https://mirror.example/m.tgz",), **facts) -> dict:
    return {"file": file, "urls": list(urls), "size": None, "sha256": None, **facts}


# --- the registry is the one place ----------------------------------------------------------------


def test_no_hand_kept_copies_remain():
    assert not (ROOT / "weights" / "manifest.json").exists()
    assert not (ROOT / "zoo" / "manifest.json").exists()


def test_weights_index_is_generated_from_the_registry():
    assert INDEX_PATH == ROOT / "weights" / "README.md"
    assert INDEX_PATH.read_text(encoding="utf-8") == render_index(), (
        "weights/README.md is out of date: run `python scripts/publish_weights.py --index`")


def test_index_lists_every_tag_with_its_upstream_facts():
    index = render_index()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line
            for line in index.splitlines() if line.startswith("| ") and line.count("|") == 9}
    assert set(rows) >= BUILDER_TAGS >= KNOWN_TAGS
    mobilenet = rows[("mobilenet_v1", "mlperf")]
    assert "mobilenet_v1_1.0_224.tgz" in mobilenet and "94321559" in mobilenet and MOBILENET_SHA in mobilenet
    assert "open_model_zoo" in mobilenet and "not published yet" in mobilenet
    assert "7b94a2da05dd30f6c0af23a46bc08886" in rows[("resnet50", "mlperf")]
    assert "none published" in rows[("flownet2_sd", "nvidia")]
    assert "ZOO_OFFLINE=1" in index and "$ZOO_HOME/upstream/" in index


def test_package_record_holds_only_published_converted_files():
    data = json.loads(PUBLISHED_RECORD.read_text())
    assert data["schema_version"] == 2
    for key, value in data["weights"].items():
        assert set(value) == {"converted"}, f"{key}: zoo/published.json restates registry facts"


def test_every_model_has_its_facts_and_the_builder_tags():
    manifest = load_manifest(PUBLISHED_RECORD)
    assert {(e.model, e.tag) for e in manifest.entries.values()} == BUILDER_TAGS
    for name in list_models():
        entry = get_model_entry(name)
        assert entry.weights and entry.citation.get("preprocessing") and entry.citation.get("label_offset")
        assert entry.categories
        assert entry.reference_metric.get("source") or entry.reference_metric.get("protocol")
    assert (get_model_entry("resnet50").num_classes, get_model_entry("flownet2_sd").num_classes) == (1001, None)


def test_manifest_entries_read_descriptive_facts_from_the_registry(monkeypatch):
    import dataclasses

    from zoo import registry

    original = registry.MODELS["resnet50"]
    changed = dataclasses.replace(original, output=dataclasses.replace(original.output, label_offset=7),
                                  preprocessing="x:y")
    monkeypatch.setitem(registry.MODELS, "resnet50", changed)
    entry = load_manifest(PUBLISHED_RECORD).entry("resnet50", "mlperf")
    assert (entry.label_offset, entry.preprocessing) == (7, "x:y")


def test_every_upstream_fact_has_a_citation():
    for model in MODELS.values():
        for weights in model.weights:
            upstream, where = weights.upstream, f"{model.name}.{weights.tag}"
            assert upstream.citation.get("urls"), where
            for fact in ("sha256", "md5", "size"):
                if getattr(upstream, fact) is not None:
                    assert upstream.citation.get(fact), f"{where}: {fact} has no citation"
            if not upstream.verifiable:
                assert "none published" in upstream.citation.get("sha256", ""), where


def test_upstream_facts():
    mobilenet = get_model_entry("mobilenet_v1").weights_tag("mlperf").upstream
    assert mobilenet.file == "mobilenet_v1_1.0_224.tgz"
    assert mobilenet.urls[0].startswith("https://zenodo.org/record/2269307/")
    assert mobilenet.urls[1].startswith("http://download.tensorflow.org/models/mobilenet_v1_2018_08_02/")
    assert (mobilenet.size, mobilenet.sha256) == (94321559, MOBILENET_SHA)
    resnet = get_model_entry("resnet50").weights_tag("mlperf").upstream
    assert resnet.urls == ("https://zenodo.org/record/2535873/files/resnet50_v1.pb",)
    assert (resnet.md5, resnet.sha256) == ("7b94a2da05dd30f6c0af23a46bc08886", None)
    flownet = get_model_entry("flownet2_sd").weights_tag("nvidia").upstream
    assert flownet.urls == ("https://drive.google.com/uc?export=download&id=1QiT0bxXF04qLWc3ml0kPPlwmHwp24r75",)
    assert not flownet.verifiable


def test_unknown_model_is_a_zoo_error_and_a_key_error_listing_the_known_names():
    with pytest.raises(UnknownModelError) as error:
        get_model_entry("vgg16")
    assert isinstance(error.value, ZooError) and isinstance(error.value, KeyError)
    assert "vgg16" in str(error.value) and all(name in str(error.value) for name in list_models())
    assert not str(error.value).startswith(("'", '"'))


def test_entry_load_imports_what_the_entry_names():
    entry = get_model_entry("resnet50")
    assert entry.load("torch_builder") is zoo.resnet50_tf_compat
    assert entry.load("converter").__module__ == "zoo.convert.resnet50"


def test_unknown_tag_lists_the_models_tags():
    with pytest.raises(ManifestError, match="no weights tag 'imagenet' for model 'resnet50' .its tags: mlperf"):
        get_model_entry("resnet50").weights_tag("imagenet")
    with pytest.raises(UnknownModelError):
        load_manifest(PUBLISHED_RECORD).entry("vgg16", "imagenet")


@pytest.mark.parametrize(
    "facts, message",
    [
        (dict(file="a/b.tgz"), "bare file name"),
        (dict(file="b.tgz", urls=("ftp://x/y",)), "http"),
        (dict(file="b.tgz", size=0), "size must be a positive"),
        (dict(file="b.tgz", sha256="ab" * 31), "sha256 must be 64"),
        (dict(file="b.tgz", md5="XYZ"), "md5 must be 32"),
    ],
)
def test_invalid_registry_facts_are_refused(facts, message):
    with pytest.raises(ManifestError, match=message):
        RemoteFile(**facts)


# --- the record in use: the package's published.json, or ZOO_MANIFEST ----------------------------


def test_zoo_manifest_overrides_upstream_and_converted_of_the_tags_it_lists(tmp_path, monkeypatch):
    digest = "ab" * 32
    override = tmp_path / "private.json"
    override.write_text(json.dumps(record({"mobilenet_v1.mlperf": {
        "upstream": upstream_json(size=5, sha256="cd" * 32),
        "converted": {"file": f"mobilenet_v1-mlperf-{digest[:8]}.safetensors", "urls": ["https://m.example/w"],
                      "size": 9, "sha256": digest}}})))
    monkeypatch.setenv("ZOO_MANIFEST", str(override))
    manifest = load_manifest()
    assert manifest.path == override
    mobilenet = manifest.entry("mobilenet_v1", "mlperf")
    assert (mobilenet.upstream.file, mobilenet.upstream.urls, mobilenet.upstream.size) == (
        "m.tgz", ("https://mirror.example/m.tgz",), 5)
    assert mobilenet.converted.urls == ("https://m.example/w",)
    assert mobilenet.label_offset == -1  # still the registry's
    # Tags the record does not list keep the registry's upstream release and nothing published.
    resnet = manifest.entry("resnet50", "mlperf")
    assert resnet.upstream is get_model_entry("resnet50").weights_tag("mlperf").upstream
    assert resnet.converted.file is None


def test_select_names_entries_by_key_or_model():
    manifest = load_manifest(PUBLISHED_RECORD)
    assert manifest.select([]) == list(manifest.entries)
    assert manifest.select(["resnet50", "flownet2_sd.nvidia"]) == ["resnet50.mlperf", "flownet2_sd.nvidia"]
    with pytest.raises(ManifestError, match="no weights entry 'vgg16'"):
        manifest.select(["vgg16"])


GOOD_CONVERTED = {"file": None, "urls": [], "size": None, "sha256": None}


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"resnet50.mlperf": {"upstream": upstream_json(md5="XYZ")}}, "resnet50.mlperf.upstream: md5"),
        ({"resnet50.mlperf": {"upstream": upstream_json(sha256="ab" * 31)}}, "upstream: sha256"),
        ({"resnet50.mlperf": {"upstream": upstream_json(size=-1)}}, "size must be a positive"),
        ({"resnet50.mlperf": {"upstream": upstream_json(urls=["ftp://x/y"])}}, "http"),
        ({"resnet50.mlperf": {"upstream": upstream_json(file="../escape.tgz")}}, "bare file name"),
        ({"resnet50.mlperf": {"upstream": upstream_json(urls=[])}}, "at least one URL"),
        ({"resnet50.mlperf": {"converted": dict(GOOD_CONVERTED, urls=["https://x/y"])}}, "stay empty until sha256"),
        ({"resnet50.mlperf": {"converted": {"file": "wrong.safetensors", "urls": [], "size": 1, "sha256": "0" * 64}}},
         "resnet50-mlperf-00000000.safetensors"),
        ({"resnet50": {"converted": GOOD_CONVERTED}}, "'<model>.<tag>'"),
        ({"vgg16.imagenet": {"converted": GOOD_CONVERTED}}, "unknown model 'vgg16'"),
        ({"resnet50.imagenet": {"converted": GOOD_CONVERTED}}, "no weights tag 'imagenet'"),
        ({"resnet50.mlperf": {"converted": GOOD_CONVERTED, "label_offset": -1}}, "'label_offset'.*zoo/registry/entries.py"),
    ],
)
def test_malformed_records_are_refused_naming_file_and_entry(tmp_path, weights, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(record(weights)))
    with pytest.raises(ManifestError, match=message) as error:
        load_manifest(path)
    assert str(path) in str(error.value)


def test_unreadable_record_is_named(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ManifestError, match="broken.json: not a readable JSON"):
        load_manifest(tmp_path / "broken.json")
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 1, "weights": {}}))
    with pytest.raises(ManifestError, match="schema_version 2"):
        load_manifest(tmp_path / "old.json")


def test_saving_the_package_record_regenerates_the_index(tmp_path, monkeypatch):
    package, index = tmp_path / "zoo" / "published.json", tmp_path / "weights" / "README.md"
    package.parent.mkdir()
    index.parent.mkdir()
    monkeypatch.setattr(manifest_module, "PUBLISHED_RECORD", package)
    monkeypatch.setattr(manifest_module, "INDEX_PATH", index)
    digest = "0123abcd" * 8
    data = record({"resnet50.mlperf": {"converted": {
        "file": f"resnet50-mlperf-{digest[:8]}.safetensors", "urls": ["https://example.org/w/r.safetensors"],
        "size": 10, "sha256": digest}}})
    assert save_manifest(data, package) == [package, index]
    text = index.read_text()
    assert f"resnet50-mlperf-{digest[:8]}.safetensors" in text and "https://example.org/w/r.safetensors" in text
    assert text.count("not published yet") == len(BUILDER_TAGS) - 1  # every other tag
    # The package record refuses upstream facts: they belong in the registry.
    with pytest.raises(ManifestError, match="zoo/registry/entries.py"):
        save_manifest(record({"resnet50.mlperf": {"upstream": upstream_json()}}), package)
    other = tmp_path / "other.json"
    assert save_manifest(data, other) == [other]


def test_save_refuses_invalid_data_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.json"
    data = record({"resnet50.mlperf": {"upstream": upstream_json(md5="0" * 32)}})
    save_manifest(data, path)
    before = path.read_bytes()
    broken = copy.deepcopy(data)
    broken["weights"]["resnet50.mlperf"]["upstream"]["md5"] = "nope"
    with pytest.raises(ManifestError):
        save_manifest(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in Path(tmp_path).iterdir()] == ["m.json"]


def test_publish_weights_index_writes_the_index(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_script_publish", ROOT / "scripts" / "publish_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "index.md"
    assert script.main(["--index", str(out)]) == 0
    assert out.read_text() == INDEX_PATH.read_text()


def test_fetch_upstream_record_for_a_package_tag_prints_what_to_pin_in_the_registry(tmp_path, monkeypatch, capsys):
    import hashlib
    import importlib.util

    monkeypatch.delenv("ZOO_MANIFEST", raising=False)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    data = b"stand-in checkpoint"
    (tmp_path / "FlowNet2-SD_checkpoint.pth.tar").write_bytes(data)  # already there: no download
    spec = importlib.util.spec_from_file_location("zoo_script_fetch", ROOT / "scripts" / "fetch_upstream.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    before = PUBLISHED_RECORD.read_bytes()
    assert script.main(["flownet2_sd", "--record", "--dest", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"sha256='{hashlib.sha256(data).hexdigest()}'" in out and f"size={len(data)}" in out
    assert "zoo/registry/entries.py" in out
    assert PUBLISHED_RECORD.read_bytes() == before
