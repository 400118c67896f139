"""The first half of the paper's pipeline: find faces, obfuscate them, get a dataset to pretrain on.

``obfuscate_dataset`` (``bench blur`` / ``bench obfuscate``) writes an obfuscated copy of a
dataset; ``methods`` holds the registry (blur = the paper's, overlay, pixelate); ``annotations``
reads the paper's JSON and a CSV; ``faces`` finds faces offline and ``face_stats`` summarises an
annotation file. Importing this package loads neither torch nor OpenCV.
"""

from benchmark.obfuscation.annotations import FaceBox, read_annotations
from benchmark.obfuscation.methods import METHODS, register_method
from benchmark.obfuscation.runner import Summary, obfuscate_dataset

__all__ = ["METHODS", "FaceBox", "Summary", "obfuscate_dataset", "read_annotations",
           "register_method"]
