"""The course's timing budgets, measured and printed: ``python tests/benchmark.py``.

Unit tests assert behaviour, never the clock (a busy machine must not fail them); the times the
course promises are measured here, each beside its budget:

- the hub check gives up on a hub that does not answer within its 2 s;
- with the real weights cached and no network, ``resolve`` and one ``from_pretrained`` take under 3 s;
- checking a cached 5 MB stand-in against its manifest takes milliseconds;
- drawing 10,000 captioned shapes takes a few seconds.

Exit status 0 whatever the numbers: it reports, it does not judge.
"""
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(what: str, budget: float, work) -> None:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    verdict = "within" if seconds <= budget else "OVER"
    print(f"{what:70s} {seconds:7.2f} s   ({verdict} its budget of {budget:g} s)", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="course-benchmark-"))
    os.environ["COURSE_UTILS_CACHE"] = str(work / "course")
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("COURSE_FORCE_STANDINS", None)
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from course_utils.data import shapes as S
    from course_utils.weights import resolver, standins
    from course_utils.weights.rehearse import lay_out

    name = "google/vit-base-patch16-224"
    saved = work / "saved"
    config = ViTConfig(image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=4, num_attention_heads=3,
                       intermediate_size=384, num_labels=10)  # about 5 MB of weights, like the bigger stand-ins
    ViTForImageClassification(config).save_pretrained(saved)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(saved)
    cache = work / "hf"
    lay_out(name, {p.name: p.read_bytes() for p in saved.iterdir()}, cache)

    def online_again():  # forget the last answer, as a new process would
        from huggingface_hub import constants

        resolver.hub_status.cache_clear()
        os.environ.pop("HF_HUB_OFFLINE", None)
        constants.HF_HUB_OFFLINE = False

    def resolve_and_load():
        ckpt = resolver.resolve(name, cache_dir=cache, quiet=True)
        ViTImageProcessor.from_pretrained(ckpt.path)
        ViTForImageClassification.from_pretrained(ckpt.path)

    online_again()
    with socket.socket() as hanging:  # listening, never answering: a hub that hangs
        hanging.bind(("127.0.0.1", 0))
        hanging.listen()
        os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{hanging.getsockname()[1]}"
        timed("the hub check, against a hub that never answers", resolver.PROBE_TIMEOUT_S + 0.5, resolver.hub_status)
        online_again()
        timed("resolve + from_pretrained, real weights cached, the hub hanging", 3.0, resolve_and_load)
    with socket.socket() as closed:  # bound, not listening: connections are refused, as with no network
        closed.bind(("127.0.0.1", 0))
        os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{closed.getsockname()[1]}"
        online_again()
        timed("resolve + from_pretrained, real weights cached, no network", 3.0, resolve_and_load)

    standins.register_standin(name, lambda folder: ViTForImageClassification(config).save_pretrained(folder),
                              about="a 5 MB benchmark ViT", version="benchmark")
    standins.build_standin(name)
    timed("checking a cached 5 MB stand-in against its manifest (5 times)", 5 * 0.25,
          lambda: [standins.standin_built(name) for _ in range(5)])

    S.make_shapes(10, size=32)  # warm up
    timed("drawing 10,000 captioned shapes at 32 px", 5.0, lambda: S.make_shapes(10_000, size=32, seed=0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
