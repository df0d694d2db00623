"""The embedded default: procedurally generated "actors and actions" clips.

Each of ``num_actors`` actors has a persistent appearance — shirt and trouser colours, a striped
shirt texture, skin tone, build (girth, and a small height difference), a slight personal motion
amplitude, and two recording sessions with their own background (colour gradient plus furniture
blocks). Per-clip scale jitter is larger than the actors' height spread, so identity lives in
appearance, not in the motion: a release that kept only the motion could reach chance-level
identity with full utility (the ideal corner of the trade-off plot, see FINDINGS). Each of the six actions
(``wave1``, ``wave2``, ``jump``, ``bend``, ``walk``, ``jack``) is a motion of the limbs or body drawn as
an articulated figure with anti-aliased limbs about one pixel thick at 32x32. Position, scale, phase,
speed, lighting and sensor noise vary per clip. Everything is deterministic from ``seed``.

Like real footage (SBU, Weizmann; see FINDINGS), identity is carried by coarse cues — background,
clothing colour and brightness, build — that survive greyscale and strong downsampling, while the
action lives in thin, fast-moving limbs that downsampling blurs away. Measured with
``python bench/synthetic_phenomenon.py`` (seed 0, 32x32, 16 frames, 10 actors; a small 3D CNN for the
action, the best of five attackers (linear and motion probes, two frame CNNs, a 3D CNN) for identity, all retrained on the
transformed clips, the demo config's audit; chance: action 16.7 %, identity 10 %; docs/synthetic.md is
the generated page):

    transform          action %   identity % (best retrained attacker)
    none (raw)           85.6       100.0
    greyscale            90.0        96.7
    downsample x4        41.7       100.0
    downsample x8        17.2       100.0

The image variant (``synthetic_image``) renders single frames: utility = the posture (each action at
its characteristic phase), private = the actor.

**Tasks** (labels of tasks a release was never trained for, ``docs/tasks.md``): the generator draws
each clip's horizontal place, tempo and zoom itself, so it labels them exactly (:data:`TASKS`):
``position`` (``left`` / ``right``: the figure's centre left or right of the frame's centre),
``speed`` (``slow`` / ``fast``: the tempo factor below or above 1.025) and ``size`` (``small`` /
``large``: the per-clip zoom below or above 1). Each threshold is the median of the distribution the
value is drawn from (uniform on [-0.15, 0.15], [0.8, 1.25] and [0.88, 1.12]), so the classes are
balanced in expectation; the values are drawn per clip, independent of the actor and the action, so
in ``synthetic`` the tasks carry no identity. ``size`` is the zoom alone: the actor's own height
(±6 %) is an identity cue and is left out of the label. Images have no ``speed``.

**``synthetic_cues``**: the same figures and actions, but every actor wears the same clothes in the
same two rooms, and actors differ by build (height and girth), by a personal tempo, a preferred place
in the frame and a preferred distance to the camera: identity lives in what the tasks measure. Each
clip's place, tempo and zoom are the actor's own plus a per-clip jitter (0.35 times the spread of
``synthetic``); the actors' preferences are evenly spaced over ``synthetic``'s ranges (centred on the
task thresholds, so the classes stay balanced) and dealt to the actors at random.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import register_dataset
from .base import Splits, TensorSampleDataset, stratified_split

ACTIONS = ["wave1", "wave2", "jump", "bend", "walk", "jack"]

#: task name -> (the clip parameter it bins, the threshold, [class below, class at or above]); the
#: thresholds are the medians of the distributions the parameters are drawn from (module docstring)
TASKS = {
    "position": ("offset", 0.0, ["left", "right"]),
    "speed": ("tempo", 1.025, ["slow", "fast"]),
    "size": ("zoom", 1.0, ["small", "large"]),
}
#: the tasks of single frames (a frame shows no tempo)
IMAGE_TASKS = ("position", "size")
#: synthetic_cues: a clip's place, tempo and zoom vary around the actor's own by this share of synthetic's spread
CUES_JITTER = 0.35

SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.89, 0.67, 0.52], [0.78, 0.57, 0.42], [0.62, 0.43, 0.30], [0.45, 0.30, 0.20], [0.30, 0.20, 0.13]]
)


def _actor_params(rng: np.random.Generator, num_actors: int) -> list[dict]:
    actors = []
    # spread the clothing luminance so that greyscale alone does not erase identity
    lum = rng.permutation(np.linspace(0.15, 0.9, num_actors))
    for a in range(num_actors):
        hue = rng.uniform(0, 1)
        shirt = _hsv_to_rgb(hue, rng.uniform(0.4, 0.9), lum[a])
        pants = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.7), rng.uniform(0.1, 0.6))
        sessions = []
        for _ in range(2):
            sessions.append(
                {
                    "top": _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.95)),
                    "bottom": _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.8)),
                    "blocks": [
                        (rng.uniform(0, 0.8), rng.uniform(0.05, 0.6), rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.4),
                         _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.9)))
                        for _ in range(int(rng.integers(1, 3)))
                    ],
                }
            )
        actors.append(
            {
                "shirt": shirt,
                "pants": pants,
                "skin": SKIN_TONES[a % len(SKIN_TONES)] * rng.uniform(0.93, 1.07),
                "stripe_freq": rng.uniform(0.25, 0.8),
                "stripe_angle": rng.uniform(0, math.pi),
                "stripe_contrast": rng.uniform(0.0, 0.35),
                "height": rng.uniform(0.94, 1.06),
                "girth": rng.uniform(0.8, 1.35),
                "amplitude": rng.uniform(0.96, 1.04),
                "sessions": sessions,
            }
        )
    return actors


def _cue_actors(rng: np.random.Generator, num_actors: int) -> list[dict]:
    """Actors of ``synthetic_cues``: one shared appearance (clothes, skin, stripes) and two shared
    rooms; each actor has its own build, tempo, place in the frame and distance to the camera."""
    sessions = [
        {
            "top": _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.95)),
            "bottom": _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.8)),
            "blocks": [
                (rng.uniform(0, 0.8), rng.uniform(0.05, 0.6), rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.4),
                 _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.9)))
                for _ in range(2)
            ],
        }
        for _ in range(2)
    ]
    look = {
        "shirt": _hsv_to_rgb(rng.uniform(0, 1), 0.6, 0.5),
        "pants": _hsv_to_rgb(rng.uniform(0, 1), 0.4, 0.3),
        "skin": SKIN_TONES[1],
        "stripe_freq": 0.5,
        "stripe_angle": 0.0,
        "stripe_contrast": 0.15,
    }
    place = rng.permutation(np.linspace(-0.12, 0.12, num_actors))
    tempo = rng.permutation(np.linspace(0.85, 1.2, num_actors))
    zoom = rng.permutation(np.linspace(0.9, 1.1, num_actors))
    height = rng.permutation(np.linspace(0.9, 1.1, num_actors))
    girth = rng.permutation(np.linspace(0.8, 1.35, num_actors))
    return [
        {**look, "sessions": sessions, "height": float(height[a]), "girth": float(girth[a]), "amplitude": 1.0,
         "place": float(place[a]), "tempo": float(tempo[a]), "zoom": float(zoom[a]), "jitter": CUES_JITTER}
        for a in range(num_actors)
    ]


def _own(actor: dict, key: str, drawn: float, median: float) -> float:
    """A clip parameter: as drawn, or (``synthetic_cues``) the actor's own value plus the draw's
    deviation from its median shrunk by the actor's ``jitter``."""
    if key not in actor:
        return drawn
    return actor[key] + actor["jitter"] * (drawn - median)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _pose(action: str, ph: np.ndarray, amp: float) -> dict[str, np.ndarray]:
    """Joint angles (radians, 0 = pointing down) and body offsets for phases ``ph`` (in turns)."""
    s = np.sin(2 * np.pi * ph)
    z = np.zeros_like(ph)
    pose = {
        "l_sh": z + 0.15, "l_el": z + 0.05, "r_sh": z - 0.15, "r_el": z - 0.05,
        "l_hip": z + 0.08, "l_knee": z, "r_hip": z - 0.08, "r_knee": z,
        "bend": z, "dy": z, "dx": z,
    }
    if action == "wave1":
        pose["r_sh"] = -(2.3 + 0.35 * amp * s)
        pose["r_el"] = pose["r_sh"] - 0.6 * amp * s
    elif action == "wave2":
        pose["r_sh"] = -(2.3 + 0.35 * amp * s)
        pose["r_el"] = pose["r_sh"] - 0.6 * amp * s
        pose["l_sh"] = 2.3 + 0.35 * amp * s
        pose["l_el"] = pose["l_sh"] + 0.6 * amp * s
    elif action == "jump":
        h = np.abs(s)
        pose["dy"] = -0.12 * amp * h
        pose["l_knee"] = z - 0.5 * (1 - h)
        pose["r_knee"] = z - 0.5 * (1 - h)
        pose["l_hip"] = 0.08 + 0.4 * (1 - h)
        pose["r_hip"] = -0.08 + 0.4 * (1 - h)
    elif action == "bend":
        b = 0.5 * (1 - np.cos(2 * np.pi * ph))
        pose["bend"] = 1.3 * amp * b
        pose["l_sh"] = 0.15 + 1.2 * b
        pose["r_sh"] = -0.15 + 1.2 * b
        pose["l_el"], pose["r_el"] = pose["l_sh"], pose["r_sh"]
    elif action == "walk":
        pose["l_hip"] = 0.45 * amp * s
        pose["r_hip"] = -0.45 * amp * s
        pose["l_knee"] = pose["l_hip"] - 0.3 * np.clip(-s, 0, 1)
        pose["r_knee"] = pose["r_hip"] - 0.3 * np.clip(s, 0, 1)
        pose["l_sh"] = -0.4 * amp * s
        pose["r_sh"] = 0.4 * amp * s
        pose["l_el"], pose["r_el"] = pose["l_sh"] - 0.2, pose["r_sh"] - 0.2
        pose["dx"] = 0.25 * (ph - ph.mean())
    elif action == "jack":
        o = 0.5 * (1 - np.cos(2 * np.pi * ph))
        pose["l_sh"] = 0.15 + 2.6 * amp * o
        pose["r_sh"] = -(0.15 + 2.6 * amp * o)
        pose["l_el"], pose["r_el"] = pose["l_sh"] + 0.2 * o, pose["r_sh"] - 0.2 * o
        pose["l_hip"] = 0.08 + 0.35 * o
        pose["r_hip"] = -(0.08 + 0.35 * o)
        pose["l_knee"], pose["r_knee"] = pose["l_hip"], pose["r_hip"]
    else:
        raise ConfigError(f"unknown synthetic action {action!r}; valid: {', '.join(ACTIONS)}")
    return pose


def _seg_alpha(px, py, ax, ay, bx, by, thick):
    """Anti-aliased coverage of segments (per frame, broadcast [T,1,1]) over pixel grids."""
    dx, dy = bx - ax, by - ay
    L2 = dx * dx + dy * dy + 1e-9
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / L2, 0.0, 1.0)
    d = np.sqrt((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2)
    return np.clip(thick / 2 - d + 0.5, 0.0, 1.0)


def _direction(angle):
    # angle 0 points down (+y); positive angles swing towards +x (the figure's left on screen)
    return np.sin(angle), np.cos(angle)


def render_clip(actor: dict, action: str, *, size: int, frames: int, rng: np.random.Generator, phase=None,
                info: dict | None = None) -> np.ndarray:
    """Render one clip as float32 ``[T, H, W, 3]`` in [0, 1].

    ``info``, when given, receives the clip's drawn parameters: ``offset`` (the figure's horizontal
    place, a share of the frame width from its centre), ``tempo`` (the speed factor; 1.6 cycles per
    clip times it) and ``zoom`` (the per-clip scale). Passing it changes nothing that is drawn.
    """
    S = size
    sess = actor["sessions"][int(rng.integers(0, len(actor["sessions"])))]
    # ------------------------------------------------------------- background
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    g = (yy / S)[..., None]
    bg = (1 - g) * sess["top"] + g * sess["bottom"]
    for bx, by, bw, bh, col in sess["blocks"]:
        m = (xx / S >= bx) & (xx / S < bx + bw) & (yy / S >= by) & (yy / S < by + bh)
        bg[m] = col
    # ------------------------------------------------------------- motion
    tempo = _own(actor, "tempo", rng.uniform(0.8, 1.25), 1.025)
    speed = tempo * (1.0 / frames) * 1.6  # about 1.6 cycles per clip
    ph0 = rng.uniform(0, 1) if phase is None else phase
    ph = ph0 + speed * np.arange(frames) if phase is None else np.full(frames, phase)
    pose = _pose(action, ph, actor["amplitude"])
    scale = _own(actor, "zoom", rng.uniform(0.88, 1.12), 1.0)  # per-clip scale jitter exceeds the actors' height spread
    H = 0.62 * S * actor["height"] * scale
    offset = _own(actor, "place", rng.uniform(-0.15, 0.15), 0.0)
    cx = S * (0.5 + offset) + pose["dx"] * S
    if info is not None:
        info.update(offset=float(offset), tempo=float(tempo), zoom=float(scale))
    hip_y = S * 0.5 + 0.12 * H + rng.uniform(-0.05, 0.05) * S + pose["dy"] * H
    T = frames
    r = lambda v: np.asarray(v, dtype=np.float32).reshape(T, 1, 1)  # noqa: E731
    # torso leans by "bend" around the hip
    tx, ty = np.sin(np.pi - pose["bend"]) * 0.0 + np.sin(pose["bend"]) * 1.0, -np.cos(pose["bend"])
    neck_x, neck_y = cx + 0.33 * H * tx, hip_y + 0.33 * H * ty
    head_x, head_y = neck_x + 0.1 * H * tx, neck_y + 0.1 * H * ty
    sh_x, sh_y = neck_x - 0.02 * H * tx, neck_y - 0.02 * H * ty
    limbs = []
    for side in ("l", "r"):
        ux, uy = _direction(pose[f"{side}_sh"])
        ex, ey = sh_x + 0.17 * H * ux, sh_y + 0.17 * H * uy
        fx, fy = _direction(pose[f"{side}_el"])
        hx, hy = ex + 0.16 * H * fx, ey + 0.16 * H * fy
        limbs.append(("shirt", sh_x, sh_y, ex, ey))
        limbs.append(("skin", ex, ey, hx, hy))
    legs = []
    for side in ("l", "r"):
        ux, uy = _direction(pose[f"{side}_hip"])
        kx, ky = cx + 0.22 * H * ux, hip_y + 0.22 * H * uy
        fx, fy = _direction(pose[f"{side}_knee"])
        ax_, ay_ = kx + 0.22 * H * fx, ky + 0.22 * H * fy
        legs.append(("pants", cx, hip_y, kx, ky))
        legs.append(("pants", kx, ky, ax_, ay_))
    limb_w = max(1.0, 0.055 * H * actor["girth"])
    torso_w = 0.15 * H * actor["girth"]
    img = np.broadcast_to(bg, (T, S, S, 3)).copy()
    px, py = xx[None], yy[None]
    # shirt texture: stripes in image coordinates
    th = actor["stripe_angle"]
    stripes = 1 + actor["stripe_contrast"] * np.sign(np.sin(2 * np.pi * actor["stripe_freq"] * (xx * np.cos(th) + yy * np.sin(th))))
    colours = {
        "shirt": np.clip(actor["shirt"][None, None, :] * stripes[..., None], 0, 1)[None],
        "skin": np.asarray(actor["skin"])[None, None, None, :],
        "pants": np.asarray(actor["pants"])[None, None, None, :],
    }

    def paint(part, ax_, ay_, bx_, by_, w):
        a = _seg_alpha(px, py, r(ax_), r(ay_), r(bx_), r(by_), w)[..., None]
        img[:] = img * (1 - a) + colours[part] * a

    for leg in legs:
        paint(*leg, limb_w * 1.2)
    paint("shirt", cx, hip_y, neck_x, neck_y, torso_w)
    for limb in limbs:
        paint(*limb, limb_w)
    # head: a disc of skin
    d = np.sqrt((px - r(head_x)) ** 2 + (py - r(head_y)) ** 2)
    a = np.clip(0.1 * H - d + 0.5, 0, 1)[..., None]
    img[:] = img * (1 - a) + colours["skin"] * a
    # ------------------------------------------------------------- camera
    gain = rng.uniform(0.8, 1.2)
    bias = rng.uniform(-0.06, 0.06)
    img = img * gain + bias + rng.normal(0, 0.03, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def generate(
    *,
    num_actors: int = 10,
    clips_per_pair: int = 10,
    size: int = 32,
    frames: int = 16,
    actions: list[str] | None = None,
    seed: int = 0,
    image: bool = False,
    cues: bool = False,
) -> dict:
    """Generate the whole dataset in memory.

    ``cues``: the actors of ``synthetic_cues`` (shared clothes and rooms; identity in build, tempo,
    place and distance; module docstring).

    Returns a dict with ``inputs`` uint8 ``[N,3,T,H,W]`` (``[N,3,H,W]`` when ``image``), ``utility``,
    ``private``, ``ids``, ``actions``, ``actors``, ``params`` (each clip's drawn ``offset``, ``tempo``
    and ``zoom``, float ``[N]``), ``tasks`` (task name -> labels ``[N]``, :data:`TASKS`) and
    ``task_classes`` (task name -> class names).
    """
    actions = list(actions or ACTIONS)
    if num_actors < 2 or clips_per_pair < 1 or size < 8 or frames < 1:
        raise ConfigError("synthetic data needs num_actors >= 2, clips_per_pair >= 1, size >= 8, clip_len >= 1")
    rng = np.random.default_rng(seed)
    actors = _cue_actors(rng, num_actors) if cues else _actor_params(rng, num_actors)
    xs, u, p, ids = [], [], [], []
    params: dict[str, list[float]] = {"offset": [], "tempo": [], "zoom": []}
    for a, actor in enumerate(actors):
        for c, action in enumerate(actions):
            for k in range(clips_per_pair):
                crng = np.random.default_rng([seed, a, c, k])
                info: dict = {}
                if image:
                    peak = {"wave1": 0.25, "wave2": 0.25, "jump": 0.25, "bend": 0.5, "walk": 0.25, "jack": 0.5}[action]
                    clip = render_clip(actor, action, size=size, frames=1, rng=crng, phase=peak + crng.uniform(-0.04, 0.04),
                                       info=info)[0]
                    xs.append(np.transpose(clip, (2, 0, 1)))
                else:
                    clip = render_clip(actor, action, size=size, frames=frames, rng=crng, info=info)
                    xs.append(np.transpose(clip, (3, 0, 1, 2)))
                for key in params:
                    params[key].append(info[key])
                u.append(c)
                p.append(a)
                ids.append(f"actor{a}_{action}_{k}")
    inputs = torch.from_numpy((np.stack(xs) * 255 + 0.5).astype(np.uint8))
    values = {k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}
    names = IMAGE_TASKS if image else tuple(TASKS)
    return {
        "inputs": inputs,
        "utility": torch.tensor(u),
        "private": torch.tensor(p),
        "ids": ids,
        "actions": actions,
        "actors": [f"actor{a}" for a in range(num_actors)],
        "params": values,
        "tasks": {t: (values[TASKS[t][0]] >= TASKS[t][1]).long() for t in names},
        "task_classes": {t: list(TASKS[t][2]) for t in names},
    }


def _make(data_cfg, seed: int, image: bool, cues: bool = False) -> Splits:
    params = dict(data_cfg.params or {})
    data_seed = params.pop("seed", 0)
    test_fraction = params.pop("test_fraction", 0.3)
    try:
        d = generate(size=data_cfg.size, frames=data_cfg.clip_len, seed=data_seed, image=image, cues=cues, **params)
    except TypeError as e:
        raise ConfigError(
            f"data.params: {e}; valid keys: num_actors, clips_per_pair, actions, seed, test_fraction"
        ) from None
    full = TensorSampleDataset(d["inputs"], d["utility"], d["private"], d["ids"], tasks=d["tasks"])
    keys = list(zip(d["utility"].tolist(), d["private"].tolist()))
    vf = data_cfg.val_fraction
    train_idx, val_idx, test_idx = stratified_split(keys, [1 - test_fraction - vf, vf, test_fraction], seed=data_seed)
    return Splits(
        train=full.subset(train_idx),
        val=full.subset(val_idx),
        test=full.subset(test_idx),
        utility_classes=d["actions"] if not image else [f"pose_{a}" for a in d["actions"]],
        private_classes=d["actors"],
        kind="image" if image else "video",
        name="synthetic_image" if image else ("synthetic_cues" if cues else "synthetic"),
        tasks=d["task_classes"],
    )


@register_dataset("synthetic")
def synthetic(data_cfg, seed: int = 0) -> Splits:
    """Embedded "actors and actions" clips; tasks: position, speed, size (see module docstring)."""
    return _make(data_cfg, seed, image=False)


@register_dataset("synthetic_image")
def synthetic_image(data_cfg, seed: int = 0) -> Splits:
    """Single frames of the embedded data: utility = posture, private = actor; tasks: position, size."""
    return _make(data_cfg, seed, image=True)


@register_dataset("synthetic_cues")
def synthetic_cues(data_cfg, seed: int = 0) -> Splits:
    """Embedded clips whose actors share clothes and rooms and differ by build, tempo, place and distance; tasks as synthetic."""
    return _make(data_cfg, seed, image=False, cues=True)
