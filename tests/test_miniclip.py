"""The mini-CLIP (chapter 05): its maths against openai's own forward, its two export formats against
each other, and the committed recipe weights: they load through both libraries and still score."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from course_utils.data import shapes as S
from course_utils.eval.metrics import caption_truth, recall_at_k, zero_shot_accuracy
from course_utils.interop.clip_formats import clip_tokenizer, save_for_clip, to_transformers, with_context
from course_utils.models.clip import (
    MiniCLIPConfig,
    Tokens,
    build_clip,
    clip_loss,
    clip_normalize,
    encode,
    import_clip,
    zero_shot_probs,
)
from course_utils.training.clip import ClipTrainConfig, train_clip
from course_utils.weights.recipes import MINICLIP_DIR, load_miniclip, measure_miniclip, miniclip_record

clip = import_clip()


def random_model(seed=0, **changes):
    """A mini-CLIP with random, non-trivial weights, rounded to half precision (what clip.load keeps)."""
    torch.manual_seed(seed)
    model = build_clip(replace(MiniCLIPConfig.tiny(), **changes))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
            p.copy_(p.half().float())
    return model.eval()


# ---------------------------------------------------------------- the maths, against openai's forward

def test_clip_loss_is_the_cross_entropy_of_openais_logits():
    model = random_model()
    data = S.make_shapes(12, 32, seed=0)
    images, tokens = clip_normalize(data.images), clip.tokenize(data.captions, context_length=16)
    with torch.no_grad():
        logits_per_image, logits_per_text = model(images, tokens)  # openai's own forward
        f, g = model.encode_image(images), model.encode_text(tokens)
    target = torch.arange(12)
    want = (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_text, target)) / 2
    torch.testing.assert_close(clip_loss(f, g, model.logit_scale.exp()), want)
    torch.testing.assert_close(zero_shot_probs(f, g, model.logit_scale.exp()), logits_per_image.softmax(-1))


def test_clip_loss_is_small_for_matched_and_large_for_shuffled_pairs():
    f = F.normalize(torch.randn(32, 16), dim=-1)
    assert clip_loss(f, f * 3, 100.0) < 0.01
    assert clip_loss(f, f[torch.randperm(32)], 100.0) > 1.0


def test_tokens_match_clip_tokenize_and_reject_long_captions():
    tokens = Tokens(16)
    captions = ["a small red circle on the left", "a red circle", "a small red circle on the left"]
    torch.testing.assert_close(tokens(captions), clip.tokenize(captions, context_length=16))
    with pytest.raises(RuntimeError, match="too long"):
        tokens(["a " * 20 + "circle"])


def test_encode_needs_exactly_one_input():
    with pytest.raises(ValueError, match="one of the two"):
        encode(random_model())


# ---------------------------------------------------------------- training and the hybrid

@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_train_clip_records_what_it_measures_and_clips_the_temperature():
    torch.manual_seed(0)
    model = build_clip(MiniCLIPConfig.tiny())
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # exp(10) is far above 100: the loop must clip it
    history = train_clip(model, ClipTrainConfig(steps=3, batch_size=16, eval_every=2, eval_size=20), progress=False)
    assert len(history.loss) == len(history.logit_scale) == 3
    assert history.eval_step == [2, 3] and len(history.heldout_accuracy) == 2
    assert max(history.logit_scale) <= 100.0 + 1e-3
    assert history.seconds > 0 and not model.training


def test_hybrid_swaps_only_the_patch_embedding():
    plain, hybrid = random_model(), random_model(stem_channels=8)
    assert {n for n, _ in hybrid.named_parameters()} - {n for n, _ in plain.named_parameters()} == {
        "visual.conv1.stem.conv1.weight", "visual.conv1.stem.conv1.bias", "visual.conv1.stem.conv2.weight",
        "visual.conv1.stem.conv2.bias", "visual.conv1.patch.weight"}
    assert hybrid.encode_image(torch.zeros(2, 3, 32, 32)).shape == (2, 64)
    assert hybrid.dtype == torch.float32  # openai's CLIP.dtype reads visual.conv1.weight
    with pytest.raises(ValueError, match="conv stem"):
        with_context(hybrid)


# ---------------------------------------------------------------- the two libraries' formats

def test_longer_context_leaves_text_features_unchanged():
    model = random_model()
    longer = with_context(model)
    texts = S.class_prompts("a picture of a large {colour} {shape} in the centre")
    with torch.no_grad():
        torch.testing.assert_close(longer.encode_text(clip.tokenize(texts)),
                                   model.encode_text(clip.tokenize(texts, context_length=16)))


def test_clip_load_reads_the_archive_and_gives_the_same_features(tmp_path):
    model = random_model()
    path = save_for_clip(model, tmp_path / "model.pt")
    loaded, preprocess = clip.load(str(path), device="cpu")
    data = S.make_shapes(4, 32, seed=1)
    texts = S.class_prompts()[:5]
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(clip_normalize(data.images)), model.encode_image(clip_normalize(data.images)))
        torch.testing.assert_close(loaded.encode_text(clip.tokenize(texts)),
                                   model.encode_text(clip.tokenize(texts, context_length=16)))
    assert loaded.visual.input_resolution == 32


def test_transformers_clipmodel_equals_openais():
    model = random_model()
    hf = to_transformers(model)
    data = S.make_shapes(4, 32, seed=2)
    texts = S.class_prompts()[:6]
    tokenizer = clip_tokenizer()
    ids = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        projected = hf.get_image_features(pixel_values=clip_normalize(data.images)).pooler_output  # (4, D)
        torch.testing.assert_close(projected, model.encode_image(clip_normalize(data.images)), atol=1e-5, rtol=1e-4)
        out = hf(input_ids=ids.input_ids, attention_mask=ids.attention_mask, pixel_values=clip_normalize(data.images))
        logits, _ = model(clip_normalize(data.images), clip.tokenize(texts, context_length=16))
    torch.testing.assert_close(out.logits_per_image, logits, atol=1e-4, rtol=1e-4)


def test_the_tokenizer_built_from_clips_vocabulary_gives_clips_ids():
    tokenizer = clip_tokenizer()
    texts = ["a small red circle on the left", "A Photo of a CAT!", "there is a yellow square at the bottom",
             "naïve café, 3 dogs & 2 birds"]
    for text in texts:
        ids = clip.tokenize([text])[0]
        ids = ids[ids != 0].tolist()
        assert tokenizer(text).input_ids == ids, text


# ---------------------------------------------------------------- retrieval helpers

def test_caption_truth_and_recall():
    data = S.make_shapes(40, 32, seed=3, split="all")
    truth = caption_truth(data)

    def true_of(text, j):  # an independent reading: does caption text describe image j?
        words = f" {text} "
        return (f" {S.COLOURS[data.colour[j]]} {S.SHAPES[data.shape[j]]} " in words
                and (not any(f" {size} " in words for size in S.SIZES) or f" {S.SIZES[data.size_id[j]]} " in words)
                and (not any(p in text for p in S.POSITION_PHRASES.values())
                     or S.POSITION_PHRASES[S.POSITIONS[data.position[j]]] in text))

    want = torch.tensor([[true_of(data.captions[i], j) for j in range(40)] for i in range(40)])
    assert torch.equal(truth, want)
    assert truth.diagonal().all() and truth.sum() > 40  # own captions, and some shared ("a red circle")
    assert recall_at_k(truth.float(), truth, ks=(1, 5)) == {1: 1.0, 5: 1.0}
    assert recall_at_k(-truth.float(), truth, ks=(1,))[1] < 0.5


# ---------------------------------------------------------------- the committed recipe

def test_the_recipe_record_says_how_it_was_made():
    record = miniclip_record()
    for key in ("config", "training", "seed", "seconds", "machine", "quality", "script"):
        assert key in record, key
    assert record["quality"]["seen"] >= 0.99 and record["quality"]["heldout"] >= 0.90, record["quality"]
    weights = MINICLIP_DIR / "model.safetensors"
    assert weights.stat().st_size < 8_000_000  # half precision: a few MB


def test_the_recipe_weights_still_score_what_was_recorded():
    record = miniclip_record()
    quality = measure_miniclip(load_miniclip(), size=500)
    assert quality["seen"] >= record["quality"]["seen"] - 0.02, quality
    assert quality["heldout"] >= record["quality"]["heldout"] - 0.04, quality


@pytest.mark.slow  # trains, builds or runs a pipeline: seconds
def test_the_stand_ins_load_through_both_libraries(monkeypatch, tmp_path):
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    from course_utils.weights.resolver import resolve

    monkeypatch.setenv("COURSE_FORCE_STANDINS", "1")
    archive = resolve("ViT-B/32", quiet=True)
    assert not archive.real and archive.path.endswith("model.pt")
    model, preprocess = clip.load(archive.path, device="cpu")
    folder = resolve("openai/clip-vit-base-patch32", quiet=True).path
    hf, processor = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)

    data = S.make_shapes(100, 32, seed=5, split="heldout")
    pictures = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype("uint8")) for im in data.images]
    prompts = S.class_prompts()
    with torch.no_grad():
        logits, _ = model(torch.stack([preprocess(p) for p in pictures]), clip.tokenize(prompts))
        hf_logits = hf(**processor(text=prompts, images=pictures, return_tensors="pt", padding=True)).logits_per_image
    accuracy = (logits.argmax(-1) == data.pair).float().mean().item()
    assert accuracy >= 0.85, accuracy  # held-out pairs through clip.load: the recipe scores about 0.9
    torch.testing.assert_close(hf_logits.softmax(-1), logits.softmax(-1), atol=1e-3, rtol=0)
    assert zero_shot_accuracy(load_miniclip(), data) == pytest.approx(accuracy, abs=0.02)
