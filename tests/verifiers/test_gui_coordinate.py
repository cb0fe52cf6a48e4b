"""gui-coordinate: click formats, spaces, quadratic and gaussian decay with hand-computed values."""

from __future__ import annotations

import math

import pytest

from omni_rl.verifiers import get_verifier
from omni_rl.verifiers.gui_coordinate import parse_click

gui = get_verifier("gui-coordinate")
T = "<think>The search button is at the top right of the toolbar.</think>\n"

Q = lambda d: (1 - d / 0.15) ** 2  # noqa: E731 -- the default reward of distance d (normalised units)

CASES = [
    # formats, target point (500, 500) in 0-1000 space
    (T + "<point>[(500,500)]</point>", [500, 500], {}, 1.0),
    (T + "<point>550 500</point>", [500, 500], {}, Q(0.05)),  # d = 50/1000 = 0.05 -> (1-1/3)^2 = 4/9
    (T + "click(x=500, y=550)", [500, 500], {}, Q(0.05)),
    (T + "pyautogui.click(530, 540)", [500, 500], {}, Q(0.05)),  # d = hypot(30, 40)/1000 = 0.05
    (T + '{"action": "click", "x": 600, "y": 500}', [500, 500], {}, Q(0.1)),  # 1/9
    (T + r"\boxed{(500, 620)}", [500, 500], {}, Q(0.12)),  # (1-0.8)^2 = 0.04
    (T + "[500, 650]", [500, 500], {}, 0.0),  # d = 0.15: at the cut-off
    (T + "(900, 900)", [500, 500], {}, 0.0),
    (T + "click(start_box='(100,200)')", [100, 200], {}, 1.0),
    (T + "<|box_start|>(100,100),(300,300)<|box_end|>", [200, 200], {}, 1.0),  # predicted box -> centre
    (T + r"\boxed{[400, 400, 600, 600]}", [500, 530], {}, Q(0.03)),  # centre (500,500), d=0.03 -> 0.64
    # target box: inside = 1, outside = distance to the box
    (T + "(500, 500)", [400, 400, 600, 600], {}, 1.0),
    (T + "(600, 600)", [400, 400, 600, 600], {}, 1.0),  # on the edge
    (T + "[650, 500]", [400, 400, 600, 600], {}, Q(0.05)),
    (T + "(630, 640)", [400, 400, 600, 600], {}, Q(0.05)),  # dx=30, dy=40 -> 0.05
    # coordinate spaces
    (T + "pyautogui.click(0.5, 0.55)", [0.5, 0.5], {"coord_space": "norm1"}, Q(0.05)),
    (T + "(960, 594)", [960, 540], {"coord_space": "pixel", "image_size": [1920, 1080]}, Q(0.05)),  # 54/1080
    (T + "(500, 550)", [0.5, 0.5], {"coord_space": "norm1", "pred_coord_space": "norm1000"}, Q(0.05)),
    # radius kwarg
    (T + "(500, 550)", [500, 500], {"radius": 0.1}, (1 - 0.05 / 0.1) ** 2),  # 0.25
    # nothing parseable
    (T + "I would click the search icon.", [500, 500], {}, 0.0),
    ("<think>(500, 500) looks right but", [500, 500], {}, 0.0),  # unterminated reasoning
]


@pytest.mark.parametrize("response, gold, kwargs, expected", CASES)
def test_cases(response, gold, kwargs, expected):
    assert gui(response, gold, **kwargs) == pytest.approx(expected, abs=1e-9)


def test_hand_values():
    assert Q(0.05) == pytest.approx(4 / 9, abs=1e-12)
    assert Q(0.1) == pytest.approx(1 / 9, abs=1e-12)


def test_gaussian_decay():
    # point target: sigma 0.05; d = 0.05 -> exp(-0.5)
    assert gui("(550, 500)", [500, 500], decay="gaussian") == pytest.approx(math.exp(-0.5), abs=1e-12)
    # box 200x200 (0.2 x 0.2): sigma = 0.5 * 0.2 = 0.1; d = 0.05 outside -> exp(-0.125)
    assert gui("(650, 500)", [400, 400, 600, 600], decay="gaussian") == pytest.approx(math.exp(-0.125), abs=1e-12)
    assert gui("(500, 500)", [400, 400, 600, 600], decay="gaussian") == 1.0
    assert gui("(600, 500)", [500, 500], decay="gaussian", sigma=0.1) == pytest.approx(math.exp(-0.5), abs=1e-12)


@pytest.mark.parametrize("decay", ["quadratic", "gaussian"])
@pytest.mark.parametrize("target", [[500, 500], [450, 450, 550, 550]])
def test_monotone_in_distance(decay, target):
    scores = [gui(f"({500 + dx}, 500)", target, decay=decay) for dx in range(0, 400, 10)]
    assert all(a >= b for a, b in zip(scores, scores[1:]))
    assert scores[0] == 1.0
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize(
    "text, point",
    [
        ("<point>[(12.5, 30)]</point>", (12.5, 30.0)),
        ("<point>12 30</point>", (12.0, 30.0)),
        ('{"point": [12, 30]}', (12.0, 30.0)),
        ('{"bbox": [10, 20, 30, 40]}', (20.0, 30.0)),
        ("x=12, y=30", (12.0, 30.0)),
        ("first (1, 1) then (12, 30)", (12.0, 30.0)),  # last match
        (r"\boxed{12, 30}", (12.0, 30.0)),
        ("tap(12, 30)", (12.0, 30.0)),
        ("nothing here", None),
    ],
)
def test_parse_click(text, point):
    assert parse_click(text) == point


def test_answer_forms():
    for answer in ([500, 500], (500, 500), "[500, 500]", {"x": 500, "y": 500}, {"bbox": [450, 450, 550, 550]}):
        assert gui("(500, 500)", answer) == 1.0
    with pytest.raises(ValueError):
        gui("(1, 1)", [1, 2, 3])
    with pytest.raises(ValueError):
        gui("(1, 1)", [1, 1], coord_space="pixel")  # needs image_size
