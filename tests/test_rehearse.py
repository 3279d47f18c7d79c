"""The rehearsal of the real path: a cache laid out as the hub serves it, and a runner that notices failures."""
import json
from pathlib import Path

import nbformat
import pytest

from course_utils.weights import rehearse
from course_utils.weights import resolver as hub

pytestmark = pytest.mark.slow  # every test here starts kernels, servers or builds: seconds to minutes



@pytest.fixture
def cache(rehearsal_hub):
    """The reduced-width rehearsal cache (tests/conftest.py), the one tests/test_real_path.py runs the notebooks against."""
    return rehearsal_hub


def _config(cache, name, path="config.json"):
    return json.loads(hub.cached_file(name, path, cache).read_text())


def test_every_checkpoint_is_cached_whole_in_the_hubs_layout(cache):
    for name, ckpt in hub.CATALOGUE.items():
        if ckpt.library == "clip":
            continue  # openai's archive: converted from its transformers twin, as on a student's machine today
        assert hub.real_problem(name, cache) is None, name
        root = cache / f"models--{name.replace('/', '--')}"
        commit = (root / "refs" / "main").read_text()
        links = [p for p in (root / "snapshots" / commit).rglob("*") if p.is_file()]
        assert links and all(p.is_symlink() and p.resolve().parent == root / "blobs" for p in links)


def test_the_published_files_and_their_legacy_keys_are_kept(cache):
    vit = json.loads(hub.cached_file("google/vit-base-patch16-224", "preprocessor_config.json", cache).read_text())
    assert vit["feature_extractor_type"] == "ViTFeatureExtractor" and "image_processor_type" not in vit
    deit = _config(cache, "facebook/deit-base-patch16-224")
    assert deit["model_type"] == "vit" and deit["architectures"] == ["ViTForImageClassification"]
    assert _config(cache, "facebook/deit-base-patch16-224", "preprocessor_config.json")["size"] == 256
    sd = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    index = _config(cache, sd, "model_index.json")
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    assert index["safety_checker"] == ["stable_diffusion", "StableDiffusionSafetyChecker"]
    assert index["feature_extractor"][1] in {"CLIPImageProcessor", "CLIPFeatureExtractor"}
    clip = _config(cache, "openai/clip-vit-base-patch32")
    assert clip["text_config"]["eos_token_id"] == 2  # the legacy id transformers pools with argmax for


def test_reduced_widths_keep_every_real_interface(cache):
    for name in ["google/vit-base-patch16-224", "microsoft/swin-base-patch4-window7-224",
                 "microsoft/beit-base-patch16-224", "facebook/deit-base-patch16-224", "facebook/convnext-tiny-224"]:
        config = _config(cache, name)
        assert config["image_size"] == 224 and len(config["id2label"]) == 1000, name
        assert config["id2label"]["285"] == "Egyptian cat" and config["label2id"]["Egyptian cat"] == 285
    clip = _config(cache, "openai/clip-vit-base-patch32")
    assert clip["projection_dim"] == 512 and clip["text_config"]["max_position_embeddings"] == 77
    assert clip["vision_config"]["image_size"] == 224 and clip["text_config"]["vocab_size"] == 49408
    sd = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    unet, vae = _config(cache, sd, "unet/config.json"), _config(cache, sd, "vae/config.json")
    assert unet["in_channels"] == unet["out_channels"] == vae["latent_channels"] == 4
    assert unet["cross_attention_dim"] == _config(cache, sd, "text_encoder/config.json")["hidden_size"] == 768
    assert unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1) == vae["sample_size"] == 512  # 8x VAE
    assert _config(cache, sd, "tokenizer/tokenizer_config.json")["model_max_length"] == 77
    assert (_config(cache, sd, "safety_checker/config.json")["vision_config_dict"]["hidden_size"]
            == _config(cache, sd, "safety_checker/config.json")["vision_config"]["hidden_size"] == 64)


def _notebook(tmp_path, *sources) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def test_the_runner_passes_a_real_run_and_names_what_goes_wrong(cache, tmp_path):
    """A notebook runs in the environment the rehearsal gives it: the cache, no network, COURSE_REHEARSAL."""
    with rehearse.unreachable_port() as port:
        env = rehearse.kernel_environment(cache, port, tmp_path / "course")
        assert "COURSE_FORCE_STANDINS" not in env and "HF_HUB_OFFLINE" not in env and env["COURSE_REHEARSAL"] == "1"
        real = rehearse.run_notebook(_notebook(tmp_path, (
            "from course_utils.weights.resolver import resolve\n"
            "from transformers import AutoImageProcessor, AutoModelForImageClassification\n"
            "ckpt = resolve('facebook/deit-base-patch16-224')\n"
            "model = AutoModelForImageClassification.from_pretrained(ckpt.path)\n"
            "assert type(model).__name__ == 'ViTForImageClassification' and not ckpt.trained\n"
            "assert type(AutoImageProcessor.from_pretrained(ckpt.path)).__name__ == 'DeiTImageProcessor'")), env)
        assert real.ok and real.real == ["facebook/deit-base-patch16-224"], real.problems
        skipped = rehearse.run_notebook(_notebook(tmp_path, "raise ValueError('not on the real path')",
                                                  "from course_utils.weights.resolver import resolve"), env,
                                        reached_only=True)
        assert skipped.ok, skipped.problems
        broken = rehearse.run_notebook(_notebook(tmp_path, "x = 1", "raise ValueError('planted')"), env)
        assert not broken.ok and broken.problems == ["cell 1 raised ValueError: planted"]
        noisy = rehearse.run_notebook(_notebook(tmp_path, "print('[course] ViT-B/32: stand-in, mini (offline)')",
                                                "print('Retrying in 8s [Retry 1/5].')"), env)
        assert [p.split(":")[0] for p in noisy.problems] == ["got the stand-in for ViT-B/32 although the cache holds it",
                                                             "printed a retry or a failed connection"]


def test_the_cells_the_real_path_reaches():
    """The rehearsal runs a cell that resolves, the cells after it that use what it made, and what those need; names
    bound inside a loop, a comprehension, a with or a function are the cell's own."""
    cells = ["import torch\nfrom course_utils.weights.resolver import resolve",      # 0: needed (torch, resolve)
             "x = torch.randn(3)\nplt_title = [v for v in 'ab']",                   # 1: the stand-in path's business
             "ckpt = resolve('google/vit-base-patch16-224')\nfor i in range(2):\n    n = i",  # 2: resolves
             "y = x * 2",                                                             # 3: unrelated
             "if ckpt.real:\n    z = 1\n    print(z)\nwith open('f') as f:\n    f.read()",  # 4: uses ckpt
             "w = y + 1",                                                             # 5: unrelated
             "size = len(z) + len(w)",                                                # 6: uses z (from 4), needs 5, 3, 1
             "%matplotlib inline\nprint(ckpt)",                                       # 7: a magic, then ckpt
             "def f(:\n    pass"]                                                   # 8: does not parse: run
    assert rehearse.reached_cells(cells) == {0, 1, 2, 3, 4, 5, 6, 7, 8}
    cells[6] = "size = len(z)"
    assert rehearse.reached_cells(cells) == {0, 2, 4, 6, 7, 8}
    assert rehearse.reached_cells(cells[:2]) == set()
    for path in rehearse.notebooks(real_only=True):  # each reaches its resolving cells and the imports before them
        code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        reached = rehearse.reached_cells(code)
        assert 0 in reached and {i for i, source in enumerate(code) if "resolve(" in source} <= reached, path.name
    stable = [c.source for c in nbformat.read(rehearse.ROOT / "notebooks/07_stable_diffusion.ipynb", as_version=4).cells
              if c.cell_type == "code"]
    assert len(rehearse.reached_cells(stable)) < len(stable) / 2, "07's live training and sampling run the same either way"


def test_the_notebooks_with_a_real_branch_are_found():
    found = {p.name for p in rehearse.notebooks(real_only=True)}
    assert {"03_vision_transformer.ipynb", "04_vit_huggingface.ipynb", "05_clip.ipynb", "07_stable_diffusion.ipynb",
            "e10_transformers.ipynb"} <= found
    assert "01_attention.ipynb" not in found and not rehearse.resolves(Path(rehearse.ROOT / "notebooks/01_attention.ipynb"))


def test_the_layout_is_the_one_huggingface_hub_writes(tmp_path, monkeypatch):
    """The same repository downloaded by huggingface_hub's own snapshot_download (from a local hub that
    names files as the real one does: LFS weights by sha256, the rest by git's sha1) gives the same
    snapshot, file for file and blob for blob, as the rehearsal's lay_out."""
    from fake_hub import FakeHub
    from huggingface_hub import constants, snapshot_download

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # CI sets it; this test's hub is on 127.0.0.1
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    name = "google/vit-base-patch16-224"
    files = rehearse.repository(name, full=False, scratch=tmp_path / "scratch")
    ours = rehearse.lay_out(name, files, tmp_path / "ours")
    with FakeHub({name: files}) as server:
        theirs = Path(snapshot_download(name, cache_dir=str(tmp_path / "theirs"), endpoint=server.url))
    listing = lambda root: {p.relative_to(root).as_posix(): p.resolve().name for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert listing(ours) == listing(theirs)
