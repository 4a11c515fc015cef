"""Figures, written as PNG files whole: detections on an image, augmented training samples,
training curves and precision/recall curves (matplotlib, Agg backend)."""

import numpy as np

from .errors import UserError
from .files import atomic_save


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_box(ax, box, text, color, lw, fontsize):
    """One labelled corner box (pixels) on a matplotlib axis."""
    x1, y1, x2, y2 = box
    ax.add_patch(_pyplot().Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=lw, color=color))
    ax.text(
        x1,
        y1,
        text,
        color="white",
        fontsize=fontsize,
        bbox=dict(facecolor=color, alpha=0.8, pad=1, lw=0),
    )


def _save(fig, path, dpi):
    """Write the figure as a PNG whole, then rename it into place."""
    fig.tight_layout()
    atomic_save(lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), path)
    _pyplot().close(fig)


def draw(img, detections, path):
    """Save ``img`` with its detections (``deploy.io.detections_to_list``) as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]))
    ax.imshow(img)
    colors = plt.get_cmap("tab10")
    names = sorted({d["cls"] for d in detections})
    for d in detections:
        _draw_box(
            ax,
            d["box"],
            "%s %.2f" % (d["cls"], d["score"]),
            colors(names.index(d["cls"]) % 10),
            lw=2,
            fontsize=8,
        )
    ax.axis("off")
    _save(fig, path, dpi=100)


def augmentation_grid(images, objects, class_names, path, cols=4):
    """Save a grid of training samples with their boxes as a PNG.

    ``images``: (N, 3, S, S) RGB pixels 0-255 (de-normalized iterator output); ``objects``:
    per image (K, >=5) rows [class, xmin, ymin, xmax, ymax, ...] normalized, class -1 = none.
    """
    plt = _pyplot()
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, objs in zip(axes.ravel(), images, objects):
        h, w = img.shape[1:]
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 255).astype(np.uint8))
        for row in objs:
            cls = int(row[0])
            if cls < 0:
                continue
            name = class_names[cls] if class_names and cls < len(class_names) else str(cls)
            _draw_box(
                ax, row[1:5] * np.array([w, h, w, h]), name, colors(cls % 10), lw=1.5, fontsize=7
            )
    _save(fig, path, dpi=80)
    return path


def plot_training(records, path):
    """PNG of a run's curves from its metrics.jsonl ``records`` (see ``engine.progress``): the loss
    and its class/box parts against the iteration, and the validation mAP against the epoch.
    Returns ``path``; a one-line error when there is nothing to plot."""
    train = [r for r in records if r.get("type") == "train"]
    val = [r for r in records if r.get("type") == "val"]
    if not train and not val:
        raise UserError("%s: no training records to plot" % path)
    plt = _pyplot()
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in train]
    for key, label in (("loss", "total"), ("cls_loss", "class"), ("box_loss", "box")):
        ax_loss.plot(steps, [r[key] for r in train], label=label, lw=1)
    ax_loss.set(xlabel="iteration", ylabel="loss", title="training loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_map.plot([r["epoch"] for r in val], [r["mAP"] for r in val], "o-", color="tab:green")
    ax_map.set(
        xlabel="epoch", ylabel="mAP", title="validation mAP" if val else "validation mAP (none yet)"
    )
    ax_map.set_ylim(0, max([r["mAP"] for r in val] + [0.01]) * 1.1)
    ax_map.set_xlim(0, max([r["epoch"] for r in records if "epoch" in r] + [1]) + 1)
    ax_map.grid(alpha=0.3)
    _save(fig, path, dpi=90)
    return path


def plot_pr_curves(curves, aps, path, title=""):
    """PNG of one precision/recall panel per class. ``curves``: {name: (recall, precision)}
    (``evaluation.voc_map.VOCMApMetric.curves()``), ``aps``: {name: AP} for the panel titles."""
    if not curves:
        raise UserError("%s: no class with ground truth to plot" % path)
    plt = _pyplot()
    cols = min(5, len(curves))
    rows = (len(curves) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, (recall, precision)) in zip(axes.ravel(), curves.items()):
        ax.axis("on")
        ax.plot(recall, precision, lw=1.2)
        ax.set(
            xlim=(0, 1), ylim=(0, 1.02), title="%s  AP %.3f" % (name, aps.get(name, float("nan")))
        )
        ax.title.set_fontsize(9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path, dpi=80)
    return path
