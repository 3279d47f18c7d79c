"""The resolver: real checkpoint when usable, stand-in otherwise, never a long wait."""
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch

from course_utils.weights import resolver as hub
from course_utils.weights import standins

NAME = "google/vit-base-patch16-224"


@pytest.fixture(autouse=True)
def fresh_hub_state(monkeypatch, tmp_path):
    """Each test starts with no decision cached, online mode, an empty course cache."""
    from huggingface_hub import constants

    hub.hub_status.cache_clear()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("COURSE_FORCE_STANDINS", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path / "course-cache"))
    monkeypatch.setattr(standins, "STANDINS", {})
    yield
    hub.hub_status.cache_clear()


def _tiny_vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=16, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, num_labels=3)
    return ViTForImageClassification(config).eval()


def _register_tiny_standin(calls):
    def build(folder: Path):
        calls.append(folder)
        _tiny_vit().save_pretrained(folder)

    standins.register_standin(NAME, build, about="a tiny test ViT")


def test_offline_nothing_cached_gives_the_standin_at_once(monkeypatch, tmp_path, capsys):
    from transformers import ViTForImageClassification  # imported first: the timing is the decision's

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    _register_tiny_standin(calls)
    monkeypatch.setattr(hub, "_probe_hub", lambda url, timeout: pytest.fail("the network was asked"))
    resolved = hub.resolve(NAME, cache_dir=tmp_path / "empty-hf-cache")
    assert not resolved.real
    assert "HF_HUB_OFFLINE" in resolved.reason
    assert "stand-in, a tiny test ViT" in capsys.readouterr().out  # the one-line banner
    model = ViTForImageClassification.from_pretrained(resolved.path)  # the same public call
    assert model.config.num_labels == 3


def test_offline_without_a_standin_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.CheckpointUnavailable, match=r"no stand-in for it yet \(chapter 03"):
        hub.resolve(NAME, cache_dir=tmp_path)


def _save_tiny_repo(folder: Path):
    """What the course loads from a ViT checkpoint: config, image processor, weights."""
    from transformers import ViTImageProcessor

    model = _tiny_vit()
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return model


def test_model_in_a_hub_layout_cache_is_real_and_loads_offline(lay_out, monkeypatch, tmp_path, capsys):
    from transformers import ViTForImageClassification

    original = _save_tiny_repo(tmp_path / "saved")
    cache = tmp_path / "hf-cache"
    lay_out(tmp_path / "saved", cache, NAME)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the cache alone must be enough

    assert hub.is_cached(NAME, cache)
    resolved = hub.resolve(NAME, cache_dir=cache)
    assert resolved.real and "local cache" in resolved.reason
    assert Path(resolved.path) == hub.snapshot(NAME, cache) and Path(resolved.path).parent.name == "snapshots"
    assert "real weights" in capsys.readouterr().out

    loaded = ViTForImageClassification.from_pretrained(resolved.path, cache_dir=cache).eval()
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(loaded(x).logits, original(x).logits)


def test_config_without_weights_is_not_cached(lay_out, tmp_path):
    _tiny_vit().config.save_pretrained(tmp_path / "saved")
    lay_out(tmp_path / "saved", tmp_path / "hf-cache", NAME)
    assert not hub.is_cached(NAME, tmp_path / "hf-cache")


def test_hub_that_answers_is_asked_once_per_process(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(hub, "_probe_hub", lambda url, timeout: asked.append(url))
    monkeypatch.setattr(hub, "download", lambda name, cache_dir=None: (_ for _ in ()).throw(ConnectionError("no")))
    _register_tiny_standin([])
    standins.register_standin("facebook/convnext-tiny-224", lambda folder: _tiny_vit().save_pretrained(folder), about="x")
    assert not hub.resolve(NAME, cache_dir=tmp_path, quiet=True).real  # the download failed: stand-in
    hub.resolve("facebook/convnext-tiny-224", cache_dir=tmp_path, quiet=True)
    assert len(asked) == 1, "the hub must be asked once per process, not once per checkpoint"
    assert os.environ.get("HF_HUB_OFFLINE") is None


def test_hub_answering_with_an_http_error_still_counts_as_reachable(monkeypatch, tmp_path):
    import urllib.error

    def answers_404(url, timeout):
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)

    monkeypatch.setattr(hub, "urllib", type("U", (), {"request": _FakeRequest(answers_404), "error": urllib.error}))
    assert hub.hub_status().online


class _FakeRequest:
    """Stands in for urllib.request: Request builds nothing, urlopen calls the given function."""

    def __init__(self, urlopen):
        self._urlopen = urlopen

    def Request(self, url, method):  # noqa: N802 - mirrors urllib's name
        return url

    def urlopen(self, request, timeout):
        return self._urlopen(request, timeout)


def test_a_hanging_hub_is_given_up_on_and_then_nothing_retries(monkeypatch, tmp_path):
    from huggingface_hub import constants
    from transformers import ViTForImageClassification

    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.2)  # the real budget is 2 s: tests/benchmark.py times it
    monkeypatch.setattr(hub, "_probe_hub", lambda url, timeout: time.sleep(30))  # a hub that never answers
    calls = []
    _register_tiny_standin(calls)
    status = hub.hub_status()  # returns although the probe still hangs
    assert not status.online and "did not answer within 0 s" in status.reason
    assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE  # the process is now offline...
    monkeypatch.setattr(hub, "_probe_hub", lambda url, timeout: pytest.fail("the hub was asked again"))
    with pytest.raises(OSError):  # ...so an uncached from_pretrained fails at once, without a request
        ViTForImageClassification.from_pretrained("course-test/not-a-model", cache_dir=tmp_path)
    assert not hub.resolve(NAME, cache_dir=tmp_path, quiet=True).real


def test_forced_standins_skip_the_cache_and_the_network(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    monkeypatch.setattr(hub, "_probe_hub", lambda url, timeout: pytest.fail("the network was asked"))
    calls = []
    _register_tiny_standin(calls)
    resolved = hub.resolve(NAME, cache_dir=tmp_path, quiet=True)
    assert not resolved.real and "COURSE_FORCE_STANDINS" in resolved.reason


def test_standin_is_built_once_and_a_half_built_one_is_rebuilt(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    _register_tiny_standin(calls)
    first = hub.resolve(NAME, cache_dir=tmp_path, quiet=True)
    second = hub.resolve(NAME, cache_dir=tmp_path, quiet=True)
    assert first.path == second.path and len(calls) == 1
    (Path(first.path) / ".complete").unlink()  # as if the build had been interrupted
    third = hub.resolve(NAME, cache_dir=tmp_path, quiet=True)
    assert len(calls) == 2 and (Path(third.path) / "config.json").is_file()
    assert f"the cached stand-in for {NAME} is incomplete (no .complete marker" in capsys.readouterr().out


# ---------------------------------------------------------------- a cached stand-in is checked before use

def _damage_truncate(folder):
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    return f"model.safetensors: {size // 2:,} of {size:,} bytes"


def _damage_flip_a_byte(folder):
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor: the file still parses, the weights are wrong
    weights.write_bytes(bytes(data))
    return "model.safetensors: contents changed (sha256 differs)"


def _damage_delete(folder):
    (folder / "config.json").unlink()
    return "config.json: missing"


def _damage_old_marker(folder):
    (folder / ".complete").write_text("1\n")  # what course_utils wrote before manifests
    return "is outdated (its marker has no manifest)"


def _damage_extra_file(folder):
    (folder / "pytorch_model.bin").write_bytes(b"not ours")
    return "pytorch_model.bin: not in the manifest"


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_flip_a_byte, _damage_delete, _damage_old_marker,
                                    _damage_extra_file])
def test_a_damaged_cached_standin_is_detected_and_rebuilt_with_a_message(damage, monkeypatch, tmp_path, capsys):
    from transformers import ViTForImageClassification

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    _register_tiny_standin(calls)
    folder = Path(hub.resolve(NAME, cache_dir=tmp_path, quiet=True).path)
    capsys.readouterr()
    assert standins.standin_built(NAME)
    what = damage(folder)
    assert not standins.standin_built(NAME) and what in standins.standin_problem(NAME)

    again = hub.resolve(NAME, cache_dir=tmp_path, quiet=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and what in lines[0]  # one clear line
    assert lines[0].startswith(f"[course] the cached stand-in for {NAME} ") and lines[0].endswith("; rebuilding it")
    assert len(calls) == 2 and again.path == str(folder) and standins.standin_built(NAME)
    model = ViTForImageClassification.from_pretrained(again.path)  # the rebuilt copy loads
    torch.testing.assert_close(model.state_dict(), _tiny_vit().state_dict())
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no scratch or old copy left


def test_an_intact_cache_is_checked_not_rebuilt(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    _register_tiny_standin(calls)
    folder = standins.build_standin(NAME)
    manifest = json.loads((folder / ".complete").read_text())
    assert manifest["format"] == 1 and manifest["version"] == "1"
    weights = folder / "model.safetensors"
    assert manifest["files"]["model.safetensors"] == {
        "bytes": weights.stat().st_size, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}
    (folder / ".DS_Store").write_bytes(b"Finder was here")  # hidden files are not the stand-in's: no rebuild
    for _ in range(3):
        assert standins.build_standin(NAME) == folder
        assert hub.resolve(NAME, cache_dir=tmp_path, quiet=True).path == str(folder)
    assert len(calls) == 1 and capsys.readouterr().out == ""


def test_a_new_recipe_version_rebuilds_and_a_corrupt_marker_is_damage(monkeypatch, tmp_path, capsys):
    calls = []
    _register_tiny_standin(calls)
    folder = standins.build_standin(NAME)
    manifest = json.loads((folder / ".complete").read_text())
    (folder / ".complete").write_text(json.dumps({**manifest, "version": "0"}))
    assert standins.standin_problem(NAME) == "is outdated (version 0, the course now builds version 1)"
    (folder / ".complete").write_text(json.dumps({**manifest, "format": 0}))
    assert standins.standin_problem(NAME) == "is outdated (manifest format 0, the course now writes 1)"
    (folder / ".complete").write_text('{"format": 1, "files": {"config.js')  # cut short
    assert standins.standin_problem(NAME) == "is damaged (.complete: not a readable manifest)"
    standins.build_standin(NAME)
    assert "is damaged (.complete: not a readable manifest); rebuilding it" in capsys.readouterr().out
    assert len(calls) == 2 and standins.standin_built(NAME)


def test_a_failing_build_leaves_nothing_behind(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def broken(folder):
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("out of disk")

    standins.register_standin(NAME, broken, about="broken")
    with pytest.raises(RuntimeError, match="out of disk"):
        hub.resolve(NAME, cache_dir=tmp_path, quiet=True)
    assert not standins.standin_dir(NAME).exists()
    assert list(standins.standin_dir(NAME).parent.iterdir()) == []


def test_unknown_names_and_bad_input_are_explained():
    with pytest.raises(KeyError, match="not a checkpoint the course uses"):
        hub.resolve("someone/else")
    with pytest.raises(TypeError, match="expects a checkpoint name"):
        hub.resolve(None)


# ---------------------------------------------------------------- the real path: offline means offline, failures fall back

def _repo_files(tmp_path) -> dict[str, bytes]:
    folder = tmp_path / "repo"
    _save_tiny_repo(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _quiet_about_retries(text: str) -> None:
    for word in ("Retrying", "retry", "Trying to resume", "Traceback", "reach the Hub", "connect to the Hub"):
        assert word not in text, f"printed {word!r}: {text}"


def test_cached_weights_and_no_network_go_offline_at_once(lay_out, monkeypatch, tmp_path, capfd):
    """A classroom after prepare: the hub hangs up on every connection; the cache holds the weights.
    The process must go offline, so one from_pretrained reads the cache and never asks again."""
    from fake_hub import FakeHub
    from transformers import ViTForImageClassification, ViTImageProcessor  # imported first: the timing is the course's

    cache = tmp_path / "hf-cache"
    _save_tiny_repo(tmp_path / "saved")
    lay_out(tmp_path / "saved", cache, NAME)
    with FakeHub({}, fault="hangup") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        resolved = hub.resolve(NAME, cache_dir=cache)
        ViTImageProcessor.from_pretrained(resolved.path, cache_dir=cache)
        ViTForImageClassification.from_pretrained(resolved.path, cache_dir=cache)
        assert len(server.requests) <= 1, f"after the probe nothing may ask the hub: {server.requests}"
    out = capfd.readouterr()
    assert resolved.real and "in the local cache; offline: the hub cannot be reached" in resolved.reason
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert out.out.strip().splitlines() == [resolved.banner]
    _quiet_about_retries(out.out + out.err)  # how long it takes (under 3 s): tests/benchmark.py


def test_a_hub_that_answers_is_downloaded_from_and_checked(monkeypatch, tmp_path, capfd):
    from fake_hub import FakeHub
    from transformers import ViTForImageClassification

    files = _repo_files(tmp_path)
    cache = tmp_path / "hf-cache"
    with FakeHub({NAME: files}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        resolved = hub.resolve(NAME, cache_dir=cache)
    assert resolved.real and resolved.reason == "downloaded from the hub", resolved
    assert hub.real_problem(NAME, cache) is None
    ViTForImageClassification.from_pretrained(NAME, cache_dir=cache, local_files_only=True)
    _quiet_about_retries(capfd.readouterr().out)


@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_a_download_that_fails_part_way_gives_one_line_the_standin_and_leaves_nothing(fault, monkeypatch, tmp_path, capfd):
    from fake_hub import FakeHub

    calls = []
    _register_tiny_standin(calls)
    cache = tmp_path / "hf-cache"
    with FakeHub({NAME: _repo_files(tmp_path)}, fault=fault) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        resolved = hub.resolve(NAME, cache_dir=cache)
        assert any("model.safetensors" in r for r in server.requests), "the weights were never asked for"
    out = capfd.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("[course]")]
    assert lines == [resolved.banner] and not resolved.real and len(calls) == 1
    assert "the hub answered, but the download failed: " in resolved.reason and "nothing was kept" in resolved.reason
    _quiet_about_retries(out.out + "\n".join(line for line in out.err.splitlines() if "%" not in line))  # tqdm bars aside
    leftovers = [p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert leftovers in ([], ["CACHEDIR.TAG"]), f"a half-written cache: {leftovers}"  # the tag marks the cache folder


def test_an_unreachable_hub_gives_the_standin_in_one_line(monkeypatch, tmp_path, capfd):
    import socket

    calls = []
    _register_tiny_standin(calls)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
        resolved = hub.resolve(NAME, cache_dir=tmp_path / "empty")
    out = capfd.readouterr()
    assert not resolved.real and resolved.reason.startswith("offline: the hub cannot be reached")
    assert out.out.strip().splitlines() == [resolved.banner]
    _quiet_about_retries(out.out + out.err)


def _flip_a_weights_byte(cache: Path) -> Path:
    blob = next(p for p in (cache / f"models--{NAME.replace('/', '--')}" / "blobs").iterdir()
                if p.stat().st_size > 1000 and p.read_bytes()[8:9] == b"{")  # the safetensors file
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    return blob


def test_a_corrupt_cached_file_offline_gives_one_line_and_the_standin(lay_out, monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = []
    _register_tiny_standin(calls)
    cache = tmp_path / "hf-cache"
    _save_tiny_repo(tmp_path / "saved")
    lay_out(tmp_path / "saved", cache, NAME)
    assert hub.resolve(NAME, cache_dir=cache, quiet=True).real
    blob = _flip_a_weights_byte(cache)
    resolved = hub.resolve(NAME, cache_dir=cache)
    out = capfd.readouterr().out
    assert not resolved.real and out.strip().splitlines() == [resolved.banner]
    assert "the cached copy is damaged (model.safetensors: contents changed" in resolved.reason
    assert blob.exists(), "offline, the course reports a damaged file; it does not delete the user's cache"
    blob.write_bytes(blob.read_bytes()[:-20])  # now truncated as well: found without hashing
    assert "model.safetensors: " in hub.real_problem(NAME, cache) and " of " in hub.real_problem(NAME, cache)


def test_a_corrupt_cached_file_online_is_downloaded_again(monkeypatch, tmp_path, capfd):
    from fake_hub import FakeHub

    files = _repo_files(tmp_path)
    cache = tmp_path / "hf-cache"
    with FakeHub({NAME: files}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        assert hub.resolve(NAME, cache_dir=cache, quiet=True).real
        _flip_a_weights_byte(cache)
        resolved = hub.resolve(NAME, cache_dir=cache)
    out = capfd.readouterr().out
    assert f"[course] the cached copy of {NAME} is damaged (model.safetensors: contents changed" in out
    assert resolved.real and hub.real_problem(NAME, cache) is None


def test_a_rehearsal_marks_real_weights_untrained(lay_out, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf-cache"
    _save_tiny_repo(tmp_path / "saved")
    lay_out(tmp_path / "saved", cache, NAME)
    assert hub.resolve(NAME, cache_dir=cache, quiet=True).trained
    monkeypatch.setenv("COURSE_REHEARSAL", "1")
    resolved = hub.resolve(NAME, cache_dir=cache, quiet=True)
    assert resolved.real and not resolved.trained and "rehearsal: random weights" in resolved.banner
    _register_tiny_standin([])
    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    assert hub.resolve(NAME, cache_dir=cache, quiet=True).trained  # stand-ins are always trained


# ---------------------------------------------------------------- openai's ViT-B/32 and its transformers twin

TWIN = "openai/clip-vit-base-patch32"


def _tiny_clip_repo(folder: Path):
    """A CLIPModel the size of a test, with openai's vocabulary and 77 tokens, weights rounded to half
    precision as the hub's (openai's fp16 weights stored as float32)."""
    from transformers import CLIPConfig, CLIPModel

    from course_utils.interop.clip_formats import clip_processor, write_clip_vocabulary

    torch.manual_seed(0)
    tower = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=1)  # openai: MLP 4 x width
    config = CLIPConfig(text_config=dict(tower, vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu"),
                        vision_config=dict(tower, image_size=32, patch_size=8, hidden_act="quick_gelu"), projection_dim=32)
    model = CLIPModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.save_pretrained(folder)
    processor = clip_processor(32)  # the files the hub publishes: the image processor's, the tokenizer's
    processor.image_processor.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    write_clip_vocabulary(folder)
    return model


def test_the_clip_twins_resolve_together_and_clip_load_reads_the_converted_twin(lay_out, monkeypatch, tmp_path, capsys):
    from course_utils.models.clip import import_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COURSE_CLIP_CACHE", str(tmp_path / "clip"))  # no openai archive there
    standins.register_standin(TWIN, lambda folder: None, about="the twin's stand-in")
    standins.register_standin("ViT-B/32", lambda folder: (folder / "model.pt").write_bytes(b"x"), about="mini", entry="model.pt")
    cache = tmp_path / "hf-cache"
    assert not hub.resolve("ViT-B/32", cache_dir=cache, quiet=True).real  # no twin: both stand-ins
    assert "as its twin openai/clip-vit-base-patch32: offline" in hub.resolve("ViT-B/32", cache_dir=cache, quiet=True).reason

    model = _tiny_clip_repo(tmp_path / "twin")
    lay_out(tmp_path / "twin", cache, TWIN)
    resolved = hub.resolve("ViT-B/32", cache_dir=cache)
    assert resolved.real and resolved.path.endswith("model.pt") and "converted for clip.load" in resolved.reason
    assert "[course] converting openai/clip-vit-base-patch32 for clip.load (once)" in capsys.readouterr().out
    assert hub.resolve("ViT-B/32", cache_dir=cache, quiet=True).path == resolved.path  # built once, then checked
    assert capsys.readouterr().out == ""

    clip = import_clip()
    loaded, preprocess = clip.load(resolved.path, device="cpu")
    images, tokens = torch.rand(2, 3, 32, 32), clip.tokenize(["a red circle", "a blue cross"])
    with torch.no_grad():
        ours = loaded(images, tokens)[0].softmax(-1)
        theirs = model(input_ids=tokens, pixel_values=images).logits_per_image.softmax(-1)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_openais_own_archive_is_used_when_its_digest_matches(lay_out, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COURSE_CLIP_CACHE", str(tmp_path / "clip"))
    cache = tmp_path / "hf-cache"
    _tiny_clip_repo(tmp_path / "twin")
    lay_out(tmp_path / "twin", cache, TWIN)
    archive = tmp_path / "clip" / "ViT-B-32.pt"
    archive.parent.mkdir()
    archive.write_bytes(b"openai's archive")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(hub, "clip_url", lambda name: f"https://openaipublic.example/clip/models/{digest}/ViT-B-32.pt")
    resolved = hub.resolve("ViT-B/32", cache_dir=cache, quiet=True)
    assert resolved.real and resolved.path == str(archive) and "openai's archive" in resolved.reason
    archive.write_bytes(b"openai's archive, changed")  # a damaged archive is not used: the twin is converted
    assert hub.openai_archive("ViT-B/32") is None


def test_the_course_knows_openais_address_of_each_clip_model():
    """The addresses are written down in the catalogue (openai's package keeps them in a private table)."""
    from course_utils.models.clip import import_clip

    for name, url in hub.OPENAI_URLS.items():
        assert import_clip().clip._MODELS[name] == url, name
