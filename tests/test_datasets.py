"""Dataset readers on the real OTB sample and on tiny trees built here, including malformed ones."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from nas.data.datasets import detect_format, open_dataset
from nas.data.sequence import split_trackable
from nas.errors import DataError, DataWarning, SkippedSequence

FRAME_SIZE = (48, 32)  # (W, H) of the tiny JPEGs


def tiny_jpeg() -> bytes:
    """One small real JPEG (a gradient), encoded once and copied into every frame file."""
    width, height = FRAME_SIZE
    image = np.add.outer(np.arange(height), np.arange(width)).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", np.dstack([image] * 3))
    assert ok
    return data.tobytes()


def write_lines(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(f"{v:g}" for v in np.atleast_1d(row)) + "\n" for row in rows))


def make_got10k_sequence(split_dir: Path, name: str, boxes: np.ndarray, cover: np.ndarray,
                         resolution: tuple[int, int] = FRAME_SIZE) -> Path:
    """A GOT-10k sequence folder: %08d.jpg frames, groundtruth.txt, labels and meta_info.ini."""
    folder = split_dir / name
    folder.mkdir(parents=True)
    jpeg = tiny_jpeg()
    for i in range(1, len(boxes) + 1):
        (folder / f"{i:08d}.jpg").write_bytes(jpeg)
    write_lines(folder / "groundtruth.txt", boxes)
    write_lines(folder / "cover.label", cover)
    write_lines(folder / "absence.label", (np.asarray(cover) == 0).astype(int))
    write_lines(folder / "cut_by_image.label", np.zeros(len(boxes), dtype=int))
    (folder / "meta_info.ini").write_text(
        "[METAINFO]\nurl: https://example.invalid\nobject_class: toy\n"
        f"resolution: ({resolution[0]}, {resolution[1]})\n")
    return folder


def make_got10k_val(root: Path, sequences: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """`root/val/list.txt` plus one folder per `name: (boxes, cover)`."""
    split_dir = root / "val"
    for name, (boxes, cover) in sequences.items():
        make_got10k_sequence(split_dir, name, boxes, cover)
    (split_dir / "list.txt").write_text("".join(f"{name}\n" for name in sequences))
    return root


def small_got10k(root: Path) -> Path:
    boxes = np.array([[4, 4, 10, 8], [5, 4, 10, 8], [6, 5, 10, 8], [7, 5, 9, 8], [8, 6, 9, 7]], dtype=float)
    return make_got10k_val(root, {"GOT-10k_Val_000001": (boxes, np.array([8, 7, 0, 4, 8]))})


def make_lasot(root: Path, occlusion: list[int], out_of_view: list[int], boxes: np.ndarray | None = None) -> Path:
    folder = root / "cat" / "cat-1"
    n = len(occlusion)
    for i in range(1, n + 1):
        (folder / "img").mkdir(parents=True, exist_ok=True)
        (folder / "img" / f"{i:08d}.jpg").touch()
    write_lines(folder / "groundtruth.txt", np.tile([3, 3, 10, 10], (n, 1)) if boxes is None else boxes)
    (folder / "full_occlusion.txt").write_text(",".join(map(str, occlusion)) + "\n")
    (folder / "out_of_view.txt").write_text(",".join(map(str, out_of_view)) + "\n")
    return root


def make_otb_folder(root: Path, name: str, n_images: int, gt_files: dict[str, int], digits: int = 4,
                    first_image: int = 1) -> None:
    """An OTB folder with empty frame files (never decoded here) and `gt_files: file name -> rows`."""
    img = root / name / "img"
    img.mkdir(parents=True)
    for i in range(first_image, first_image + n_images):
        (img / f"{i:0{digits}d}.jpg").touch()
    for file_name, rows in gt_files.items():
        (root / name / file_name).write_text("".join(f"{k}\t{k}\t5\t6\r\n" for k in range(1, rows + 1)))


# ---------------------------------------------------------------------------------------- valid data
def test_real_otb_crossing_loads(otb_root: Path):
    [seq] = open_dataset(otb_root)
    assert seq.name == "Crossing" and len(seq) == 120
    assert seq.boxes.shape == (120, 4)
    assert seq.boxes[0].tolist() == [205, 151, 17, 50]  # the tab-separated first line
    frame = seq.frame(0)
    assert frame.shape == (240, 360, 3) and frame.dtype == np.uint8
    bgr = cv2.imread(str(seq.frames[0]))
    assert np.array_equal(frame, bgr[:, :, ::-1])  # RGB, not OpenCV's BGR


def test_got10k_val_reads_labels_visibility_and_resolution(tmp_path: Path):
    [seq] = open_dataset(small_got10k(tmp_path))
    assert seq.name == "GOT-10k_Val_000001" and len(seq) == 5 and seq.boxes.shape == (5, 4)
    assert seq.cover.tolist() == [8, 7, 0, 4, 8]
    assert seq.visible.tolist() == [True, True, False, True, True]
    assert seq.resolution == FRAME_SIZE
    assert seq.frame(4).shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3)


def test_got10k_test_split_has_only_the_initial_box(tmp_path: Path):
    folder = make_got10k_sequence(tmp_path / "test", "GOT-10k_Test_000001", np.tile([1, 2, 3, 4], (3, 1)), np.ones(3))
    write_lines(folder / "groundtruth.txt", [[1, 2, 3, 4]])
    (tmp_path / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
    [seq] = open_dataset(tmp_path, "got10k", split="test")
    assert len(seq) == 3 and seq.boxes.shape == (1, 4)


def test_lasot_visibility_and_nan_box_in_absent_frame_warns(tmp_path: Path):
    boxes = np.array([[3, 3, 10, 10], [0, 0, 0, 0], [np.nan] * 4, [4, 4, 10, 10]])
    with pytest.warns(DataWarning, match="cat-1.*1 NaN boxes"):
        [seq] = open_dataset(make_lasot(tmp_path, [0, 1, 0, 0], [0, 0, 1, 0], boxes))
    assert detect_format(tmp_path) == "lasot"
    assert seq.name == "cat-1" and seq.visible.tolist() == [True, False, False, True]


def test_lasot_split_follows_testing_set(tmp_path: Path):
    make_lasot(tmp_path, [0, 0], [0, 0])
    (tmp_path / "testing_set.txt").write_text("cat-1\n")
    assert [seq.name for seq in open_dataset(tmp_path, "lasot", "test")] == ["cat-1"]
    with pytest.raises(DataError, match="split train: no LaSOT sequence folders"):
        open_dataset(tmp_path, "lasot", "train")


def test_otb_special_sequences(tmp_path: Path):
    make_otb_folder(tmp_path, "David", 770, {"groundtruth_rect.txt": 471})
    make_otb_folder(tmp_path, "Tiger1", 354, {"groundtruth_rect.txt": 354})
    make_otb_folder(tmp_path, "Board", 698, {"groundtruth_rect.txt": 698}, digits=5)
    make_otb_folder(tmp_path, "BlurCar3", 357, {"groundtruth_rect.txt": 357}, first_image=3)
    make_otb_folder(tmp_path, "Jogging", 7, {"groundtruth_rect.1.txt": 7, "groundtruth_rect.2.txt": 7})
    make_otb_folder(tmp_path, "Human4", 6, {"groundtruth_rect.1.txt": 0, "groundtruth_rect.2.txt": 6})
    seqs = {seq.name: seq for seq in open_dataset(tmp_path)}
    assert sorted(seqs) == ["BlurCar3", "Board", "David", "Human4", "Jogging_1", "Jogging_2", "Tiger1"]
    assert len(seqs["David"]) == 471 and seqs["David"].frames[0].name == "0300.jpg"
    assert len(seqs["Tiger1"]) == 349 and seqs["Tiger1"].frames[0].name == "0006.jpg"
    assert seqs["Tiger1"].boxes[0, 0] == 6  # ground-truth rows [5:] go with frames 6..354
    assert seqs["Board"].frames[-1].name == "00698.jpg"
    assert seqs["BlurCar3"].frames[0].name == "0003.jpg" and len(seqs["BlurCar3"]) == 357
    assert seqs["Jogging_1"].frames == seqs["Jogging_2"].frames
    assert len(seqs["Human4"]) == 6


def test_trackingnet_frames_sort_numerically_and_zero_boxes_are_invisible(tmp_path: Path):
    chunk = tmp_path / "TRAIN_0"
    (chunk / "frames" / "vid_a").mkdir(parents=True)
    for k in range(12):
        (chunk / "frames" / "vid_a" / f"{k}.jpg").touch()
    rows = [" 1.00,2.00,30.00,40.00"] * 11 + [" 0.00,0.00,0.00,0.00"]
    (chunk / "anno").mkdir()
    (chunk / "anno" / "vid_a.txt").write_text("\n".join(rows) + "\n")
    [seq] = open_dataset(tmp_path, split="train")
    assert [f.name for f in seq.frames[9:]] == ["9.jpg", "10.jpg", "11.jpg"]
    assert seq.visible.tolist() == [True] * 11 + [False]


# ---------------------------------------------------------------------------------------- bad data
def _got_folder(root: Path) -> Path:
    return small_got10k(root) / "val" / "GOT-10k_Val_000001"


def _replace_gt_line(root: Path, line_no: int, text: str) -> None:
    path = _got_folder(root) / "groundtruth.txt"
    lines = path.read_text().splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _unlink(relative: str) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        (_got_folder(root) / relative).unlink()
        return root
    return damage


def _with_gt_line(line_no: int, text: str) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        _replace_gt_line(root, line_no, text)
        return root
    return damage


def _write(relative: str, text: str) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        path = small_got10k(root) / relative
        path.write_text(text)
        return root
    return damage


def _extra_frame(root: Path) -> Path:
    (_got_folder(root) / "00000006.jpg").write_bytes(tiny_jpeg())
    return root


def _lasot_short_label(root: Path) -> Path:
    make_lasot(root, [0, 0, 0], [0, 0, 0])
    (root / "cat" / "cat-1" / "out_of_view.txt").write_text("0,0\n")
    return root


def _otb_without_img(root: Path) -> Path:
    (root / "Walking" / "img").mkdir(parents=True)
    (root / "Walking" / "groundtruth_rect.txt").write_text("1,2,3,4\n")
    (root / "Walking" / "img").rmdir()
    return root


def _otb_david_wrong_rows(root: Path) -> Path:
    make_otb_folder(root, "David", 770, {"groundtruth_rect.txt": 470})
    return root


def _unknown_layout(root: Path) -> Path:
    (root / "something" / "else").mkdir(parents=True)
    return root


# (name, damage(root) -> dataset root, (sequence or file named in the message), expected message part)
MALFORMED = [
    ("missing frame", _unlink("00000003.jpg"), "GOT-10k_Val_000001", "frames missing, first 00000003.jpg"),
    ("more frames than boxes", _extra_frame, "GOT-10k_Val_000001", "has 5 boxes but the folder has 6 frames"),
    ("missing groundtruth", _unlink("groundtruth.txt"), "groundtruth.txt", "file is missing"),
    ("malformed number", _with_gt_line(2, "5,4,1O,8"), "groundtruth.txt", "line 2: expected numbers"),
    ("wrong column count", _with_gt_line(3, "6,5,10"), "groundtruth.txt", "line 3: expected 4 values, got 3"),
    ("empty list.txt", _write("val/list.txt", "\n"), "list.txt", "lists no sequences"),
    ("listed folder missing", _write("val/list.txt", "GOT-10k_Val_000001\nGOT-10k_Val_000002\n"),
     "GOT-10k_Val_000002", "sequence folder listed in list.txt is missing"),
    ("cover label length", _write("val/GOT-10k_Val_000001/cover.label", "8\n8\n8\n8\n"), "cover.label",
     "has 4 labels but the sequence has 5 frames"),
    ("cover label out of range", _write("val/GOT-10k_Val_000001/cover.label", "8\n9\n8\n8\n8\n"), "cover.label",
     "label 2: expected an integer 0..8"),
    ("no resolution in meta", _write("val/GOT-10k_Val_000001/meta_info.ini", "[METAINFO]\nurl: x\n"),
     "meta_info.ini", "resolution: (W, H)"),
    ("missing meta_info.ini", _unlink("meta_info.ini"), "GOT-10k_Val_000001", "meta_info.ini is missing"),
    ("empty groundtruth", _write("val/GOT-10k_Val_000001/groundtruth.txt", ""), "groundtruth.txt", "file is empty"),
    ("LaSOT label length", _lasot_short_label, "out_of_view.txt", "has 2 labels but the sequence has 3 frames"),
    ("OTB image folder missing", _otb_without_img, "Walking", "image folder is missing"),
    ("OTB David range", _otb_david_wrong_rows, "David", "has 470 boxes but frames 300..770 of David need 471"),
    ("unknown layout", _unknown_layout, "", "cannot tell the dataset format"),
]


def test_degenerate_ground_truth_is_one_warning_with_counts_not_a_refusal(tmp_path: Path):
    root = tmp_path
    (_got_folder(tmp_path) / "groundtruth.txt").write_text("4,4,10,8\nnan,nan,nan,nan\n6,5,10,8\n7,5,-9,8\n8,6,9,0\n")
    with pytest.warns(DataWarning) as caught:
        [seq] = open_dataset(root)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "GOT-10k_Val_000001" in message and "\n" not in message
    assert "2 zero-area (w or h <= 0) boxes where the target is scored" in message
    assert "1 NaN boxes where the target is scored" in message
    assert np.isnan(seq.boxes[1]).all() and seq.boxes[3, 2] == -9


def test_invalid_first_box_skips_that_sequence_only(tmp_path: Path):
    boxes = np.array([[4, 4, 10, 8], [5, 4, 10, 8], [6, 5, 10, 8]], dtype=float)
    root = make_got10k_val(tmp_path, {"good": (boxes, np.array([8, 8, 8])),
                                      "bad": (np.vstack([[4, 4, 0, 8], boxes[1:]]), np.array([8, 8, 8]))})
    sequences = open_dataset(root)  # read, not refused
    with pytest.warns(SkippedSequence, match=r"sequence bad: the initial box \(frame 1\) must be finite"):
        usable, skipped = split_trackable(sequences)
    assert [seq.name for seq in usable] == ["good"] and list(skipped) == ["bad"]
    with pytest.raises(DataError, match="no sequence has a valid first box"), pytest.warns(SkippedSequence):
        split_trackable(sequences[1:])


@pytest.mark.parametrize("damage, named, expected", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_dataset_raises_one_line_error(tmp_path: Path, damage, named: str, expected: str):
    root = damage(tmp_path)
    with pytest.raises(DataError) as info:
        open_dataset(root)
    message = str(info.value)
    assert expected in message
    assert named in message
    assert "\n" not in message


def test_undecodable_frame_fails_lazily_with_one_line(tmp_path: Path):
    (_got_folder(tmp_path) / "00000002.jpg").write_bytes(b"not a jpeg")
    [seq] = open_dataset(tmp_path)  # existence is checked eagerly, decoding only on access
    with pytest.raises(DataError, match=r"00000002\.jpg.*GOT-10k_Val_000001 frame 1.*cannot read image"):
        seq.frame(1)


def test_detects_each_format_and_reports_unknown_split(tmp_path: Path):
    assert detect_format(small_got10k(tmp_path / "got")) == "got10k"
    make_otb_folder(tmp_path / "otb", "Walking", 3, {"groundtruth_rect.txt": 3})
    assert detect_format(tmp_path / "otb") == "otb"
    with pytest.raises(DataError, match="unknown GOT-10k split 'dev'"):
        open_dataset(tmp_path / "got", split="dev")
