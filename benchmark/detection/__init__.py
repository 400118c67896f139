"""Object detection on PASCAL VOC2007: annotation I/O and devkit-compatible evaluation."""
