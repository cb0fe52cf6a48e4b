import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from omni_rl.data.loading import load_samples
from omni_rl.data.media import load_audio, load_video
from omni_rl.data.synthetic import COLOURS, GENERATOR_VERSION, INSTRUCTION, TASKS, generate_suite, main
from omni_rl.verifiers import reward, verifier_exists

N = 12  # multiple of 2, 3 and 4: exact balance for every task


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    path = generate_suite(tmp_path_factory.mktemp("suite") / "s", n_per_task=N, seed=7)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return path, rows


def test_every_task_loads_without_rejects(suite):
    path, rows = suite
    res = load_samples(path, known_verifiers=verifier_exists)
    assert res.rejects == []
    assert res.counts["usable"] == len(rows) == N * len(TASKS)
    assert Counter(s.source for s in res.samples) == {t: N for t in TASKS}
    modality = {s.source: s.modality for s in res.samples}
    assert modality == {"image_mcq": "image", "chart_math": "image", "word_read": "image", "gui_click": "image",
                        "video_motion": "video", "video_flash": "video", "audio_pitch": "audio",
                        "audio_beeps": "audio", "asr_words": "audio", "omni_av": "omni", "text_math": "text",
                        "unanswerable": "image", "mismatch": "image", "image_colour": "image", "image_position": "image",
                        "image_count": "image", "image_shape": "image", "gui_button": "image"}
    for r in rows:
        assert r["messages"][0]["content"][-1]["text"].endswith(INSTRUCTION)
        assert "\\boxed{}" in INSTRUCTION


def _gold_response(row):
    if row.get("unanswerable"):
        return "<think>x</think> \\boxed{unanswerable}"
    gold = row["answer"]
    if row["verifier"] == "gui-coordinate":
        x1, y1, x2, y2 = gold
        gold = f"({(x1 + x2) / 2:g}, {(y1 + y2) / 2:g})"
    return f"<think>x</think> \\boxed{{{gold}}}"


def test_gold_answers_score_one(suite):
    _, rows = suite
    for r in rows:
        res = reward(_gold_response(r), r["verifier"], r["answer"], unanswerable=r.get("unanswerable", False),
                     **r.get("verifier_kwargs", {}))
        assert res.reward == 1.0, (r["id"], r["answer"], res)


def test_abstention_tasks_use_the_field_and_show_no_asked_object(suite):
    """unanswerable / mismatch rows: `unanswerable: true` and no gold answer; an answer scores 0.1 (format only). A
    mismatch question names each shape equally often, and its image shows one large shape of another kind."""
    path, rows = suite
    abstain = [r for r in rows if r["source"] in ("unanswerable", "mismatch")]
    assert len(abstain) == 2 * N
    assert all(r["unanswerable"] is True and r["answer"] is None for r in abstain)
    assert not any(r.get("unanswerable") for r in rows if r["source"] not in ("unanswerable", "mismatch"))
    for r in abstain:
        res = reward("<think>x</think> \\boxed{red}", r["verifier"], r["answer"], unanswerable=True)
        assert (res.outcome, res.reward) == (0.0, pytest.approx(0.1)), r["id"]
    mismatch = [r for r in abstain if r["source"] == "mismatch"]
    asked = [r["messages"][0]["content"][-1]["text"].split(" in the image")[0].rsplit(" ", 1)[1] for r in mismatch]
    assert Counter(asked) == {"circle": N // 4, "square": N // 4, "triangle": N // 4, "diamond": N // 4}
    for r in rows:  # the classifier reads every image_shape row right
        if r["source"] == "image_shape":
            assert _shape_in(_image(path, r)) == r["verifier_kwargs"]["options"][r["answer"]], r["id"]
    for r, name in zip(mismatch, asked):
        assert _shape_in(_image(path, r)) != name, (r["id"], name)


def _shape_in(img):
    """Which of the four shapes fills the image: box corners inked (square: all four, triangle: the bottom two) and
    the point 0.3 of the box side up-left of its centre (inside a circle, radius 0.5; outside a diamond, 0.3 + 0.3 >
    0.5)."""
    s = img.shape[0]
    lo, hi = int(s * 0.05) + 1, int(s * 0.95) - 1
    inked = lambda y, x: bool((img[y, x] < 200).any())  # noqa: E731
    corners = (inked(lo, lo), inked(lo, hi), inked(hi, lo), inked(hi, hi))
    if corners == (True,) * 4:
        return "square"
    if corners == (False, False, True, True):
        return "triangle"
    q = round(s / 2 - 0.3 * (hi - lo))
    return "circle" if inked(q, q) else "diamond"


def test_answers_balanced(suite):
    _, rows = suite
    by_task = {}
    for r in rows:
        by_task.setdefault(r["source"], []).append(r)
    for task, rs in by_task.items():
        if rs[0]["verifier"] == "multiple-choice":
            k = len(rs[0]["verifier_kwargs"]["options"])
            top = Counter(r["answer"] for r in rs).most_common(1)[0][1] / len(rs)
            assert top <= 1 / k + 0.1, (task, Counter(r["answer"] for r in rs))
            for r in rs:  # the correct option is listed in the prompt
                opts = r["verifier_kwargs"]["options"]
                assert f"{r['answer']}. {opts[r['answer']]}" in r["messages"][0]["content"][-1]["text"]
    for task in ("video_flash", "audio_beeps"):
        assert Counter(r["answer"] for r in by_task[task]) == {"1": N // 3, "2": N // 3, "3": N // 3}
    words = Counter(r["answer"] for r in by_task["word_read"])
    assert max(words.values()) <= 2
    assert Counter(r["answer"] for r in by_task["image_colour"]) == {c: N // 6 for c in COLOURS}
    assert Counter(r["answer"] for r in by_task["image_count"]) == {str(k): N // 4 for k in (1, 2, 3, 4)}
    assert Counter(r["answer"] for r in by_task["image_position"]) == {x: N // 4 for x in "ABCD"}
    assert Counter(r["answer"] for r in by_task["image_shape"]) == {x: N // 4 for x in "ABCD"}


def _image(path, row):
    return np.asarray(Image.open(path.parent / row["messages"][0]["content"][0]["image"]).convert("RGB"))


def test_easy_image_tasks_show_their_answer(suite):
    """The pixels carry the answer: the big shape's centre has the answer colour, the number of quadrants holding a
    shape equals the count, and the shape sits in the quadrant of the (fixed-order) answer letter."""
    path, rows = suite
    quadrant_of = {"A": (0, 0), "B": (0, 1), "C": (1, 0), "D": (1, 1)}  # (row, col): top-left, top-right, ...
    for r in rows:
        if r["source"] not in ("image_colour", "image_count", "image_position"):
            continue
        img = _image(path, r)
        h, w, _ = img.shape
        if r["source"] == "image_colour":
            assert tuple(img[h // 2, w // 2]) == COLOURS[r["answer"]]
            continue
        inked = [[bool((img[i * h // 2:(i + 1) * h // 2, j * w // 2:(j + 1) * w // 2] < 200).any())
                  for j in (0, 1)] for i in (0, 1)]
        if r["source"] == "image_count":
            assert sum(map(sum, inked)) == int(r["answer"]), r["id"]
        else:
            assert r["verifier_kwargs"]["options"] == {"A": "top-left", "B": "top-right", "C": "bottom-left",
                                                       "D": "bottom-right"}
            i, j = quadrant_of[r["answer"]]
            assert inked[i][j] and sum(map(sum, inked)) == 1, r["id"]


def test_image_shape_options_and_pixels(suite):
    """Fixed option order (A circle, B square, C triangle, D diamond); the shape's outline shows in the pixels: a
    square inks the corners of its box, a circle and a diamond the middle of each side but not the corners, a triangle
    the bottom corners only."""
    path, rows = suite
    for r in (r for r in rows if r["source"] == "image_shape"):
        assert r["verifier_kwargs"]["options"] == {"A": "circle", "B": "square", "C": "triangle", "D": "diamond"}
        img = _image(path, r)
        s = img.shape[0]
        lo, hi, mid = int(s * 0.05) + 1, int(s * 0.95) - 1, s // 2
        inked = lambda y, x: bool((img[y, x] < 200).any())  # noqa: E731
        corners = (inked(lo, lo), inked(lo, hi), inked(hi, lo), inked(hi, hi))
        shape = r["verifier_kwargs"]["options"][r["answer"]]
        want = {"circle": (False,) * 4, "square": (True,) * 4, "triangle": (False, False, True, True),
                "diamond": (False,) * 4}[shape]
        assert corners == want, (r["id"], shape, corners)
        if shape in ("circle", "diamond"):
            assert inked(mid, lo) and inked(mid, hi) and inked(lo, mid), r["id"]


def test_gui_button_box_is_the_red_button(suite):
    """The answer box (0-1000 space) is exactly the red pixels, centred on its slot (the screen's vertical midline, the
    middle of the top or bottom half; balanced); a click on the box centre scores 1, a click 75 units right of the
    box's edge (d = 0.075) scores (1 - 0.075 / 0.15)^2 = 0.25, the other slot's centre 0."""
    from omni_rl.data.synthetic import COLOURS
    from omni_rl.verifiers import get_verifier

    path, rows = suite
    gui = get_verifier("gui-coordinate")
    slots = Counter()
    for r in (r for r in rows if r["source"] == "gui_button"):
        img = _image(path, r)
        s = img.shape[0]
        ys, xs = np.nonzero((img == COLOURS["red"]).all(-1))
        box = [round(xs.min() / s * 1000), round(ys.min() / s * 1000), round((xs.max() + 1) / s * 1000),
               round((ys.max() + 1) / s * 1000)]
        assert r["answer"] == box and r["verifier_kwargs"] == {"coord_space": "norm1000"}, r["id"]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        assert abs(cx - 500) <= 20 and min(abs(cy - 250), abs(cy - 750)) <= 20, (r["id"], cx, cy)
        slots[cy < 500] += 1
        kw = r["verifier_kwargs"]
        assert gui(f"\\boxed{{({cx:g}, {cy:g})}}", r["answer"], **kw) == 1.0
        assert gui(f"\\boxed{{({box[2] + 75}, {cy:g})}}", r["answer"], **kw) == pytest.approx(0.25)
        assert gui(f"\\boxed{{(500, {1000 - cy:g})}}", r["answer"], **kw) == 0.0
    assert slots == {True: N // 2, False: N // 2}


def test_gui_boxes_inside_image(suite):
    path, rows = suite
    gui = [r for r in rows if r["source"] == "gui_click"]
    spaces = Counter(r["verifier_kwargs"]["coord_space"] for r in gui)
    assert spaces == {"pixel": N // 2, "norm1000": N // 2}
    for r in gui:
        x1, y1, x2, y2 = r["answer"]
        img = Image.open(path.parent / r["messages"][0]["content"][0]["image"])
        if r["verifier_kwargs"]["coord_space"] == "pixel":
            w, h = r["verifier_kwargs"]["image_size"]
            assert (w, h) == img.size
            assert "pixel" in r["messages"][0]["content"][-1]["text"]
        else:
            w, h = 1000, 1000
            assert "0-1000" in r["messages"][0]["content"][-1]["text"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_media_decodes_as_described(suite):
    path, rows = suite
    root = path.parent
    by_id = {r["id"]: r for r in rows}
    v = load_video(root / by_id["video_flash-00000"]["messages"][0]["content"][0]["video"], fps=4, max_frames=64).frames
    assert v.shape[0] == 12
    lit = v.reshape(12, -1).mean(1) > 60
    assert lit[0::2].tolist() == lit[1::2].tolist()  # flashes last a frame pair
    assert int(lit[0::2].sum()) == int(by_id["video_flash-00000"]["answer"])
    assert load_video(root / by_id["video_motion-00000"]["messages"][0]["content"][0]["video"],
                      fps=4, max_frames=64).frames.shape[0] == 8
    a = load_audio(root / by_id["audio_pitch-00000"]["messages"][0]["content"][0]["audio"])
    assert a.shape == (16000,)


def test_deterministic_and_idempotent(tmp_path):
    tasks = ["image_mcq", "gui_click", "audio_beeps", "text_math", "asr_words"]
    a = generate_suite(tmp_path / "a", tasks=tasks, n_per_task=4, seed=3)
    b = generate_suite(tmp_path / "b", tasks=tasks, n_per_task=4, seed=3)
    assert a.read_bytes() == b.read_bytes()
    for rel in ("media/image_mcq/00001.png", "media/audio_beeps/00002.wav"):
        assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes()
    c = generate_suite(tmp_path / "c", tasks=tasks, n_per_task=4, seed=4)
    assert c.read_bytes() != a.read_bytes()
    # a task's rows do not depend on which other tasks were generated
    d = generate_suite(tmp_path / "d", tasks=["text_math"], n_per_task=4, seed=3)
    assert d.read_text().splitlines() == [x for x in a.read_text().splitlines() if '"text_math' in x]
    # idempotent: same parameters -> untouched
    mtime = a.stat().st_mtime_ns
    assert generate_suite(tmp_path / "a", tasks=tasks, n_per_task=4, seed=3) == a
    assert a.stat().st_mtime_ns == mtime
    manifest = json.loads((a.parent / "manifest.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION and manifest["counts"]["gui_click"] == 4
    # other parameters -> replaced atomically, no temp dirs left behind
    generate_suite(tmp_path / "a", tasks=tasks, n_per_task=2, seed=3)
    assert len(a.read_text().splitlines()) == 2 * len(tasks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c", "d"]


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        generate_suite(tmp_path / "x", tasks=["text_math"], n_per_task=2)
    with pytest.raises(ValueError, match="unknown"):
        generate_suite(tmp_path / "y", tasks=["nope"])


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "cli"), "--tasks", "text_math", "audio_pitch", "--n-per-task", "3"]) == 0
    out = capsys.readouterr().out
    assert "text_math" in out and "audio_pitch" in out and "6" in out
    help_out = subprocess.run([sys.executable, "-m", "omni_rl.data.synthetic", "--help"], capture_output=True,
                              text=True, check=True).stdout
    assert "--n-per-task" in help_out and "--seed" in help_out
