"""A drawn face whose geometry follows valence and arousal, for the synthetic data generator.

Faces are drawn in *face units* (the face is about 2 units wide, x to the right, y down, origin
near the nose) and projected to pixels per frame, so one drawing serves both the 112x112 aligned
crops and faces placed in a larger scene. All shapes are anti-aliased polygons drawn with
sub-pixel precision: expressions move features by a few pixels only, and integer rounding would
turn those small moves into label noise the generator did not mean to add.

The expression controls mimic the facial actions annotators read: corners of the mouth up or down
and a wider mouth with valence (smile / frown, with smile lines), eye opening, mouth opening and
brow raise with arousal, inner brows pulled down in negative, activated states (anger) and up in
negative, deactivated ones (sadness). Each identity adds resting biases (a mouth that curves up at
rest, narrow eyes, a mouth that opens more than most), so a single frame cannot be read exactly
without knowing the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA
_CIRCLE = np.linspace(0.0, 2.0 * np.pi, 40, endpoint=False)
_COS, _SIN = np.cos(_CIRCLE), np.sin(_CIRCLE)
_SPAN = np.linspace(-1.0, 1.0, 13)  # parameter along eyes, lips, brows

Colour = tuple[float, float, float]

# RGB anchors from light to dark skin; an identity blends two neighbours.
_SKIN_RGB = np.array([(255, 224, 196), (241, 194, 150), (224, 172, 120), (198, 134, 80),
                      (150, 95, 55), (100, 62, 40)], dtype=np.float64)
# Dark hair colours first: light hair around a dark face defeats the Haar cascade that the paper
# detects faces with, so darker-skinned identities draw from the first three only.
_HAIR_RGB = np.array([(28, 24, 24), (60, 42, 30), (105, 72, 44), (196, 166, 110),
                      (150, 72, 40), (165, 165, 165)], dtype=np.float64)
_IRIS_RGB = np.array([(90, 60, 30), (45, 32, 25), (70, 110, 150), (80, 115, 80)], dtype=np.float64)


def _bgr(rgb: np.ndarray) -> Colour:
    return (float(rgb[2]), float(rgb[1]), float(rgb[0]))


@dataclass(frozen=True)
class Identity:
    """One synthetic person: fixed shape, colours and resting expression biases."""

    face_w: float
    face_h: float
    jaw: float
    hairline: float
    hair_style: int  # 0 short, 1 long, 2 bald
    eye_x: float
    eye_y: float
    eye_w: float
    eye_tilt: float
    brow_y: float
    brow_thickness: float
    nose_y: float
    mouth_y: float
    mouth_w: float
    lip_thickness: float
    # resting biases: the same expression reads differently on different people
    rest_mouth_curve: float
    rest_eye_open: float
    rest_brow: float
    mouth_open_gain: float
    skin: Colour
    hair: Colour
    iris: Colour
    lips: Colour
    shirt: Colour


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random person; the spread of resting biases sets how ambiguous single frames are."""
    tone = rng.uniform(0, len(_SKIN_RGB) - 1)
    low = int(tone)
    skin = _SKIN_RGB[low] + (tone - low) * (_SKIN_RGB[min(low + 1, len(_SKIN_RGB) - 1)]
                                            - _SKIN_RGB[low])
    skin = np.clip(skin * rng.uniform(0.93, 1.05, 3), 0, 255)
    lips = skin * np.array([0.82, 0.55, 0.58])
    return Identity(
        face_w=rng.uniform(0.86, 1.02), face_h=rng.uniform(1.18, 1.36), jaw=rng.uniform(0.05, 0.3),
        hairline=rng.uniform(-0.95, -0.72), hair_style=int(rng.choice(3, p=[0.5, 0.4, 0.1])),
        eye_x=rng.uniform(0.34, 0.42), eye_y=rng.uniform(-0.28, -0.18),
        eye_w=rng.uniform(0.17, 0.22), eye_tilt=rng.uniform(-0.02, 0.04),
        brow_y=rng.uniform(-0.52, -0.44), brow_thickness=rng.uniform(0.045, 0.085),
        nose_y=rng.uniform(0.14, 0.24), mouth_y=rng.uniform(0.5, 0.62),
        mouth_w=rng.uniform(0.28, 0.38), lip_thickness=rng.uniform(0.035, 0.065),
        rest_mouth_curve=rng.normal(0.0, 0.025), rest_eye_open=rng.uniform(0.068, 0.09),
        rest_brow=rng.normal(0.0, 0.015), mouth_open_gain=rng.uniform(0.75, 1.3),
        skin=_bgr(skin), hair=_bgr(_HAIR_RGB[rng.integers(3 if tone > 2.5 else len(_HAIR_RGB))]),
        iris=_bgr(_IRIS_RGB[rng.integers(len(_IRIS_RGB))]), lips=_bgr(lips),
        shirt=_bgr(rng.uniform(30, 230, 3)))


@dataclass
class Expression:
    """Per-frame feature controls in face units, as arrays over a video's frames."""

    mouth_curve: np.ndarray  # corner-to-centre height of the mouth line; > 0 is a smile
    mouth_width: np.ndarray  # half-width
    mouth_open: np.ndarray
    eye_open: np.ndarray  # height of the upper lid over the eye line
    brow_raise: np.ndarray
    brow_inner: np.ndarray  # > 0 pulls the inner ends down (anger), < 0 up (sadness)
    smile_lines: np.ndarray  # 0..1 strength of the nasolabial folds
    gaze_x: np.ndarray
    gaze_y: np.ndarray


def expression_controls(person: Identity, valence: dict[str, np.ndarray],
                        arousal: dict[str, np.ndarray], speech: np.ndarray, blink: np.ndarray,
                        gaze: np.ndarray) -> Expression:
    """Feature controls from the valence/arousal each feature group shows in each frame.

    `valence` and `arousal` hold one signal per feature group ("mouth", "eyes", "brows") so that
    the caller can jitter them independently; `speech` adds label-independent mouth opening and
    `blink` (0 closed .. 1 open) multiplies the eye opening.
    """
    vm, am = valence["mouth"], arousal["mouth"]
    ve, ae = valence["eyes"], arousal["eyes"]
    vb, ab = valence["brows"], arousal["brows"]
    eye_open = (person.rest_eye_open * np.clip(1.0 + 0.6 * ae, 0.3, None)
                * (1.0 - 0.3 * np.clip(ve, 0.0, 1.0)) * blink)
    return Expression(
        mouth_curve=0.2 * vm + person.rest_mouth_curve,
        mouth_width=person.mouth_w * (1.0 + 0.18 * vm - 0.12 * np.clip(am, 0.0, 1.0)),
        mouth_open=person.mouth_open_gain * 0.26 * np.clip(am - 0.05, 0.0, None) + speech,
        eye_open=eye_open,
        brow_raise=0.12 * ab + person.rest_brow,
        brow_inner=0.25 * np.clip(-vb, 0.0, 1.0) * ab,
        smile_lines=np.clip(1.6 * vm - 0.2, 0.0, 1.0),
        gaze_x=gaze[:, 0], gaze_y=gaze[:, 1])


def action_units(person: Identity, controls: Expression) -> dict[str, np.ndarray]:
    """Which of Aff-Wild2's 2020 action units each frame shows (0/1), read off the drawn face.

    FACS codes movements away from a face's neutral, so each unit is a control's departure from
    the person's resting value past a threshold: an AU is visible in the frame it is coded for
    (speech parts the lips too, as it does in real data), and it follows valence/arousal only
    through what the face shows.
    """
    curve = controls.mouth_curve - person.rest_mouth_curve
    brows_up = controls.brow_raise - person.rest_brow
    units = {
        "AU1": (controls.brow_inner < -0.02) | (brows_up > 0.06),   # inner brow raiser
        "AU2": brows_up > 0.06,                                     # outer brow raiser
        "AU4": controls.brow_inner > 0.03,                          # brow lowerer
        "AU6": controls.smile_lines > 0.4,                          # cheek raiser
        "AU12": curve > 0.05,                                       # lip corner puller
        "AU15": curve < -0.04,                                      # lip corner depressor
        "AU20": controls.mouth_width / person.mouth_w < 0.95,       # lip stretcher
        "AU25": controls.mouth_open > 0.02,                         # lips part
    }
    return {name: active.astype(np.int8) for name, active in units.items()}


@dataclass(frozen=True)
class Pose:
    """Where the face lands in the image: centre and size in pixels, in-plane and out-of-plane turn.

    `yaw` and `pitch` (about -1..1) fake a head turn by squashing the face and sliding features
    in proportion to how far they stand out of the face plane.
    """

    cx: float
    cy: float
    scale: float  # pixels per face unit
    roll: float  # degrees
    yaw: float
    pitch: float


class _Projector:
    """Face units -> fixed-point pixel coordinates for one frame's pose."""

    def __init__(self, pose: Pose) -> None:
        angle = np.deg2rad(pose.roll)
        c, s = np.cos(angle) * pose.scale * _ONE, np.sin(angle) * pose.scale * _ONE
        self.m = (c, -s, s, c)
        self.t = (pose.cx * _ONE, pose.cy * _ONE)
        self.yaw, self.pitch = pose.yaw, pose.pitch
        self.squash = (1.0 - 0.12 * abs(pose.yaw), 1.0 - 0.08 * abs(pose.pitch))
        self.px = pose.scale

    def __call__(self, x: np.ndarray, y: np.ndarray, depth: float = 0.0) -> np.ndarray:
        u = x * self.squash[0] + 0.3 * depth * self.yaw
        v = y * self.squash[1] + 0.25 * depth * self.pitch
        a, b, c, d = self.m
        pts = np.empty((np.size(u), 2), dtype=np.int32)
        pts[:, 0] = np.rint(a * u + b * v + self.t[0])
        pts[:, 1] = np.rint(c * u + d * v + self.t[1])
        return pts

    def thickness(self, units: float) -> int:
        return max(1, round(units * self.px))


def _fill(img: np.ndarray, pts: np.ndarray, colour: Colour) -> None:
    cv2.fillPoly(img, [pts], colour, _AA, _SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, colour: Colour, thickness: int) -> None:
    cv2.polylines(img, [pts], False, colour, thickness, _AA, _SHIFT)


def _shade(colour: Colour, factor: float) -> Colour:
    return (colour[0] * factor, colour[1] * factor, colour[2] * factor)


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2] + t * (b[2] - a[2]))


def _darker(a: Colour, b: Colour) -> Colour:
    """Brows and lashes stay darker than the skin whatever the hair colour, as on real faces."""
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


def draw_face(img: np.ndarray, person: Identity, expr: Expression, frame: int, pose: Pose) -> None:
    """Draw `person` with frame `frame` of `expr` onto `img` (BGR uint8, in place)."""
    p = _Projector(pose)
    _draw_head(img, person, p)
    _draw_brows(img, person, expr, frame, p)
    _draw_eyes(img, person, expr, frame, p)
    _draw_nose(img, person, p)
    _draw_mouth(img, person, expr, frame, p)


def _draw_head(img: np.ndarray, person: Identity, p: _Projector) -> None:
    skin, w, h = person.skin, person.face_w, person.face_h
    shade = _shade(skin, 0.82)
    _fill(img, p(np.array([-2.4, -0.8, -0.4, 0.4, 0.8, 2.4, 2.6, -2.6]),
                 np.array([2.2, 1.45, 1.6, 1.6, 1.45, 2.2, 3.5, 3.5]), -0.6), person.shirt)
    if person.hair_style == 1:
        _fill(img, p(w * 1.18 * _COS, -0.15 + h * 1.08 * np.where(_SIN > 0, 1.25, 1.0) * _SIN,
                     -0.3), person.hair)
    elif person.hair_style == 0:
        _fill(img, p(w * 1.08 * _COS, -0.2 + h * 1.02 * _SIN, -0.2), person.hair)
    _fill(img, p(np.array([-0.42, 0.42, 0.5, -0.5]), np.array([0.6, 0.6, 1.75, 1.75]), -0.4),
          shade)
    for side in (-1.0, 1.0):
        _fill(img, p(side * w * 0.97 + 0.12 * _COS, -0.05 + 0.22 * _SIN, -0.3), shade)
    outline_x = w * _COS * (1.0 - person.jaw * np.clip(_SIN, 0.0, None) ** 2)
    _fill(img, p(outline_x, h * _SIN), skin)
    if person.hair_style != 2:
        _draw_fringe(img, person, p)


def _draw_fringe(img: np.ndarray, person: Identity, p: _Projector) -> None:
    w, h, top = person.face_w, person.face_h, person.hairline
    edge = np.arcsin(min(1.0, -top / h))
    angles = np.linspace(np.pi + edge, 2.0 * np.pi - edge, 14)
    arc_x, arc_y = w * np.cos(angles) * 1.01, h * np.sin(angles) * 1.01
    line_x = np.linspace(arc_x[-1], arc_x[0], 9)
    line_y = top - 0.12 * (1.0 - (line_x / w) ** 2)
    _fill(img, p(np.concatenate([arc_x, line_x]), np.concatenate([arc_y, line_y])), person.hair)


def _draw_brows(img: np.ndarray, person: Identity, expr: Expression, i: int,
                p: _Projector) -> None:
    raise_, inner = expr.brow_raise[i], expr.brow_inner[i]
    base = person.brow_y - raise_
    colour = _darker(_mix(person.hair, (20.0, 20.0, 20.0), 0.5), _shade(person.skin, 0.45))
    t = (_SPAN + 1.0) / 2.0  # 0 at the inner end, 1 at the outer end
    for side in (-1.0, 1.0):
        x = side * (person.eye_x - person.eye_w * 0.9 + t * person.eye_w * 2.1)
        y = base + (1.0 - t) * inner - 0.06 * np.sin(np.pi * t * 0.9) + 0.3 * t * raise_
        _line(img, p(x, y, 0.5), colour, p.thickness(person.brow_thickness))
    if inner > 0.02:
        frown = _mix(person.skin, _shade(person.skin, 0.6), min(1.0, inner / 0.08))
        for side in (-1.0, 1.0):
            _line(img, p(np.array([side * 0.07, side * 0.09]), base + np.array([0.0, 0.14]), 0.5),
                  frown, 1)


def _draw_eyes(img: np.ndarray, person: Identity, expr: Expression, i: int,
               p: _Projector) -> None:
    opening = expr.eye_open[i]
    lash = _darker(_shade(person.hair, 0.5), _shade(person.skin, 0.35))
    bulge = (1.0 - _SPAN ** 2) ** 0.8
    for side in (-1.0, 1.0):
        cx = side * person.eye_x
        x = cx + person.eye_w * _SPAN
        tilt = -person.eye_tilt * _SPAN * side
        upper = person.eye_y + tilt - opening * bulge
        lower = person.eye_y + tilt + 0.6 * opening * bulge + 0.008
        if opening > 0.012:
            _fill(img, p(np.concatenate([x, x[::-1]]), np.concatenate([upper, lower[::-1]]), 0.5),
                  (235.0, 240.0, 242.0))
            _draw_iris(img, person, x, upper, lower,
                       cx + expr.gaze_x[i] * person.eye_w * 0.35, person.eye_y + expr.gaze_y[i]
                       * 0.02, p)
        _line(img, p(x, upper, 0.5), lash, p.thickness(0.035))
        _line(img, p(x, lower, 0.5), _shade(person.skin, 0.7), 1)


def _draw_iris(img: np.ndarray, person: Identity, x: np.ndarray, upper: np.ndarray,
               lower: np.ndarray, cx: float, cy: float, p: _Projector) -> None:
    """Iris and pupil, cut by the lids: a narrowed eye shows a narrowed iris."""
    radius = person.eye_w * 0.5
    for r, colour in ((radius, person.iris), (radius * 0.45, (15.0, 15.0, 15.0))):
        ix, iy = cx + r * _COS, cy + r * _SIN
        iy = np.clip(iy, np.interp(ix, x, upper), np.interp(ix, x, lower))
        _fill(img, p(ix, iy, 0.5), colour)


def _draw_nose(img: np.ndarray, person: Identity, p: _Projector) -> None:
    shade = _shade(person.skin, 0.72)
    y0, y1 = person.eye_y + 0.08, person.nose_y
    _line(img, p(np.array([0.07, 0.09, 0.1]), np.array([y0, (y0 + y1) / 2, y1 - 0.04]), 0.8),
          shade, 1)
    base = np.linspace(-1.0, 1.0, 7)
    _line(img, p(0.13 * base, y1 + 0.03 * (1.0 - base ** 2), 1.0), shade, p.thickness(0.025))
    for side in (-1.0, 1.0):
        _fill(img, p(side * 0.065 + 0.03 * _COS, y1 + 0.005 + 0.016 * _SIN, 1.0),
              _shade(person.skin, 0.45))


def _draw_mouth(img: np.ndarray, person: Identity, expr: Expression, i: int,
                p: _Projector) -> None:
    curve, half, opening = expr.mouth_curve[i], expr.mouth_width[i], expr.mouth_open[i]
    x = half * _SPAN
    centre = person.mouth_y + curve * (0.35 - _SPAN ** 2)
    bulge = (1.0 - _SPAN ** 2) ** 0.7
    inner_top = centre - 0.3 * opening * bulge
    inner_bottom = centre + 0.7 * opening * bulge
    lip = person.lip_thickness
    outer_top = inner_top - lip * (1.0 - 0.6 * _SPAN ** 2) - 0.012
    outer_bottom = inner_bottom + 1.3 * lip * (1.0 - _SPAN ** 2) ** 0.5
    _draw_smile_lines(img, person, expr.smile_lines[i], half, centre[0], p)
    _fill(img, p(np.concatenate([x, x[::-1]]), np.concatenate([outer_top, outer_bottom[::-1]]),
                 0.6), person.lips)
    if opening > 0.015:
        _fill(img, p(np.concatenate([x, x[::-1]]), np.concatenate([inner_top, inner_bottom[::-1]]),
                     0.6), (40.0, 30.0, 70.0))
        if opening > 0.04:
            teeth = np.minimum(inner_top + min(0.05, 0.4 * opening) * bulge, inner_bottom)
            _fill(img, p(np.concatenate([x, x[::-1]]) * 0.85,
                         np.concatenate([inner_top, teeth[::-1]]), 0.6), (225.0, 235.0, 240.0))
    else:
        _line(img, p(x, centre, 0.6), _shade(person.lips, 0.45), p.thickness(0.02))


def _draw_smile_lines(img: np.ndarray, person: Identity, strength: float, half: float,
                      corner_y: float, p: _Projector) -> None:
    if strength <= 0.05:
        return
    colour = _mix(person.skin, _shade(person.skin, 0.55), strength)
    t = np.linspace(0.0, 1.0, 7)
    for side in (-1.0, 1.0):
        x = side * (0.17 + t * (half - 0.05) + 0.06 * np.sin(np.pi * t))
        y = person.nose_y - 0.02 + t * (corner_y + 0.06 - person.nose_y)
        _line(img, p(x, y, 0.7), colour, 1)


def draw_occluder(img: np.ndarray, kind: int, centre: tuple[float, float], size: float,
                  angle: float, colour: Colour, pose: Pose) -> None:
    """A hand (kind 0) or a held object (kind 1) in front of the face, in face units."""
    p = _Projector(pose)
    cx, cy = centre
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    if kind == 0:
        edge = _shade(colour, 0.8)
        for offset in (-0.3, -0.1, 0.1, 0.3):
            fx = np.array([offset, offset * 1.15]) * size
            fy = np.array([-0.3, -1.0]) * size
            finger = p(cx + c * fx - s * fy, cy + s * fx + c * fy, 2.0)
            _line(img, finger, edge, p.thickness(0.17 * size) + 2)
            _line(img, finger, colour, p.thickness(0.17 * size))
        palm_x, palm_y = 0.45 * size * _COS, 0.55 * size * _SIN
        _fill(img, p(cx + c * palm_x - s * palm_y, cy + s * palm_x + c * palm_y, 2.0), colour)
    else:
        bx = np.array([-0.5, 0.5, 0.5, -0.5]) * size
        by = np.array([-0.3, -0.3, 0.3, 0.3]) * size
        pts = p(cx + c * bx - s * by, cy + s * bx + c * by, 2.0)
        _fill(img, pts, colour)
        cv2.polylines(img, [pts], True, _shade(colour, 0.5), p.thickness(0.03), _AA, _SHIFT)
