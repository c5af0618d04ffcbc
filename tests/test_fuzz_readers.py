"""Every reader fed mutated bytes of real files: a Problem or the project's one-line error, never
anything else (issue 12). Seeds are small real files made here; the mutations flip, cut, insert
and delete bytes and overwrite header fields (image sizes, atom lengths) with extreme values.

The whole module runs in well under a minute on 2 cores: `IMAGES` examples per image kind (each
also runs the face detector), `MANY` for the cheaper readers.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from video_fixtures import write_video

from affecttrack.config import read_config_file
from affecttrack.data.groups import Problem, SourceScan
from affecttrack.data.images import FaceFinder, load_cropped, read_grey
from affecttrack.data.sources.affwild2 import read_au_file, read_expr_file, read_va_file
from affecttrack.data.sources.ckplus import read_emotion_file
from affecttrack.data.sources.folder import scan_folder
from affecttrack.data.sources.jaffe import jaffe_photo
from affecttrack.data.sources.label_csv import read_label_csv
from affecttrack.data.sources.videos import read_frame_labels
from affecttrack.data.video_frames import decode_frames, probe_video
from affecttrack.errors import AffectTrackError

REPO = Path(__file__).resolve().parents[1]
IMAGES = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MANY = settings(IMAGES, max_examples=200)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on corrupt TIFF tags
# Where header fields sit: bytes after these markers are the ones the "header" mutation overwrites.
MARKERS = (b"IHDR", b"\xff\xc0", b"\xff\xc4", b"\xff\xdb", b"\x00\x01\x03\x00",
           b"\x01\x01\x03\x00", b"\x11\x01", b"moov", b"mvhd", b"tkhd", b"mdhd", b"stsd", b"avcC",
           b"stts", b"stsc", b"stsz", b"stco", b"ftyp")
# Text that readers of numbers and names meet at their edges.
TOKENS = (b"nan", b"inf", b"-inf", b"1e999", b"-5", b"\xc2\xb2", b"\x00", b"9" * 5000, b"a" * 300,
          b",", b"\n", b"\r", b'"', b"\xff\xfe", b"\xef\xbb\xbf", b"-1", b"0x1f", b"2001-13-45",
          b"!!binary", b"&a [*a, *a]", b"{", b"[", b": ", b"- ", b"\t", b"\\")
EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _header_offsets(data: bytes) -> list[int]:
    offsets = []
    for marker in MARKERS:
        start = data.find(marker)
        while start != -1 and len(offsets) < 4000:
            offsets.extend(range(start + len(marker), min(start + len(marker) + 24, len(data))))
            start = data.find(marker, start + 1)
    return offsets or list(range(min(len(data), 64)))


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` after one to four flips, cuts, insertions, deletions or header overwrites."""
    data = bytearray(seed)
    header = _header_offsets(seed)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "header")))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            at = min(draw(st.sampled_from(header)), len(data) - 1)
            width = draw(st.sampled_from((1, 2, 4)))
            value = draw(st.sampled_from(EXTREMES) | st.integers(0, 2**32 - 1))
            order = draw(st.sampled_from(("big", "little")))
            data[at:at + width] = (value % 2**(8 * width)).to_bytes(width, order)
    return bytes(data)


def _face() -> np.ndarray:
    from skimage import data
    return cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)[20:240, 130:320],
                      (56, 64), interpolation=cv2.INTER_AREA)


def _image_bytes(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _video_bytes(folder: Path) -> bytes:
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    frames = [np.dstack([np.roll(ramp, 4 * i, axis=1)] * 3) for i in range(6)]
    return write_video(folder / "seed.mp4", frames, fps=10).read_bytes()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Small real files of every kind the readers take."""
    pytest.importorskip("skimage.data")
    rgb = Image.fromarray(cv2.cvtColor(_face(), cv2.COLOR_BGR2RGB))
    return {
        "png": _image_bytes(rgb, "PNG"),
        "jpg": _image_bytes(rgb, "JPEG", quality=80),
        "tiff": _image_bytes(rgb.convert("L"), "TIFF", compression="tiff_lzw"),
        "palette_tiff": _image_bytes(rgb.quantize(16), "TIFF"),
        "mp4": _video_bytes(tmp_path_factory.mktemp("seed")),
        "va": b"valence,arousal\n0.1,0.2\n-5,-5\n0.35,-0.4\n-1,1\n0.0,0.5\n",
        "expr": (b"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
                 b"0\n4\n-1\n7\n6\n"),
        "au": (b"AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\n"
               b"0,1,0,0,1,0,1,0,0,0,1,0\n-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1\n"
               b"1,1,1,1,1,1,1,1,1,1,1,1\n"),
        "photos_csv": (b"path,label,valence,arousal,subject,split\n"
                       b"S1_0001.png,happy,0.5,0.2,S1,train\n"
                       b"S1_0002.png,Sad,-0.4,,S1,val\n"
                       b"S2_0001.png,,0.1,-0.3,S2,test\n"),
        "frames_csv": (b"frame,valence,arousal,expression\n"
                       b"1,0.1,0.2,3\n2,-5,-5,-1\n3,0.4,0.4,Happy\n"),
        "emotion": b"   3.0000000e+00\n",
        "yaml": (REPO / "configs" / "synthetic_multitask.yaml").read_bytes(),
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the examples write their mutated files into (one file name per reader)."""
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("S1_0001.png", "S1_0002.png", "S2_0001.png"):
        cv2.imwrite(str(root / name), np.full((48, 48), 128, np.uint8))
    return root


def _one_line(message: object) -> None:
    assert "\n" not in str(message) and str(message).strip(), repr(str(message))


def outcome(read: Callable[[], Any]) -> Any:
    """What `read` returns, its Problems checked; None when it raised the project's error.

    Anything else it raises fails the test: that is the point.
    """
    try:
        result = read()
    except AffectTrackError as error:
        _one_line(error)
        return None
    for item in result if isinstance(result, (tuple, list)) else (result,):
        for problem in item if isinstance(item, list) else (item,):
            if isinstance(problem, Problem):
                _one_line(problem)
    return result


def _written(scratch: Path, name: str, data: bytes) -> Path:
    path = scratch / name
    path.write_bytes(data)
    return path


def _check_image(result: Any) -> None:
    if not isinstance(result, Problem):
        assert result.dtype == np.uint8 and result.ndim == 2 and result.size


@pytest.mark.parametrize("kind", ["png", "jpg", "tiff", "palette_tiff"])
def test_image_readers_survive_mutated_images(kind, seeds, scratch):
    finder = FaceFinder()

    @IMAGES
    @given(data=mutated(seeds[kind]))
    def check(data: bytes) -> None:
        path = _written(scratch, f"image.{kind.split('_')[-1]}", data)
        _check_image(outcome(lambda: read_grey(path)))
        crop = outcome(lambda: load_cropped(path))
        assert isinstance(crop, Problem) or crop.shape == (96, 96)
        outcome(lambda: finder(path))

    check()


def test_video_readers_survive_mutated_videos(seeds, scratch):
    @MANY
    @given(data=mutated(seeds["mp4"]))
    def check(data: bytes) -> None:
        path = _written(scratch, "video.mp4", data)
        outcome(lambda: probe_video(path))
        frames = []
        try:
            frames.extend(decode_frames(path))
        except AffectTrackError as error:   # TruncatedVideo after the frames before it
            _one_line(error)
        assert all(frame.image.dtype == np.uint8 for frame in frames)

    check()


@pytest.mark.parametrize("kind, read", [("va", read_va_file), ("expr", read_expr_file),
                                        ("au", read_au_file)])
def test_abaw_annotation_readers_survive_mutated_files(kind, read, seeds, scratch):
    @MANY
    @given(data=mutated(seeds[kind]))
    def check(data: bytes) -> None:
        result = outcome(lambda: read(_written(scratch, f"{kind}.txt", data)))
        assert result is not None, "annotation readers report Problems, they do not raise"

    check()


def test_label_csv_readers_survive_mutated_csvs(seeds, scratch):
    @settings(MANY, max_examples=120)
    @given(photos=mutated(seeds["photos_csv"]), frames=mutated(seeds["frames_csv"]))
    def check(photos: bytes, frames: bytes) -> None:
        path = _written(scratch, "labels.csv", photos)
        outcome(lambda: read_label_csv(path))
        scan = outcome(lambda: scan_folder(scratch, load_cropped, csv=path))
        assert scan is None or isinstance(scan, SourceScan)
        assert outcome(lambda: read_frame_labels(_written(scratch, "clip.csv", frames))
                       ) is not None

    check()


def test_ckplus_emotion_files_and_jaffe_names_survive_mutation(seeds, scratch):
    @MANY
    @given(data=mutated(seeds["emotion"]), name=st.text(st.characters(
        blacklist_categories=("Cc", "Cs")), max_size=40))
    def check(data: bytes, name: str) -> None:
        label = outcome(lambda: read_emotion_file(_written(scratch, "x_emotion.txt", data)))
        assert isinstance(label, Problem) or 1 <= label <= 7
        outcome(lambda: jaffe_photo(Path(f"KA.{name}.tiff")))

    check()


def test_config_files_survive_mutated_yaml(seeds, scratch):
    @MANY
    @given(data=mutated(seeds["yaml"]))
    def check(data: bytes) -> None:
        result = outcome(lambda: read_config_file(_written(scratch, "config.yaml", data)))
        assert result is None or isinstance(result, dict)

    check()
