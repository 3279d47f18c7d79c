"""``python -m course_utils prepare``: download the real checkpoints online, build the stand-ins offline."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils.weights import prepare, standins
from course_utils.weights import resolver as hub

VIT, CONVNEXT, SWIN = "google/vit-base-patch16-224", "facebook/convnext-tiny-224", "microsoft/swin-base-patch4-window7-224"


@pytest.fixture
def caches(monkeypatch, tmp_path):
    """Empty course, Hugging Face and clip caches; no decision cached; offline unless a test says otherwise."""
    from huggingface_hub import constants

    hub_status = hub.hub_status  # the real one: a test may replace it
    hub_status.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COURSE_UTILS_CACHE", str(tmp_path / "course"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "clip_cache_dir", lambda: tmp_path / "clip")
    yield tmp_path
    hub_status.cache_clear()


@pytest.fixture
def quick_standins(monkeypatch, caches):
    """The course's registrations replaced by two stand-ins that build in milliseconds; records the builds."""
    monkeypatch.setattr(standins, "STANDINS", {})
    built = []

    def builder(name):
        def build(folder: Path):
            built.append(name)
            (folder / "config.json").write_text('{"model_type": "vit"}')
            (folder / "model.safetensors").write_bytes(b"\0" * 50_000)
        return build

    for name in (VIT, CONVNEXT):
        standins.register_standin(name, builder(name), about=f"a quick test stand-in for {name}")
    return built


# ---------------------------------------------------------------- offline: the stand-ins, built for real

@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_offline_builds_every_standin_reports_times_and_the_table(quick_standins, capsys):
    assert prepare.prepare([VIT, CONVNEXT], offline=True) == 0
    out = capsys.readouterr().out
    assert quick_standins == [VIT, CONVNEXT]
    assert len(re.findall(r"  built in \d+\.\d s, 50\.\d kB: ", out)) == 2  # the time each took
    assert "built 2 stand-in(s) in" in out
    table = out[out.index("checkpoints:"):]
    assert re.search(rf"  {re.escape(VIT)} +ch 03  stand-in: built\n", table)
    assert "prepare: 2 of 2 checkpoint(s) ready for offline use (0 real, 2 stand-in)\n" in out
    # the estimate comes first, the summary last
    seconds, mb, plan = prepare.estimate([VIT, CONVNEXT], online=False)
    assert plan == f"about {seconds:.0f} s on a 2-core laptop CPU and {prepare._size(mb * 1e6)} of disk"
    assert out.index(f"[course] prepare: {plan}; ") < out.index("[1/2]")
    assert re.search(rf"prepare: took \d+ s, 100\.\d kB on disk \(estimated: {re.escape(plan)}\)$", out.rstrip())

    assert prepare.prepare([VIT], offline=True) == 0  # a second run checks, and builds nothing
    assert re.search(r"already built, checked in \d+ ms", capsys.readouterr().out)
    assert quick_standins == [VIT, CONVNEXT]


def test_the_estimate_before_starting_and_a_disk_too_small(quick_standins, monkeypatch, capsys):
    seconds, mb, line = prepare.estimate([VIT, "someone/else"], online=False)
    assert (seconds, mb) == (prepare.ESTIMATES[VIT].build_s, prepare.ESTIMATES[VIT].build_mb)
    assert "plus 1 checkpoint(s) without an estimate" in line
    seconds, mb, line = prepare.estimate(list(prepare.ESTIMATES), online=True)
    assert mb > 7000 and "to download" in line and "at 10 MB/s" in line
    assert all(name in prepare.known_names() for name in prepare.ESTIMATES)

    monkeypatch.setattr(prepare, "free_disk", lambda path: 10_000)  # 10 kB free
    assert prepare.prepare([VIT, CONVNEXT], offline=True) == 1
    err = capsys.readouterr().err
    needed = prepare._size((prepare.ESTIMATES[VIT].build_mb + prepare.ESTIMATES[CONVNEXT].build_mb) * 1.2e6)
    assert f"not enough disk: about {needed} needed (with a 20% margin), 10.0 kB free" in err
    assert quick_standins == [], "nothing is built when the disk is too small"


def test_offline_reports_missing_standins_and_failed_builds_and_goes_on(quick_standins, capsys):
    def broken(folder):
        raise RuntimeError("out of disk\nand a second line")

    standins.register_standin(CONVNEXT, broken, about="a broken builder")
    assert prepare.prepare([CONVNEXT, SWIN, VIT], offline=True) == 1
    out = capsys.readouterr().out
    assert re.search(r"\[1/3\] facebook/convnext-tiny-224: stand-in, a broken builder\n"
                     r"  FAILED after \d+\.\d s: RuntimeError: out of disk\n", out)
    assert f"[2/3] {SWIN}: no stand-in yet (chapter 04)" in out
    assert quick_standins == [VIT] and standins.standin_built(VIT)  # the failures did not stop the rest
    assert "built 1 stand-in(s)" in out and "1 without a stand-in yet; 1 failed" in out
    assert f"{SWIN}  ch 04  unavailable offline" in out
    assert out.rstrip().splitlines()[-2] == (  # then the time and disk it took
        f"prepare: 1 of 3 checkpoint(s) ready for offline use (0 real, 1 stand-in); missing: {CONVNEXT}, {SWIN}")


def test_offline_rebuilds_a_damaged_standin_with_its_message(quick_standins, capsys):
    folder = standins.build_standin(VIT)
    (folder / "model.safetensors").write_bytes(b"\0" * 10)
    assert prepare.prepare([VIT], offline=True) == 0
    out = capsys.readouterr().out
    assert f"the cached stand-in for {VIT} is damaged (model.safetensors: 10 of 50,000 bytes); rebuilding it" in out
    assert re.search(r"  built in \d+\.\d s", out) and quick_standins == [VIT, VIT]


# ---------------------------------------------------------------- online: the downloads, faked

def _fake_hub_download(tmp_path, calls, lay_out, fail=()):
    """Stands in for prepare.download: records its calls and writes the files the course loads (the
    first of each group of ``needs``: valid JSON, valid safetensors), in the hub's cache layout."""
    import torch
    from safetensors.torch import save_file

    def download(ckpt):
        calls[ckpt.name] = ckpt.library
        if ckpt.name in fail:
            raise ConnectionError("the hub hung up\n(a long traceback)")
        if ckpt.library == "clip":  # its transformers twin came just before: it is converted when first resolved
            return
        saved = tmp_path / "downloaded" / ckpt.name
        for group in ckpt.needs:
            path = saved / group[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".safetensors":
                save_file({"w": torch.zeros(500_000)}, str(path))  # 2 MB of weights
            else:
                path.write_text(json.dumps({"pad": "x" * 990}) if path.suffix == ".json" else "#version: 0.2\n")
        lay_out(saved, hub.hf_cache_dir(), ckpt.name)  # blobs/, and snapshots/ linking to them

    return download


def _blob_bytes(name: str) -> int:
    """What the fake download of ``name`` put on disk: its blobs and refs/main (links are not counted)."""
    root = hub.hf_cache_dir() / ("models--" + name.replace("/", "--"))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def test_online_downloads_every_checkpoint_with_its_files_and_sums_the_disk(monkeypatch, caches, capsys, lay_out):
    monkeypatch.setattr(standins, "STANDINS", {})
    monkeypatch.setattr(hub, "hub_status", lambda: hub.HubStatus(True, "the hub answered in 0.1 s", 0.1))
    calls, fail = {}, {"microsoft/beit-base-patch16-224"}
    monkeypatch.setattr(prepare, "download", _fake_hub_download(caches, calls, lay_out, fail))
    # the plan is the real checkpoints' sizes (GBs): the disk check must not depend on this machine's free space
    monkeypatch.setattr(prepare, "free_disk", lambda path: 10**13)
    kept = []
    real_download_all = prepare.download_all
    monkeypatch.setattr(prepare, "download_all", lambda names: kept.extend(real_download_all(names)) or kept)

    assert prepare.prepare() == 1  # one download failed, and it has no stand-in
    out = capsys.readouterr().out
    assert calls == {name: c.library for name, c in hub.CATALOGUE.items()}  # every checkpoint, failure or not
    assert list(calls) == list(hub.CATALOGUE)  # in order
    steps = {s.name: s for s in kept}
    for name, ckpt in hub.CATALOGUE.items():
        if name in fail:
            assert not steps[name].ok and steps[name].bytes == 0
        else:
            assert steps[name].ok and steps[name].bytes == (0 if ckpt.library == "clip" else _blob_bytes(name)) > -1
    assert steps["google/vit-base-patch16-224"].bytes > 2_000_000
    total = sum(s.bytes for s in kept)
    assert f"downloaded 7 of 8 checkpoints: {total / 1e6:.1f} MB on disk in all; failed: {', '.join(fail)}" in out
    assert "  FAILED after 0.0 s: ConnectionError: the hub hung up\n" in out
    assert "[course] prepare: about 7.95 GB to download: 3 min at 50 MB/s, 13 min at 10 MB/s; " in out
    assert re.search(r"  google/vit-base-patch16-224 +ch 03  real: in the local cache\n", out)
    assert re.search(r"  ViT-B/32 +ch 05  real: in the local cache\n", out)  # its twin is there, to be converted
    assert out.rstrip().splitlines()[-2] == (  # then the time and disk it took
        "prepare: 7 of 8 checkpoint(s) ready for offline use (7 real, 0 stand-in); "
        "missing: microsoft/beit-base-patch16-224")


def test_the_file_patterns_keep_what_the_libraries_load_and_nothing_else():
    from huggingface_hub.utils import filter_repo_objects

    def kept(library, files):
        allow, ignore = prepare.FILES[library]
        return sorted(filter_repo_objects(files, allow_patterns=list(allow), ignore_patterns=list(ignore)))

    vit_repo = ["config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin",
                "tf_model.h5", "flax_model.msgpack", "onnx/model.onnx", "onnx/config.json", "README.md",
                ".gitattributes"]
    assert kept("transformers", vit_repo) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    clip_repo = ["config.json", "merges.txt", "vocab.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "preprocessor_config.json", "model.safetensors",
                 "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"]
    assert kept("transformers", clip_repo) == sorted(set(clip_repo) - {"pytorch_model.bin", "tf_model.h5",
                                                                        "flax_model.msgpack"})
    sd_repo = ["model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.safetensors",
               "v1-5-pruned-emaonly.ckpt", "scheduler/scheduler_config.json",
               "feature_extractor/preprocessor_config.json", "tokenizer/merges.txt", "tokenizer/vocab.json",
               "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
               "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
               "text_encoder/pytorch_model.bin", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
               "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.non_ema.safetensors",
               "unet/diffusion_pytorch_model.bin", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
               "safety_checker/config.json", "safety_checker/model.safetensors", "README.md"]
    assert kept("diffusers", sd_repo) == sorted(
        f for f in sd_repo if f.endswith((".json", ".txt")) or f in {
            "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors", "safety_checker/model.safetensors"})


# ---------------------------------------------------------------- the command line

@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_cli_prepare_offline_only_one_checkpoint(caches):
    def tiny(folder):  # the chapter 03 stand-in, as a lecture would install it (no training here)
        (folder / "config.json").write_text("{}")

    folder = standins.build_standin(VIT, build=tiny)  # the course's registration: same folder for the subprocess
    env = dict(os.environ, COURSE_UTILS_CACHE=str(caches / "course"), HF_HUB_CACHE=str(caches / "hf"),
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-m", "course_utils", "prepare", "--offline", "--only", VIT],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[1/1] {VIT}: stand-in, " in done.stdout and "already built, checked in" in done.stdout
    assert str(folder) in done.stdout and re.search(rf"  {re.escape(VIT)}  ch 03  stand-in: built\n", done.stdout)
    assert "prepare: 1 of 1 checkpoint(s) ready for offline use (0 real, 1 stand-in)\nprepare: took " in done.stdout


def test_cli_argument_errors_name_the_known_checkpoints(capsys):
    from course_utils.__main__ import main

    assert main(["prepare", "--only", VIT, "--only", "someone/else"]) == 2
    err = capsys.readouterr().err
    assert "prepare: unknown checkpoint(s) 'someone/else'; known: google/vit-base-patch16-224, " in err
    assert all(name in err for name in hub.CATALOGUE)
    assert main(["prepare", "--fast"]) == 2 and "unrecognized arguments: --fast" in capsys.readouterr().err
    assert main(["prepare", "--help"]) == 0 and "--only NAME" in capsys.readouterr().out
    assert main(["--help"]) == 0 and "prepare   download the real checkpoints" in capsys.readouterr().out
