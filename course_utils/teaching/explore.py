"""Interactive explorers for the lectures: attention maps, the diffusion process, guidance.

An explorer is an ipywidgets ``VBox`` (CSS class ``course-explorer``): a row of controls above one figure, an
``ipywidgets.Image`` (CSS class ``course-explorer-figure``) redrawn whenever a control moves, on a plain matplotlib
``Figure`` (never through pyplot, so no second, stale copy of the picture reaches the notebook). Where no widget front
end runs (nbval, nbconvert, a plain viewer), the output still carries a PNG of the starting state and a one-line text
description, so every viewer shows a figure and nbval compares a stable line of text.

    explorer = attention_explorer(image, maps, patch_size=4, cls_token=True)
    explorer                      # last line of a cell: the widget, or its picture
    explorer.set(layer=3, query=5)  # the same moves from code, e.g. in a test
"""
from __future__ import annotations

import base64
import io
from collections.abc import Callable

import torch
from matplotlib.figure import Figure

__all__ = ["Explorer", "attention_explorer", "diffusion_explorer", "guidance_explorer"]


def figure_png(fig: Figure, dpi: int = 72) -> bytes:
    """A matplotlib figure as PNG bytes (a low dpi keeps notebooks small)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - ipywidgets is a course dependency
        raise ImportError("the explorers need ipywidgets: pip install 'ipywidgets>=8'") from err
    return ipywidgets


class Explorer:
    """Controls plus a figure that ``draw(**values)`` redraws; see the module docstring.

    ``controls`` maps a name to an ipywidgets control whose ``.value`` is passed to ``draw`` under
    that name. ``describe(**values)`` gives the one-line text shown where widgets cannot run.
    """

    def __init__(self, controls: dict, draw: Callable[..., Figure], describe: Callable[..., str]):
        widgets = _widgets()
        self.controls = controls
        self._draw, self._describe = draw, describe
        self.figure = widgets.Image(format="png")
        self.figure.add_class("course-explorer-figure")
        self.widget = widgets.VBox([widgets.HBox(list(controls.values())), self.figure])
        self.widget.add_class("course-explorer")
        self.redraws = 0  # how many times the figure was drawn: one at start, one per move
        self._redraw()
        for control in controls.values():
            control.observe(self._redraw, names="value")

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def set(self, **values) -> Explorer:
        """Move controls from code, as a user would: ``explorer.set(head=2)``; the figure redraws."""
        if unknown := set(values) - set(self.controls):
            raise TypeError(f"unknown control(s) {sorted(unknown)}; this explorer has {list(self.controls)}")
        for name, value in values.items():
            self.controls[name].value = value
        return self

    def png(self) -> bytes:
        """The figure as it is now, PNG bytes."""
        return bytes(self.figure.value)

    def _redraw(self, change=None) -> None:
        self.figure.value = figure_png(self._draw(**self.values))
        self.redraws += 1

    def __repr__(self) -> str:
        return self._describe(**self.values)

    def _repr_mimebundle_(self, **kwargs) -> dict:
        # The widget for front ends that run widgets; a PNG and a line of text for everything else.
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = repr(self)
        bundle["image/png"] = base64.b64encode(self.png()).decode("ascii")
        return bundle


def _names(names, count: int, what: str) -> list[str]:
    names = list(names) if names is not None else [f"{what} {i}" for i in range(count)]
    if len(names) != count:
        raise ValueError(f"expected {count} {what} names, got {len(names)}: {names}")
    return names


def attention_explorer(image: torch.Tensor, maps, patch_size: int, layer_names=None, head_names=None,
                       cls_token: bool = False, layer: int = 0, head: int = 0, query: int = 0,
                       layer_label: str = "layer") -> Explorer:
    """Pick a layer, a head and a query; see where that query looks in the image.

    ``image``: (3, H, W) or (1, H, W) in [0, 1]. ``maps``: one attention tensor per layer, each (heads, N, N) with rows
    the queries, N = (H/P) * (W/P) patches, plus one when ``cls_token`` (then token 0 is [CLS], and query 0 means
    [CLS]). The left panel shows the chosen head, the right one the mean over heads, both over the patches (the [CLS]
    key's share is in the title). ``layer_label`` names the first control, for maps that are not layers of one model.
    """
    from course_utils.teaching.plotting import attention_over_image

    widgets = _widgets()
    maps = [torch.as_tensor(m).detach().float().cpu() for m in maps]
    if not maps or any(m.ndim != 3 for m in maps):
        raise ValueError(f"maps: expected a list of (heads, N, N) tensors, one per layer; got shapes {[tuple(m.shape) for m in maps]}")
    heads, N = maps[0].shape[0], maps[0].shape[-1]
    image = torch.as_tensor(image).detach().float().cpu()
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image: expected (3, H, W) or (1, H, W), got {tuple(image.shape)}")
    image = image.expand(3, -1, -1)  # grey as RGB
    grid_h, grid_w = image.shape[1] // patch_size, image.shape[2] // patch_size
    first = 1 if cls_token else 0  # index of the first patch token
    if N != grid_h * grid_w + first:
        raise ValueError(f"maps have N = {N} tokens, but a {tuple(image.shape[1:])} image in {patch_size} px patches "
                         f"has {grid_h * grid_w}{' plus [CLS]' if cls_token else ''} = {grid_h * grid_w + first}")
    layer_names = _names(layer_names, len(maps), "layer")
    head_names = _names(head_names, heads, "head")
    style = {"description_width": "initial"}
    controls = {
        "layer": widgets.Dropdown(options=[(name, i) for i, name in enumerate(layer_names)], value=layer, description=layer_label, style=style),
        "head": widgets.Dropdown(options=[(name, i) for i, name in enumerate(head_names)], value=head, description="head", style=style),
        "query": widgets.IntSlider(value=query, min=0, max=N - 1, description="query token", style=style,
                                   continuous_update=False),
    }

    def query_name(query: int) -> str:
        if query < first:
            return "[CLS]"
        row, col = divmod(query - first, grid_w)
        return f"patch {query - first} (row {row}, column {col})"

    def draw(layer: int, head: int, query: int) -> Figure:
        weights = maps[layer][:, query]  # (heads, N): where this query looks, per head
        fig = Figure(figsize=(6.4, 3.4))
        axes = fig.subplots(1, 2)
        outline = query - first if query >= first else None  # the query's own patch, outlined
        for ax, w, what in [(axes[0], weights[head], head_names[head]), (axes[1], weights.mean(0), "mean of the heads")]:
            attention_over_image(image, w[first:], patch_size, ax=ax, query=outline)
            cls_share = f", [CLS] {w[0]:.0%}" if cls_token else ""
            ax.set_title(f"{what}\nmax {w[first:].max():.0%}{cls_share}", fontsize=9)
        fig.suptitle(f"{layer_names[layer]}: query {query_name(query)}", fontsize=10)
        return fig

    def describe(layer: int, head: int, query: int) -> str:
        name = layer_names[layer]
        chosen = name if name.startswith(layer_label) else f"{layer_label} {name!r}"  # "layer 3", "tokens 'raw'"
        return (f"Attention explorer ({len(maps)} x {heads} maps of {N} tokens): {chosen}, "
                f"{head_names[head]}, query {query_name(query)}. Move the controls in JupyterLab; "
                f"elsewhere this picture shows that starting state.")

    return Explorer(controls, draw, describe)


def diffusion_explorer(model: torch.nn.Module, x0: torch.Tensor, alphas_cumprod: torch.Tensor, t: int = 500,
                       seed: int = 0, step: int = 10) -> Explorer:
    """A timestep slider: the noisy x_t, and the model's prediction of x_0 from it, at that step.

    ``x0``: (n, C, H, W) clean images in [-1, 1]. The noise is drawn once (``seed``), so moving the
    slider moves along one forward trajectory per image: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.
    """
    from course_utils.models.diffusion import predict_eps, predict_x0, q_sample

    widgets = _widgets()
    T = len(alphas_cumprod)
    x0 = x0.detach().float().cpu()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))  # one eps per image, fixed
    controls = {"t": widgets.IntSlider(value=t, min=0, max=T - 1, step=step, description="timestep t",
                                       continuous_update=False, style={"description_width": "initial"})}
    device = next(model.parameters()).device

    def draw(t: int) -> Figure:
        steps = torch.full((len(x0),), t, dtype=torch.long)
        x_t = q_sample(x0, steps, noise, alphas_cumprod)  # (n, C, H, W)
        with torch.no_grad():
            eps = predict_eps(model, x_t.to(device), t).cpu()
        x0_hat = predict_x0(x_t, eps, alphas_cumprod[t]).clamp(-1, 1)
        rows = [("x_0", x0), (f"x_t, t = {t}", x_t), ("predicted x_0", x0_hat)]
        fig = Figure(figsize=(1.0 * len(x0) + 1.2, 3.4))
        axes = fig.subplots(3, len(x0), squeeze=False)
        for r, (label, images) in enumerate(rows):
            for ax, image in zip(axes[r], images):
                ax.imshow(((image[0] + 1) / 2).clamp(0, 1), cmap="gray", vmin=0, vmax=1)
                ax.set(xticks=[], yticks=[])
            axes[r, 0].set_ylabel(label, fontsize=9)
        abar = float(alphas_cumprod[t])
        error = (x0_hat - x0).pow(2).mean().item()
        fig.suptitle(f"t = {t}: signal sqrt(abar) = {abar ** 0.5:.2f}, noise sqrt(1-abar) = {(1 - abar) ** 0.5:.2f}; "
                     f"MSE of predicted x_0 {error:.3f}", fontsize=9)
        return fig

    def describe(t: int) -> str:
        return (f"Diffusion explorer ({len(x0)} images, T = {T}): t = {t}. Move the slider in JupyterLab; "
                f"elsewhere this picture shows that starting state.")

    return Explorer(controls, draw, describe)


def guidance_explorer(parts, prompt: str = "a red circle", guidance_scale: float = 3.0, n: int = 4,
                      steps: int = 25, seed: int = 0, judge=None) -> Explorer:
    """A prompt box and a guidance-scale slider over the course's Stable Diffusion parts.

    Each change draws ``n`` images with DDIM (``steps``) and classifier-free guidance, from the same
    starting noise (``seed``), so only the prompt and the scale change between pictures. With a
    ``judge`` (``course_utils.models.judges``), each image is titled with what the judge reads in it.
    """
    from course_utils.data.shapes import COLOURS, SHAPES
    from course_utils.models.sd import generate

    widgets = _widgets()
    style = {"description_width": "initial"}
    controls = {
        "prompt": widgets.Text(value=prompt, description="prompt (Enter)", continuous_update=False, style=style),
        "guidance_scale": widgets.FloatSlider(value=guidance_scale, min=1.0, max=10.0, step=0.5, description="guidance scale",
                                              continuous_update=False, style=style),
    }

    def draw(prompt: str, guidance_scale: float) -> Figure:
        images = generate(parts, [prompt] * n, guidance_scale=guidance_scale, steps=steps, seed=seed)  # (n, 3, 32, 32)
        readings = judge.read(images) if judge is not None else None
        fig = Figure(figsize=(1.6 * n, 2.1))
        axes = fig.subplots(1, n, squeeze=False)[0]
        for i, ax in enumerate(axes):
            ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1))
            ax.axis("off")
            if readings is not None:
                ax.set_title(f"{COLOURS[readings['colour'][i]]} {SHAPES[readings['shape'][i]]}", fontsize=8)
        fig.suptitle(f'"{prompt}", guidance {guidance_scale:g}, {steps} DDIM steps', fontsize=9)
        return fig

    def describe(prompt: str, guidance_scale: float) -> str:
        return (f'Guidance explorer ({n} images, {steps} DDIM steps): "{prompt}" at guidance {guidance_scale:g}. '
                f"Type a prompt and move the slider in JupyterLab; elsewhere this picture shows that starting state.")

    return Explorer(controls, draw, describe)
