"""Box coding shared by the training target and the predictor (graph ops, F = nd or sym)."""

# The paper's "variances": offsets are divided by these before regression.
VARIANCES = (0.1, 0.1, 0.2, 0.2)


def corner_to_center(F, boxes):
    """(..., 4) xmin, ymin, xmax, ymax -> four (..., 1) arrays cx, cy, w, h."""
    x1, y1, x2, y2 = F.split(boxes, num_outputs=4, axis=-1)
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def decode(F, box_preds, anchors, variances=VARIANCES):
    """Offsets (B, N, 4) + anchors (1, N, 4) corner -> boxes (B, N, 4) corner, same units."""
    acx, acy, aw, ah = corner_to_center(F, anchors)
    px, py, pw, ph = F.split(box_preds, num_outputs=4, axis=-1)
    cx = F.broadcast_add(F.broadcast_mul(px * variances[0], aw), acx)
    cy = F.broadcast_add(F.broadcast_mul(py * variances[1], ah), acy)
    hw = F.broadcast_mul(F.exp(pw * variances[2]), aw) / 2
    hh = F.broadcast_mul(F.exp(ph * variances[3]), ah) / 2
    return F.concat(cx - hw, cy - hh, cx + hw, cy + hh, dim=-1)
