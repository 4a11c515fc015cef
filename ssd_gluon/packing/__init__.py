"""Converting datasets into record files: PASCAL VOC trees, COCO JSON, plain folders of images
with VOC XML (one module each) over what they share (``common``)."""
