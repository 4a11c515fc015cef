"""The network, as the paper describes it: VGG16-atrous base and extra layers (``vgg``),
default boxes (``anchors``), the SSD heads (``ssd``), box coding (``box_coder``), training
targets (``target``), the multibox loss (``loss``), the detection output (``predictor``),
the presets (``zoo``) and parameter loading (``weights``)."""
