"""Datasets: class lists (``classes``), the record layout (``records``), augmentation and
normalization (``transforms``), the training and validation iterators (``loader``), the VOC
packer (``pack_voc``) and the embedded synthetic sample (``synthetic``)."""
