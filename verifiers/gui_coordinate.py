"""``gui-coordinate``: reward for a predicted click point against a target point or box.

Spec (RECIPE "Verifier semantics"): predicted click point in 0-1000 normalised space (e.g. ``<point>[(x,y)]</point>``);
d = Euclidean distance in [0, 1] units; reward ``(1 - d/0.15)^2`` for d < 0.15 else 0. Literature alternatives:
Gaussian around the target box (sigma = 0.5 x box size), inside-bbox = 1.

Parsing the prediction (text after the reasoning; inside the last ``\\boxed{}`` if there is one), first tier that
matches wins, the last match within a tier:

1. tags: ``<point>[(x,y)]</point>``, ``<point>x y</point>``, ``<box>..</box>``/``<bbox>..</bbox>``,
   ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``;
2. action calls: ``click(x=.., y=..)``, ``pyautogui.click(x, y)``, ``click(start_box='(x,y)')``, ``tap``/``moveTo``...;
3. JSON objects: ``{"x": .., "y": ..}``, ``{"point": [x, y]}``, ``{"bbox": [x1, y1, x2, y2]}``;
4. ``x=.., y=..``;
5. bracketed tuples ``(x, y)``, ``[x, y]``, ``[x1, y1, x2, y2]``;
6. bare numbers inside the box (``\\boxed{512, 300}``).

Four numbers are a box and the click point is its centre.

``answer``: a point ``[x, y]`` or a box ``[x1, y1, x2, y2]`` (list, tuple, ``{"x":..,"y":..}``, ``{"bbox": [...]}``,
or a string holding one of those). Keyword arguments:

* ``coord_space``: ``"norm1000"`` (default, 0-1000 on both axes), ``"norm1"`` ([0, 1]) or ``"pixel"`` (needs
  ``image_size=[width, height]``). The prediction uses the same space unless ``pred_coord_space`` says otherwise.
* ``radius`` (default 0.15): the cut-off of the default ``decay="quadratic"``: ``r = (1 - d/radius)^2`` for
  ``d < radius`` else 0, where d is the distance in normalised units (x/width, y/height) to the point, or to the box
  (0 inside it, so anything inside scores 1).
* ``decay="gaussian"``: ``r = exp(-d^2 / (2 sigma^2))`` with ``sigma`` (kwarg) defaulting to 0.5 x box size (the
  geometric mean ``sqrt(w*h)`` of the normalised box, floored at 0.005) or 0.05 for a point target. Isotropic, so the
  reward is a function of d alone and decreases monotonically with it.

Unknown keyword arguments are ignored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from .extract import last_boxed, strip_reasoning

__all__ = ["gui_coordinate", "parse_click", "distance_to_target"]

_N = r"-?\d+(?:\.\d+)?"
_NUM_RE = re.compile(_N)

_TAG_RES = (
    re.compile(r"<\|box_start\|>(.{0,200}?)<\|box_end\|>", re.S),
    re.compile(r"<(point|box|bbox)\b[^>]{0,100}>(.{0,200}?)</\1>", re.S | re.I),
)
_CALL_RE = re.compile(
    r"(?:click|tap|double_click|doubleClick|right_click|rightClick|left_click|long_press|moveTo|move_to|hover)"
    r"\s*\(([^()]{0,200}(?:\([^()]{0,100}\)[^()]{0,100})?)\)", re.I)
_XY_KW_RE = re.compile(rf"\bx\s*[=:]\s*({_N})\s*[,;]?\s*y\s*[=:]\s*({_N})")
_JSON_RE = re.compile(r"\{[^{}]{0,500}\}")
_TUPLE_RE = re.compile(rf"[\[(]\s*({_N})\s*,\s*({_N})\s*(?:,\s*({_N})\s*,\s*({_N})\s*)?[\])]")


def _to_point(nums: Sequence[float]) -> tuple[float, float] | None:
    if len(nums) == 2:
        return float(nums[0]), float(nums[1])
    if len(nums) == 4:
        return (float(nums[0]) + float(nums[2])) / 2, (float(nums[1]) + float(nums[3])) / 2
    return None


def _nums(text: str) -> list[float]:
    return [float(x) for x in _NUM_RE.findall(text)[:5]]


def _from_json(obj_text: str) -> tuple[float, float] | None:
    try:
        obj = json.loads(obj_text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        low = {str(k).lower(): v for k, v in obj.items()}
        if "x" in low and "y" in low:
            try:
                return float(low["x"]), float(low["y"])
            except (TypeError, ValueError):
                return None
        for key in ("point", "coordinate", "coordinates", "coords", "position", "click", "point_2d", "bbox", "box",
                    "bbox_2d"):
            v = low.get(key)
            if isinstance(v, (list, tuple)) and all(isinstance(a, (int, float)) for a in v):
                return _to_point(v)
        return None
    m = _XY_KW_RE.search(obj_text.replace('"', "").replace("'", ""))
    return (float(m.group(1)), float(m.group(2))) if m else None


def parse_click(response: str) -> tuple[float, float] | None:
    """The click point of a response in its own coordinate space, or None (module docstring)."""
    region = strip_reasoning(response)
    boxed = last_boxed(region)
    text = boxed if boxed is not None else region
    # 1. tags
    for rx in _TAG_RES:
        found = list(rx.finditer(text))
        if found:
            pt = _to_point(_nums(found[-1].group(found[-1].lastindex)))
            if pt is not None:
                return pt
    # 2. action calls
    for m in reversed(list(_CALL_RE.finditer(text))):
        pt = _to_point(_nums(m.group(1)))
        if pt is not None:
            return pt
    # 3. JSON
    for m in reversed(list(_JSON_RE.finditer(text))):
        pt = _from_json(m.group(0))
        if pt is not None:
            return pt
    # 4. x=.., y=..
    found = list(_XY_KW_RE.finditer(text))
    if found:
        return float(found[-1].group(1)), float(found[-1].group(2))
    # 5. bracketed tuples
    found = list(_TUPLE_RE.finditer(text))
    if found:
        return _to_point([float(g) for g in found[-1].groups() if g is not None])
    # 6. bare numbers in the box
    if boxed is not None:
        return _to_point(_nums(boxed))
    return None


def _answer_numbers(answer: Any) -> list[float]:
    if isinstance(answer, str):
        s = answer.strip()
        try:
            return _answer_numbers(json.loads(s))
        except ValueError:
            return [float(x) for x in _NUM_RE.findall(s)]
    if isinstance(answer, dict):
        low = {str(k).lower(): v for k, v in answer.items()}
        if "x" in low and "y" in low:
            return [float(low["x"]), float(low["y"])]
        for key in ("bbox", "box", "bbox_2d", "point", "coordinate", "coordinates"):
            if key in low:
                return _answer_numbers(low[key])
        raise ValueError(f"cannot read a point or box from {answer!r}")
    if isinstance(answer, (list, tuple)):
        if len(answer) == 2 and all(isinstance(a, (list, tuple)) and len(a) == 2 for a in answer):
            return [float(v) for a in answer for v in a]  # [[x1, y1], [x2, y2]]
        return [float(a) for a in answer]
    raise TypeError(f"gui-coordinate answer must be a point or a box, got {type(answer).__name__}")


def _scale(coord_space: str, image_size: Any) -> tuple[float, float]:
    if coord_space == "norm1000":
        return 1000.0, 1000.0
    if coord_space == "norm1":
        return 1.0, 1.0
    if coord_space == "pixel":
        if image_size is None or len(image_size) != 2 or min(float(image_size[0]), float(image_size[1])) <= 0:
            raise ValueError("coord_space='pixel' needs image_size=[width, height]")
        return float(image_size[0]), float(image_size[1])
    raise ValueError(f"coord_space must be 'norm1000', 'norm1' or 'pixel', got {coord_space!r}")


def distance_to_target(px: float, py: float, target: Sequence[float]) -> float:
    """Euclidean distance from (px, py) to a point ``[x, y]`` or box ``[x1, y1, x2, y2]`` (0 inside the box)."""
    if len(target) == 2:
        return math.hypot(px - target[0], py - target[1])
    x1, x2 = sorted((target[0], target[2]))
    y1, y2 = sorted((target[1], target[3]))
    dx = max(x1 - px, 0.0, px - x2)
    dy = max(y1 - py, 0.0, py - y2)
    return math.hypot(dx, dy)


def gui_coordinate(response: str, answer: Any, *, coord_space: str = "norm1000", image_size: Any = None,
                   pred_coord_space: str | None = None, radius: float = 0.15, decay: str = "quadratic",
                   sigma: float | None = None, **_: Any) -> float:
    """Reward of the predicted click against the target point/box (module docstring)."""
    gold = _answer_numbers(answer)
    if len(gold) not in (2, 4) or not all(math.isfinite(v) for v in gold):
        raise ValueError(f"gui-coordinate answer must be [x, y] or [x1, y1, x2, y2], got {answer!r}")
    gw, gh = _scale(coord_space, image_size)
    target = [v / (gw if i % 2 == 0 else gh) for i, v in enumerate(gold)]
    pt = parse_click(response)
    if pt is None or not all(math.isfinite(v) for v in pt):
        return 0.0
    pw, ph = _scale(pred_coord_space or coord_space, image_size)
    d = distance_to_target(pt[0] / pw, pt[1] / ph, target)
    if decay == "quadratic":
        if radius <= 0:
            raise ValueError("radius must be > 0")
        return (1.0 - d / radius) ** 2 if d < radius else 0.0
    if decay == "gaussian":
        if sigma is None:
            if len(target) == 4:
                w, h = abs(target[2] - target[0]), abs(target[3] - target[1])
                sigma = max(0.5 * math.sqrt(w * h), 0.005)
            else:
                sigma = 0.05
        if sigma <= 0:
            raise ValueError("sigma must be > 0")
        return math.exp(-(d * d) / (2.0 * sigma * sigma))
    raise ValueError(f"decay must be 'quadratic' or 'gaussian', got {decay!r}")
