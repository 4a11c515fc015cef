"""Reading images for detection and drawing detections with matplotlib."""
import os

import cv2
import numpy as np


def read_image(path):
    """(H, W, 3) uint8 RGB; a one-line error naming the file when it is not a readable image."""
    if not os.path.isfile(path):
        raise FileNotFoundError("%s: image not found" % path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("%s: not a readable image" % path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_input(img, size):
    """RGB image -> float32 (1, 3, size, size) pixels 0-255 for the exported/deploy graph."""
    resized = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
    return resized.transpose(2, 0, 1)[None].astype(np.float32)


def detections_to_list(ids, scores, boxes, class_names, img_size, input_size, thresh):
    """One image's (K,1), (K,1), (K,4) outputs (input pixels) -> list of dicts with the class
    name, score and box in original image pixels, score >= thresh."""
    w, h = img_size
    scale = np.array([w, h, w, h], np.float32) / np.array([input_size, input_size] * 2, np.float32)
    out = []
    for cid, score, box in zip(ids.ravel(), scores.ravel(), boxes):
        if cid < 0 or score < thresh:
            continue
        out.append(dict(cls=class_names[int(cid)], score=round(float(score), 4),
                        box=[round(float(v), 1) for v in box * scale]))
    return out


def draw(img, detections, path):
    """Save ``img`` with its detections (from detections_to_list) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]))
    ax.imshow(img)
    colors = plt.get_cmap("tab10")
    names = sorted({d["cls"] for d in detections})
    for d in detections:
        x1, y1, x2, y2 = d["box"]
        color = colors(names.index(d["cls"]) % 10)
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2, color=color))
        ax.text(x1, y1, "%s %.2f" % (d["cls"], d["score"]), color="white", fontsize=8,
                bbox=dict(facecolor=color, alpha=0.8, pad=1, lw=0))
    ax.axis("off")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def augmentation_grid(images, objects, class_names, path, cols=4):
    """Save a grid of training samples with their boxes as a PNG.

    ``images``: (N, 3, S, S) RGB pixels 0-255 (de-normalized iterator output); ``objects``:
    per image (K, >=5) rows [class, xmin, ymin, xmax, ymax, ...] normalized, class -1 = none.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, objs in zip(axes.ravel(), images, objects):
        size = img.shape[1:]
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 255).astype(np.uint8))
        for row in objs:
            if row[0] < 0:
                continue
            x1, y1, x2, y2 = row[1] * size[1], row[2] * size[0], row[3] * size[1], row[4] * size[0]
            color = colors(int(row[0]) % 10)
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.5, color=color))
            name = class_names[int(row[0])] if class_names and int(row[0]) < len(class_names) else str(int(row[0]))
            ax.text(x1, y1, name, color="white", fontsize=7, bbox=dict(facecolor=color, alpha=0.8, pad=1, lw=0))
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path
