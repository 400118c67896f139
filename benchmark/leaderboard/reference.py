"""The paper's own ImageNet numbers, shown on the page as reference rows (never as results).
"""

from __future__ import annotations

PAPER_REPO = "https://github.com/princetonvisualai/imagenet-face-obfuscation"

# The paper's ImageNet (ILSVRC-2012) validation top-1, in percent, of models trained on original
# vs face-blurred images (mean +- std over runs), as printed by analysis/overall_accuracy.py in
# the README of PAPER_REPO (Table 3 of Yang et al., ICML 2022). Reference only: not measured here.
PAPER_IMAGENET_TOP1: tuple[tuple[str, float, float | None, float, float | None], ...] = (
    ("alexnet", 56.043, 0.258, 55.834, 0.108),
    ("squeezenet1_0", 55.989, 0.179, 55.323, 0.039),
    ("shufflenet_v2_x1_0", 64.646, 0.178, 64.001, 0.068),
    ("vgg11", 68.905, 0.039, 68.209, 0.128),
    ("vgg13", 69.925, 0.058, 69.271, 0.103),
    ("vgg16", 71.657, 0.061, 70.839, 0.047),
    ("vgg19", 72.363, 0.023, 71.538, 0.032),
    ("mobilenet_v2", 65.378, 0.182, 64.367, 0.203),
    ("densenet121", 75.036, 0.055, 74.244, 0.064),
    ("densenet201", 76.984, 0.021, 76.551, 0.044),
    ("resnet18", 69.767, 0.171, 69.012, 0.174),
    ("resnet34", 73.083, 0.131, 72.307, 0.351),
    ("resnet50", 75.461, 0.198, 75.003, 0.074),
    ("resnet101", 77.254, 0.070, 76.735, 0.092),
    ("resnet152", 77.853, 0.117, 77.279, 0.091),
    ("average of the 15 models", 70.023, None, 69.368, None),
)
