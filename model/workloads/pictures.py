"""Real photos to measure MobileNetV2's fidelity, with crops.

There are no ImageNet labels here: fidelity is measured against the float model on real photos
with crops: the scikit-image and scikit-learn sample images, the photos and artwork of Debian's
desktop background packages, and the photographs of GCompris, the educational suite (animals,
fish, tools, monuments, instruments: ImageNet's kind of picture; :data:`PICTURE_PACKAGES` are
what the benchmark installs). The photos that calibrate and distil are never the photos that
evaluate: only photographs evaluate, and the photographs of each source, sorted by name,
alternate between the two; the artwork only distils. Distillation may also use composites of
the photographic stamps of Tux Paint (:data:`STAMP_PACKAGES`: animals, food, plants, vehicles,
household objects, each cut out of its photo) on crops of the calibration backgrounds: objects
of many more ImageNet classes than the backgrounds show.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vq4all.golden.fileio import make_directory, write_atomically
from vq4all.model.workloads.cache import cache_dir
from vq4all.model.workloads.mobilenet import IMAGENET_MEAN, IMAGENET_STD
from vq4all.model.workloads.qt_resources import read_qt_resources

__all__ = [
    "BACKGROUND_PACKAGES",
    "CALIBRATION_PHOTOS",
    "EVALUATION_PHOTOS",
    "GCOMPRIS_PACKAGES",
    "NATURAL_BACKGROUNDS",
    "PICTURE_PACKAGES",
    "STAMP_PACKAGES",
    "backgrounds",
    "gcompris_photos",
    "photo",
    "photo_crops",
    "stamp_composites",
    "stamps",
]

#: Distillation and calibration photos, and the disjoint set of evaluation photos. Colour photos
#: only: distilled on grey ones, the early blocks fit a one-dimensional colour space and fail on
#: colour (twice the relative error of an early block on the evaluation photos, measured).
#: scikit-image's ``cat`` is ``chelsea``: it is in neither list.
CALIBRATION_PHOTOS = (
    "astronaut",
    "rocket",
    "colorwheel",
    "retina",
    "hubble_deep_field",
    "immunohistochemistry",
    "china",
    "logo",
    "stereo_motorcycle",
)
EVALUATION_PHOTOS = ("chelsea", "coffee", "flower")
#: The backgrounds that are photographs (the others are drawings, renders and patterns). Only
#: photographs evaluate: on abstract art MobileNetV2's top-1 is a near tie (median probability
#: 0.01 on some), which any perturbation flips, so agreement there measures noise.
NATURAL_BACKGROUNDS = frozenset(
    {
        # /usr/share/backgrounds
        "Bridge_by_Sander_Klootwijk",
        "Dragonfly_by_Bolly",
        "Kleiber_by_Lukas_Baubkus",
        "Picture_0B_by_freespace",
        "Picture_1A_by_freespace",
        "Wine_by_Jakkub_Mede",
        "aitzgorri_by_Aitzol_Berasategi",
        "free_by_Peter_Nerlich",
        "friends_by_Aitzol_Berasategi",
        "life_by_Aitzol_Berasategi",
        "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt",
        "sunset_by_Aitzol_Berasategi",
        # mate-backgrounds' nature/
        "Aqua",
        "Blinds",
        "Dune",
        "FreshFlower",
        "Garden",
        "GreenMeadow",
        "LadyBird",
        "RainDrops",
        "Storm",
        "TwoWings",
        "Wood",
        "YellowFlower",
        # /usr/share/wallpapers (Plasma)
        "BytheWater",
        "ColdRipple",
        "ColorfulCups",
        "DarkestHour",
        "EveningGlow",
        "FallenLeaf",
        "Grey",
        "Kite",
        "OneStandsOut",
        "Path",
        "Volna",
        "summer_1am",
    }
)
#: Debian packages of desktop backgrounds, and where they put them.
BACKGROUND_PACKAGES = (
    "gnome-backgrounds",
    "mate-backgrounds",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "ukui-wallpapers",
    "plasma-workspace-wallpapers",
)
BACKGROUND_DIRS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
#: Read a background at most this large (longest side): crops of it are resized to 224 anyway.
BACKGROUND_SIDE = 1024
#: GCompris's data package, where it keeps its pictures (in Qt resource files, one per activity),
#: and the activities whose pictures are photographs: animals, fish, tools, monuments, musical
#: instruments, power stations (the others draw cartoons or show paintings).
GCOMPRIS_PACKAGES = ("gcompris-qt-data",)
GCOMPRIS_RCC = Path("/usr/share/gcompris-qt/rcc")
GCOMPRIS_PHOTO_ACTIVITIES = (
    "categorization",
    "erase",
    "explore_farm_animals",
    "explore_monuments",
    "explore_world_animals",
    "explore_world_music",
)
#: A picture whose short side is smaller is an icon or a button, not a photograph.
GCOMPRIS_MIN_SIDE = 200
#: Two pictures whose grey 16x16 thumbnails correlate above this are one photograph (GCompris
#: ships some monuments twice, re-encoded at other sizes): only the first is kept, so that no
#: photograph both evaluates and distils.
SAME_PICTURE = 0.95
#: The Debian packages of the pictures that MobileNetV2 is measured on.
PICTURE_PACKAGES = BACKGROUND_PACKAGES + GCOMPRIS_PACKAGES
#: The Debian package of Tux Paint's stamps, and where it puts them.
STAMP_PACKAGES = ("tuxpaint-stamps-default",)
STAMP_DIR = Path("/usr/share/tuxpaint/stamps")


def backgrounds() -> tuple[list[Path], list[Path]]:
    """The background images installed (one file per picture: the largest of its sizes), split
    into calibration and evaluation: the photographs (:data:`NATURAL_BACKGROUNDS`) alternate
    in name order between the two, and the rest calibrate.

    Raises ``FileNotFoundError`` saying how to install them when there are none."""
    pictures: dict[str, Path] = {}
    for root in BACKGROUND_DIRS:
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
                continue
            if path.stem == "screenshot":
                continue
            # Plasma keeps each picture's sizes in <name>/contents/images*/; others name their
            # sizes (_3840x2160) and light and dark variants (-l, -d) in the file name.
            key = (
                path.relative_to(root).parts[0]
                if root.name == "wallpapers"
                else re.sub(r"(_\d+x\d+|-[ld])$", "", path.stem)
            )
            if key not in pictures or path.stat().st_size > pictures[key].stat().st_size:
                pictures[key] = path
    if not pictures:
        raise FileNotFoundError(
            f"no background images in {' or '.join(map(str, BACKGROUND_DIRS))}: "
            f"apt-get install {' '.join(BACKGROUND_PACKAGES)} (make bench-model does)"
        )
    keys = sorted(pictures)
    evaluation = [key for key in keys if key in NATURAL_BACKGROUNDS][1::2]
    calibration = [key for key in keys if key not in evaluation]
    return [pictures[key] for key in calibration], [pictures[key] for key in evaluation]


def gcompris_photos(root: Path = GCOMPRIS_RCC) -> tuple[list[Path], list[Path]]:
    """GCompris's photographs (:data:`GCOMPRIS_PHOTO_ACTIVITIES`), each once, extracted from
    its resource files under ``root`` into ``<cache>/gcompris/`` and split as the backgrounds'
    photographs are: in name order they alternate between calibration and evaluation.

    Raises ``FileNotFoundError`` saying how to install them when they are missing."""

    from PIL import Image

    files = [root / f"{activity}.rcc" for activity in GCOMPRIS_PHOTO_ACTIVITIES]
    missing = [path for path in files if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"no GCompris pictures in {missing[0]}: apt-get install {' '.join(GCOMPRIS_PACKAGES)}"
            " (make bench-model does)"
        )
    kept: list[Path] = []
    thumbnails: list[np.ndarray] = []
    for path in files:
        for entry, data in read_qt_resources(path).items():
            if Path(entry).suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
                continue
            with Image.open(io.BytesIO(data)) as image:
                if min(image.size) < GCOMPRIS_MIN_SIDE:
                    continue
                grey = np.asarray(image.convert("L").resize((16, 16)), dtype=np.float64).ravel()
            grey -= grey.mean()
            grey /= max(float(np.linalg.norm(grey)), 1e-9)
            if any(float(grey @ seen) > SAME_PICTURE for seen in thumbnails):
                continue
            thumbnails.append(grey)
            # The path under the activities folder names the picture: unique, and readable.
            target = cache_dir() / "gcompris" / entry.split("activities/", 1)[-1]
            if not target.is_file() or target.stat().st_size != len(data):
                write_atomically(make_directory(target.parent) / target.name, data)
            kept.append(target)
    kept.sort()
    return kept[::2], kept[1::2]


def photo(name: str | Path) -> np.ndarray:
    """Sample photo ``name`` (scikit-learn's china/flower, else scikit-image's), or the image
    file ``name`` (a :class:`~pathlib.Path`, at most :data:`BACKGROUND_SIDE` on its longest
    side), as RGB uint8."""
    if isinstance(name, Path):
        from PIL import Image

        with Image.open(name) as image:
            image = image.convert("RGB")
            image.thumbnail((BACKGROUND_SIDE, BACKGROUND_SIDE))
            return np.asarray(image).copy()
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":  # the left view of a stereo pair (and its disparity)
        image = image[0]
    return image[..., :3] if image.ndim == 3 else np.stack([image] * 3, axis=-1)


def _rgb(image: np.ndarray) -> torch.Tensor:
    """``[C, H, W]`` floats in [0, 1] of an ``[H, W, C]`` uint8 image."""
    return torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0


def _normalized(image: torch.Tensor) -> torch.Tensor:
    """``image`` (RGB in [0, 1]) normalised as for ImageNet."""
    mean = torch.tensor(IMAGENET_MEAN).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(3, 1, 1)
    return (image - mean) / std


def _resized(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return nn.functional.interpolate(
        image[None], size=(height, width), mode="bilinear", antialias=True
    )[0]


def _random_crop(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random square crop (a quarter to all of the short side) of ``image``, randomly
    flipped."""
    height, width = image.shape[1:]
    side = int(min(height, width) * (0.25 + 0.75 * torch.rand((), generator=generator)))
    top = int(torch.randint(height - side + 1, (), generator=generator))
    left = int(torch.randint(width - side + 1, (), generator=generator))
    crop = image[:, top : top + side, left : left + side]
    if torch.rand((), generator=generator) < 0.5:
        crop = crop.flip(-1)
    return crop


def photo_crops(
    names: tuple[str | Path, ...],
    per_photo: int,
    seed: int = 0,
    size: int = 224,
    jitter: bool = False,
) -> torch.Tensor:
    """``per_photo`` random square crops (a quarter to all of the short side, random flips) of
    each photo, resized to ``size`` and normalised as for ImageNet: ``[n, 3, size, size]``.

    ``jitter`` also permutes the colour channels and scales each by a factor in [0.7, 1.3], so
    that a few photos cover more of the colours that distillation must see."""
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for name in names:
        image = _rgb(photo(name))
        for _ in range(per_photo):
            crop = _random_crop(image, generator)
            if jitter:
                gains = 0.7 + 0.6 * torch.rand(3, 1, 1, generator=generator)
                crop = (crop[torch.randperm(3, generator=generator)] * gains).clamp(0, 1)
            crops.append(_normalized(_resized(crop, size, size)))
    return torch.stack(crops)


def stamps(root: Path = STAMP_DIR) -> list[Path]:
    """Tux Paint's photographic stamps under ``root``, sorted: its cartoons and symbols (letters,
    signs) left out.

    Raises ``FileNotFoundError`` saying how to install them when there are none."""
    found = [
        path
        for path in (sorted(root.rglob("*.png")) if root.is_dir() else [])
        if not {"cartoon", "symbols"} & set(path.relative_to(root).parts)
    ]
    if not found:
        raise FileNotFoundError(f"no stamps in {root}: apt-get install {' '.join(STAMP_PACKAGES)}")
    return found


def stamp_composites(
    objects: list[Path],
    backgrounds: tuple[str | Path, ...],
    per_stamp: int,
    seed: int = 0,
    size: int = 224,
) -> torch.Tensor:
    """``per_stamp`` composites of each stamp (an RGBA image: its alpha cuts the object out)
    on a random crop of a random one of ``backgrounds``: the object, randomly flipped, spans
    half to 95% of the side at a random place. Normalised as :func:`photo_crops`."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    canvases = [_rgb(photo(name)) for name in backgrounds]
    composites = []
    for path in objects:
        with Image.open(path) as image:
            stamp = _rgb(np.asarray(image.convert("RGBA")))
        height, width = stamp.shape[1:]
        for _ in range(per_stamp):
            which = int(torch.randint(len(canvases), (), generator=generator))
            canvas = _resized(_random_crop(canvases[which], generator), size, size)
            scale = (0.5 + 0.45 * float(torch.rand((), generator=generator))) * size
            fit_h, fit_w = (
                max(1, int(side * scale / max(height, width))) for side in (height, width)
            )
            placed = _resized(stamp, fit_h, fit_w)
            if torch.rand((), generator=generator) < 0.5:
                placed = placed.flip(-1)
            top = int(torch.randint(size - fit_h + 1, (), generator=generator))
            left = int(torch.randint(size - fit_w + 1, (), generator=generator))
            region = canvas[:, top : top + fit_h, left : left + fit_w]
            alpha = placed[3:]
            region.copy_(alpha * placed[:3] + (1 - alpha) * region)
            composites.append(_normalized(canvas))
    return torch.stack(composites) if composites else torch.empty(0, 3, size, size)
