"""Which offline face detector `bench faces detect` uses, and why: recall and false detections on
faces that ship inside installed packages, and the time per 500x375 image.

Test material (no download): scikit-image's ``lfw_subset`` (100 LFW face crops and 100
non-face crops, 25x25, upscaled to 100x100 and padded to 200x200 so a detector sees context),
three portraits (scikit-image's astronaut and cameraman, matplotlib's Grace Hopper) and five
faceless photos (scikit-learn's china and flower, scikit-image's coffee, cat and rocket).

    pip install scikit-image   # the test material; opencv-python-headless<5 from '.[faces]'
    python scripts/measure_face_detectors.py
    # MTCNN for comparison: its package declares torch<2.3, so keep it out of the environment:
    pip install --no-deps --target /tmp/fnp facenet-pytorch==2.6.0
    FACENET_PYTORCH_DIR=/tmp/fnp python scripts/measure_face_detectors.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import cv2
import matplotlib.cbook
import numpy as np
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_images

Detector = Callable[[np.ndarray], int]  # RGB uint8 image -> number of faces found


def haar(name: str) -> Detector:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)

    def count(rgb: np.ndarray) -> int:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return len(cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5))

    return count


def skimage_lbp() -> Detector:
    from skimage.feature import Cascade

    cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def count(rgb: np.ndarray) -> int:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return len(cascade.detect_multi_scale(img=grey, scale_factor=1.2, step_ratio=1,
                                              min_size=(24, 24), max_size=(400, 400)))

    return count


def mtcnn(folder: str) -> Detector:
    sys.path.insert(0, folder)
    from facenet_pytorch import MTCNN

    model = MTCNN(keep_all=True, device="cpu")

    def count(rgb: np.ndarray) -> int:
        _, probs = model.detect(Image.fromarray(rgb))
        return 0 if probs is None else sum(p is not None and p >= 0.9 for p in probs)

    return count


def material() -> tuple[list[np.ndarray], list[np.ndarray], dict[str, np.ndarray],
                        list[np.ndarray]]:
    def crop(a: np.ndarray) -> np.ndarray:
        grey = cv2.resize((a * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        padded = cv2.copyMakeBorder(grey, 50, 50, 50, 50, cv2.BORDER_REPLICATE)
        return np.stack([padded] * 3, -1)

    lfw = data.lfw_subset()
    portraits = {
        "astronaut": data.astronaut(),
        "cameraman": np.stack([data.camera()] * 3, -1),
        "grace_hopper": np.asarray(Image.open(matplotlib.cbook.get_sample_data(
            "grace_hopper.jpg", asfileobj=False)).convert("RGB")),
    }  # fmt: skip
    faceless = [*load_sample_images().images, data.coffee(), data.chelsea(), data.rocket()]
    return [crop(a) for a in lfw[:100]], [crop(a) for a in lfw[100:]], portraits, faceless


def main() -> None:
    detectors: dict[str, Detector] = {
        "haar frontalface_default": haar("haarcascade_frontalface_default.xml"),
        "haar frontalface_alt2 (chosen)": haar("haarcascade_frontalface_alt2.xml"),
        "skimage LBP frontal": skimage_lbp(),
    }
    if os.environ.get("FACENET_PYTORCH_DIR"):
        detectors["MTCNN (facenet-pytorch)"] = mtcnn(os.environ["FACENET_PYTORCH_DIR"])
    faces, non_faces, portraits, faceless = material()
    timing = cv2.resize(portraits["astronaut"], (500, 375))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, count in detectors.items():
        recall = sum(count(a) > 0 for a in faces)
        false_crops = sum(count(a) for a in non_faces)
        found = {k: count(v) for k, v in portraits.items()}
        false_photos = sum(count(a) for a in faceless)
        started = time.perf_counter()
        for _ in range(5):
            count(timing)
        ms = (time.perf_counter() - started) / 5 * 1000
        print(f"{name:32s} LFW faces found {recall}/100, detections on 100 non-faces "
              f"{false_crops}, portraits (1 face each) {found}, detections on 5 faceless "
              f"photos {false_photos}, {ms:.0f} ms per 500x375 image")


if __name__ == "__main__":
    main()
