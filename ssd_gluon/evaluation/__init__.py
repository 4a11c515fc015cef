"""Measuring a detector: the PASCAL VOC mAP (``voc_map``, NumPy only) and its speed
(``speed``)."""
