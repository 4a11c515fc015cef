"""Datasets as the tools read them: class lists (``classes``), the record layout
(``records``), its writer (``writer``) and checks (``verify``), augmentation and normalization
(``transforms``), the training and validation iterators (``loader``) and the embedded
synthetic sample (``synthetic``). Converting datasets into records: ``ssd_gluon.packing``."""
