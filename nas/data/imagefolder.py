"""Image classification sets in the ImageFolder layout (`root/<class>/<image>`), for backbone pretraining.

Classes are the sub-folders in sorted order (label = index), images every file with an image suffix
below them (sorted, so one tree always gives the same list). A training sample is a random-resized
square crop with a random horizontal flip (the usual ImageNet augmentation), drawn from
`np.random.default_rng([seed, epoch, index])`: a pure function of (seed, epoch, index), so any worker
count and a resumed run see the same images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nas.data.crops import crop_square, normalize
from nas.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CROP_AREA = (0.35, 1.0)  # fraction of the shorter side's square kept by a random-resized crop


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    classes: tuple[str, ...]
    items: tuple[tuple[Path, int], ...]  # (image path, class index)

    def __len__(self) -> int:
        return len(self.items)

    def image(self, index: int) -> np.ndarray:
        """Image `index` as HxWx3 RGB uint8; a one-line DataError when it cannot be decoded."""
        path = self.items[index][0]
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError("cannot read image (missing or not a decodable image)", source=str(path))
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def sample(self, index: int, *, size: int, seed: int, epoch: int) -> tuple[np.ndarray, int]:
        """Image `index` as a normalised 3 x size x size training crop (random-resized, maybe flipped)
        and its label."""
        image = self.image(index)
        rng = np.random.default_rng([seed, epoch, index])
        h, w = image.shape[:2]
        side = min(h, w) * np.sqrt(rng.uniform(*CROP_AREA))
        cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
        crop = crop_square(image, (cx, cy), side, size)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return normalize(crop), self.items[index][1]


def open_image_folder(root: str | Path) -> ImageFolder:
    """The ImageFolder at `root`; one-line DataError when it is missing, has fewer than two classes, a class
    without images, or a first image that does not decode."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"expected an ImageFolder (one sub-folder of images per class), got "
                        f"{'a file' if root.exists() else 'nothing'}", source=str(root))
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise DataError(f"expected at least 2 class sub-folders, found {len(classes)}", source=str(root))
    items = []
    for label, name in enumerate(classes):
        images = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise DataError(f"class folder {name!r} holds no images ({', '.join(IMAGE_SUFFIXES)})", source=str(root))
        items.extend((p, label) for p in images)
    folder = ImageFolder(root, classes, tuple(items))
    folder.image(0)
    return folder
