"""Substitution releases (PASS, Chen et al., ICML 2025, carried to video): what leaves the camera is not a
transform of the input but a real clip drawn from a **bank** of other clips.

The camera embeds its clip with a small network ``f`` that works at a low internal resolution, compares the
embedding with one learnable embedding ``e_j`` per bank clip, and draws the substitute from
``softmax(cos(f(x), e_j) / tau)``. Every release is a fresh draw (Gumbel-max with the encoder's own
generator, so the audit's probing views draw anew and an ONNX export keeps the draw); ``tau = 0`` picks the
most similar bank clip. The release is the bank clip itself (``emit="clip"``), or its index for a cloud that
holds the bank (``emit="index"``).

The module is a player like any other: it takes tensors and knows nothing of the game. The game reads
:meth:`SubstituteEncoder.bank_logits` to play with expected losses over the softmax (see
:mod:`privacam.game.substitution`), so training stays differentiable and the gradient reaches the bank
embeddings.

The bank is filled once from data (:meth:`SubstituteEncoder.set_bank`): by default the training split's
clips, which the audit's attacker already holds, so the bank adds nothing to its knowledge. In deployment
the bank should hold consented or synthetic people (``data.bank``): every clip in it is shown to whoever
receives the release.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_encoder
from .common import Encoder, luminance


def block_mean(g: torch.Tensor, size: int) -> torch.Tensor:
    """Clips ``[B, C, T, H, W]`` averaged over blocks to ``[B, C, T, size, size]``.

    The frame is cropped to a multiple of ``size`` first, so any input size works (an ONNX export keeps the
    shape arithmetic dynamic); a frame smaller than ``size`` is repeated up to it (nearest neighbour)."""
    h, w = g.shape[-2], g.shape[-1]
    if h < size or w < size:
        g = F.interpolate(g, size=(g.shape[2], max(h, size), max(w, size)), mode="nearest")
        h, w = g.shape[-2], g.shape[-1]
    kh, kw = h // size, w // size
    g = g[..., : kh * size, : kw * size]
    b, c, t = g.shape[0], g.shape[1], g.shape[2]
    return g.reshape(b, c, t, size, kh, size, kw).mean(dim=6).mean(dim=4)


def motion_geometry(g: torch.Tensor) -> torch.Tensor:
    """Where and how spread out the motion of grey clips ``[B, 1, T, h, w]`` is: ``[B, 4]`` = centroid
    ``(x, y)`` and spread ``(sx, sy)`` of the motion energy above its median (the static background and
    sensor noise count for nothing), in frame units ``[0, 1]``. A clip without motion gets the frame's centre
    and a spread of 0.25."""
    if g.shape[2] < 2:
        e = torch.zeros_like(g[:, 0, 0])
    else:
        e = (g[:, 0, 1:] - g[:, 0, :-1]).abs().mean(dim=1)  # [B, h, w]
    b, h, w = e.shape
    flat = e.flatten(1)
    median = torch.topk(flat, flat.shape[1] // 2 + 1, dim=1).values[:, -1]  # TopK exports to ONNX; median does not
    e = torch.relu(e - median.reshape(b, 1, 1))
    mass = e.sum(dim=(1, 2))
    ys = (torch.arange(h, dtype=e.dtype, device=e.device) + 0.5) / h
    xs = (torch.arange(w, dtype=e.dtype, device=e.device) + 0.5) / w
    col, row = e.sum(1), e.sum(2)  # [B, w], [B, h]
    m = mass.clamp_min(1e-6)
    cx, cy = (col * xs).sum(1) / m, (row * ys).sum(1) / m
    sx = ((col * (xs - cx[:, None]) ** 2).sum(1) / m).sqrt()
    sy = ((row * (ys - cy[:, None]) ** 2).sum(1) / m).sqrt()
    moving = mass > 1e-4 * h * w
    half, quarter = torch.full_like(cx, 0.5), torch.full_like(cx, 0.25)
    return torch.stack([torch.where(moving, cx, half), torch.where(moving, cy, half),
                        torch.where(moving, sx.clamp_min(0.02), quarter), torch.where(moving, sy.clamp_min(0.02), quarter)], 1)


def place(clips: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, max_scale: float = 2.0) -> torch.Tensor:
    """Move and resize clips ``[B, C, T, H, W]`` so that their motion geometry ``src`` (``[B, 4]``, see
    :func:`motion_geometry`) lands on ``dst``: every output pixel takes the nearest source pixel (no value is
    made up), the frame's edge repeats where the source runs out. The scale is the ratio of the spreads,
    capped to ``[1 / max_scale, max_scale]``."""
    b, c, t, h, w = clips.shape
    scale = (src[:, 2:] / dst[:, 2:].clamp_min(1e-3)).clamp(1 / max_scale, max_scale)  # source units per output unit
    u = (torch.arange(w, dtype=src.dtype, device=src.device) + 0.5) / w
    v = (torch.arange(h, dtype=src.dtype, device=src.device) + 0.5) / h
    sx = src[:, :1] + (u[None] - dst[:, :1]) * scale[:, :1]  # [B, w]
    sy = src[:, 1:2] + (v[None] - dst[:, 1:2]) * scale[:, 1:2]  # [B, h]
    ix = (sx * w).floor().clamp(0, w - 1).long()
    iy = (sy * h).floor().clamp(0, h - 1).long()
    out = torch.gather(clips, 4, ix[:, None, None, None, :].expand(b, c, t, h, w))
    return torch.gather(out, 3, iy[:, None, None, :, None].expand(b, c, t, h, w))


#: the lags of the embedding's lag profile (frames)
LAGS = 15


def lag_profile(g: torch.Tensor, lags: int = LAGS) -> torch.Tensor:
    """How grey clips ``[B, 1, T, h, w]`` differ from themselves ``l`` frames later, ``l = 1 .. lags``: the mean
    absolute difference, divided by its mean over the lags (``[B, lags]``). A repeated movement comes back to
    itself one period later, so the profile dips there: the tempo. The lags are fixed (no branch on the clip's
    length, so an ONNX export computes the same at any length); a lag the clip is too short for counts 0."""
    prof = torch.stack([(g[:, :, lag:] - g[:, :, :-lag]).abs().mean(dim=(1, 2, 3, 4)) for lag in range(1, lags + 1)], 1)
    prof = torch.nan_to_num(prof, nan=0.0)  # the mean of no pair of frames
    return prof / prof.mean(1, keepdim=True).clamp_min(1e-6)


#: the descriptor's first numbers say where the clip moves (a WHERE_GRID x WHERE_GRID layout)
WHERE_GRID = 4
WHERE = WHERE_GRID * WHERE_GRID


def clip_descriptor(g: torch.Tensor, lags: int = LAGS) -> torch.Tensor:
    """A frozen, generic description of what happens in grey clips ``[B, 1, T, h, w]`` (the encoder's internal
    resolution, ``h`` and ``w`` multiples of 4): ``[B, 20 + lags]``.

    Only changes of the grey level enter, above each frame's median change (no colour, texture, background level,
    sensor noise or flicker): *where* things move (the motion energy ``mean_t |g_t - g_{t-1}|`` on a 4 x 4
    layout, normalised to sum to one: the first :data:`WHERE` numbers), *how much* (the log of the total motion
    energy), *how big* (the spread of the motion across and down the frame), *how steadily* (the mean change of
    the motion from one frame to the next, relative to its level) and *how it moves over time* (:func:`lag_profile`:
    the tempo, whatever the phase). Trained on nothing; computed on the camera (it exports to ONNX).
    """
    if g.shape[2] < 2:
        g = torch.cat([g, g], dim=2)  # a single frame: no motion
    d = (g[:, :, 1:] - g[:, :, :-1]).abs()
    b, _, t, h, w = d.shape
    flat = d.flatten(3)
    median = torch.topk(flat, flat.shape[3] // 2 + 1, dim=3).values[..., -1:]  # TopK exports to ONNX; median does not
    d = torch.relu(flat - median).reshape(d.shape)
    energy = d.mean(dim=2)  # [B, 1, h, w]
    where = block_mean(energy.unsqueeze(2), WHERE_GRID).flatten(1)
    where = where / where.sum(1, keepdim=True).clamp_min(1e-6)
    amount = torch.log(energy.flatten(1).mean(1, keepdim=True) + 1e-4)
    spread = motion_geometry(g)[:, 2:]
    per_t = d.mean(dim=(1, 3, 4))  # [B, T-1]: motion per frame pair
    level = per_t.mean(1, keepdim=True).clamp_min(1e-6)
    steady = torch.nan_to_num((per_t[:, 1:] - per_t[:, :-1]).abs().mean(1, keepdim=True), nan=0.0) / level
    return torch.cat([where, amount, spread, steady, lag_profile(g, lags)], dim=1)


def identifies(values: torch.Tensor, person: torch.Tensor, task: torch.Tensor, level: float) -> torch.Tensor:
    """Which columns of ``values`` ``[N, D]`` tell the people of a bank apart beyond its task labels: a one-way
    analysis of variance by person within each task label, pooled over the labels; ``True`` where the F test
    rejects "the person makes no difference" at significance ``level`` (``[D]`` booleans)."""
    from scipy.stats import f as f_dist

    v = values.double()
    ssb = torch.zeros(v.shape[1], dtype=torch.float64)
    ssw = torch.zeros_like(ssb)
    df_b = df_w = 0
    for a in torch.unique(task):
        m = task == a
        va, pa = v[m], person[m]
        mean = va.mean(0)
        people = torch.unique(pa)
        for q in people:
            vq = va[pa == q]
            ssb += len(vq) * (vq.mean(0) - mean) ** 2
            ssw += ((vq - vq.mean(0)) ** 2).sum(0)
        df_b += len(people) - 1
        df_w += len(va) - len(people)
    if df_b < 1 or df_w < 1:
        return torch.ones(v.shape[1], dtype=torch.bool)  # no way to tell: assume it identifies
    stat = (ssb / df_b) / (ssw / df_w).clamp_min(1e-12)
    return torch.as_tensor(f_dist.sf(stat.numpy(), df_b, df_w) < level)


class SubstituteEncoder(Encoder):
    """f_d that releases a substitute: a bank clip drawn from ``softmax(cos(f(x), e_j) / tau)``.

    ``f`` sees the grey clip averaged down to ``internal x internal`` and its signed and absolute frame
    differences (``[g, 4 d, 4 |d|]``), two strided 3D convolutions, the mean over time (the spatial layout is
    kept: no global pooling, so where things happen can steer the choice), beside the clip's lag profile
    (:func:`lag_profile`: its tempo) and motion geometry (:func:`motion_geometry`: where and how big), and a
    linear map to ``dim`` numbers.
    The bank embeddings ``e_j`` start at ``f`` of their clips, so the untrained encoder picks the bank clip
    most like its input under a random ``f``.

    Args:
        clip_len: frames of a bank clip (filled in from the data).
        tau: softmax temperature (``0``: the most similar clip, no draw).
        dim: embedding size; width: channels of ``f``'s first convolution; internal: ``f``'s input resolution.
        emit: ``clip`` (the bank clip leaves) or ``index`` (only its index leaves; the cloud holds the bank).
        match: ``0`` (PASS), or how much the draw prefers bank clips whose generic description
            (:func:`clip_descriptor`: where, how much, how big and at what tempo things move) is near the input's:
            the logits become ``(cos(f(x), e_j) - match * dist_j) / tau``, ``dist_j`` the mean squared difference
            of the descriptors standardised over the bank (without *where* when ``place`` moves the substitute).
            A cloud model then still learns what the clip says beyond its label; what that says of who acts is
            measured by the audit.
        guard: ``0`` (off), or a significance level (e.g. 0.05): ``place`` and ``match`` carry over only what does
            not tell the bank's people apart. When the bank is filled, every number of the description and each
            axis of the motion's place are tested (:func:`identifies`: by person, within each task label); a number
            that identifies people is left out of ``match``, an axis that does is left where the substitute has it.
            Where the place or the tempo is random from clip to clip (the embedded data) it is carried over; where
            it is a person's own (people standing in their own spots) it is not.
        stratify: draw the person first, uniformly over the bank's people, then the clip among that person's
            clips by the softmax (``p(j | x) = softmax_{i in person(j)}(cos(f(x), e_i) / tau)_j / people``): who
            the substitute shows is then independent of the input by construction, and the game shapes only
            which of each person's clips is drawn. ``False`` is PASS's single softmax over the whole bank.
        place: ``0`` (off), or ``g >= 2``: move the substitute so that the centre of its motion sits in the
            cell of a ``g x g`` grid where the input's motion is (:func:`motion_geometry` at the internal
            resolution, :func:`place`; the substitute keeps its own size). The release then says where the action
            happens, to a ``1/g`` of the frame and no finer; what that says of who acts is measured by the audit.
        seed: seed of the release's draws (reseeded by the audit per probing view).
    """

    releases = "image"

    def __init__(self, in_channels: int = 3, grey: bool = False, clip_len: int = 16, tau: float = 0.05, dim: int = 32,
                 width: int = 8, internal: int = 16, emit: str = "clip", stratify: bool = False, place: int = 0,
                 match: float = 0.0, guard: float = 0.0, seed: int = 0):
        super().__init__(in_channels, grey)
        if not tau >= 0 or dim < 1 or width < 1 or internal < 4 or internal % 4 or emit not in ("clip", "index") \
                or not match >= 0:
            raise ConfigError(f"encoder.params: substitute needs tau >= 0, dim >= 1, width >= 1, internal a multiple of 4, "
                              f"match >= 0 and emit clip or index (got tau={tau}, dim={dim}, width={width}, "
                              f"internal={internal}, match={match}, emit={emit!r})")
        self.match = float(match)
        if not 0.0 <= guard < 1.0:
            raise ConfigError(f"encoder.params.guard={guard!r}: 0 (off) or a significance level below 1, e.g. 0.05")
        self.guard = float(guard)
        self.tau, self.dim, self.internal, self.emit = float(tau), int(dim), int(internal), emit
        if isinstance(place, bool) or int(place) < 0 or int(place) == 1:
            raise ConfigError(f"encoder.params.place={place!r}: 0 (off) or the cells per side of the grid the "
                              f"substitute's motion is moved to (>= 2, e.g. 4)")
        self.stratify, self.place = bool(stratify), int(place)
        self.clip_len = int(clip_len)
        self.out_channels = 1 if grey else in_channels
        w = int(width)
        self.net = nn.Sequential(
            nn.Conv3d(3, w, 3, (1, 2, 2), 1), nn.ReLU(inplace=True),
            nn.Conv3d(w, 2 * w, 3, 2, 1), nn.ReLU(inplace=True),
        )
        cells = math.ceil(math.ceil(self.internal / 2) / 2)
        self.lags = max(1, min(LAGS, self.clip_len - 1))
        self.head = nn.Linear(2 * w * cells * cells + self.lags + 4, self.dim)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("bank", torch.zeros(0, self.out_channels, max(1, self.clip_len), 1, 1, dtype=torch.uint8))
        self.register_buffer("bank_utility", torch.zeros(0, dtype=torch.long))
        self.register_buffer("bank_private", torch.zeros(0, dtype=torch.long))
        self.register_buffer("bank_descriptor", torch.zeros(0, 1))  # standardised over the bank
        self.register_buffer("descriptor_stats", torch.zeros(2, 1))  # the bank's mean and std of each number
        self.register_buffer("strata", torch.zeros(0, 0))  # [people, N]: 0 where clip j shows person s, else -1e9
        self.register_buffer("bank_geometry", torch.zeros(0, 4))  # motion geometry of every bank clip
        # 1 where a descriptor number (carry) / an axis of the motion's place (carry_place) may be carried over
        self.register_buffer("carry", torch.ones(0))
        self.register_buffer("carry_place", torch.ones(2))
        self.bank_embed = nn.Parameter(torch.zeros(0, self.dim))

    # ------------------------------------------------------------------ the bank
    @property
    def bank_size(self) -> int:
        return int(self.bank.shape[0])

    @torch.no_grad()
    def set_bank(self, clips: torch.Tensor, utility: torch.Tensor, private: torch.Tensor) -> None:
        """Fill the bank: uint8 clips ``[N, C, T, H, W]`` with their utility and private labels. The bank
        embeddings start at ``f`` of the clips; the generic descriptors are computed once."""
        if clips.dtype == torch.uint8 and clips.dim() == 4:  # images: one-frame clips
            clips = clips.unsqueeze(2)
        if clips.dtype != torch.uint8 or clips.dim() != 5 or len(clips) < 2:
            raise ConfigError(f"a substitute bank needs at least 2 uint8 clips [N, C, T, H, W] or images [N, C, H, W] (got "
                              f"{tuple(clips.shape)} {clips.dtype})")
        if self.grey and clips.shape[1] != 1:
            clips = (luminance(clips.float()) + 0.5).clamp(0, 255).to(torch.uint8)
        self.bank = clips.contiguous()
        self.bank_utility = utility.long().clone()
        self.bank_private = private.long().clone()
        feats, descs, geoms = [], [], []
        for s in range(0, len(clips), 64):
            c = clips[s:s + 64].float() / 255.0
            g = self._grey_small(c)
            feats.append(self.embed(c))
            descs.append(clip_descriptor(g, self.lags))
            geoms.append(motion_geometry(g))
        self.bank_embed = nn.Parameter(torch.cat(feats))
        desc = torch.cat(descs)
        self.descriptor_stats = torch.stack([desc.mean(0), desc.std(0).clamp_min(1e-2)])  # no number weighs more for barely varying
        self.bank_descriptor = (desc - self.descriptor_stats[0]) / self.descriptor_stats[1]
        self.bank_geometry = torch.cat(geoms)
        self.carry = torch.ones(desc.shape[1])
        self.carry_place = torch.ones(2)
        if self.guard > 0:
            self.carry = (~identifies(desc, self.bank_private, self.bank_utility, self.guard)).float()
            self.carry_place = (~identifies(self.bank_geometry[:, :2], self.bank_private, self.bank_utility, self.guard)).float()
        people = torch.unique(self.bank_private)
        self.strata = torch.where(self.bank_private[None, :] == people[:, None], 0.0, -1e9)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a trained encoder's bank has the size its data gave: take the shapes from the checkpoint
        for name in ("bank", "bank_utility", "bank_private", "bank_descriptor", "strata", "bank_geometry", "descriptor_stats",
                     "carry", "carry_place"):
            t = state_dict.get(prefix + name)
            if t is not None and t.shape != getattr(self, name).shape:
                setattr(self, name, torch.zeros(t.shape, dtype=t.dtype))
        t = state_dict.get(prefix + "bank_embed")
        if t is not None and t.shape != self.bank_embed.shape:
            self.bank_embed = nn.Parameter(torch.zeros(t.shape, dtype=t.dtype), requires_grad=self.bank_embed.requires_grad)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ the camera
    def _grey_small(self, x: torch.Tensor) -> torch.Tensor:
        """The grey clip at the internal resolution ``[B, 1, T, internal, internal]`` (averaged down first, then
        made grey: the same numbers, both being linear, at a fraction of the cost on a large frame)."""
        if x.dim() == 4:
            x = x.unsqueeze(2)
        return luminance(block_mean(x, self.internal))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)``: unit-length embeddings ``[B, dim]`` of clips ``[B, C, T, H, W]`` (images: one-frame clips)."""
        g = self._grey_small(x)
        if g.shape[2] >= 2:
            d = g[:, :, 1:] - g[:, :, :-1]
            d = torch.cat([d[:, :, :1], d], dim=2)
        else:
            d = torch.zeros_like(g)
        h = self.net(torch.cat([g, 4 * d, 4 * d.abs()], dim=1)).mean(dim=2).flatten(1)
        # how it moves over time and where and how big: a receptive field the two convolutions do not have
        h = torch.cat([h, lag_profile(g, self.lags), motion_geometry(g)], dim=1)
        return F.normalize(self.head(h), dim=1)

    def descriptor_distance(self, x: torch.Tensor) -> torch.Tensor:
        """The mean squared difference of the standardised descriptors of each input and each bank clip ``[B, N]``
        (without *where* when ``place`` moves the substitute to the input's place)."""
        w = self.carry.clone()
        if self.place:
            w[:WHERE] = 0.0
        d = (clip_descriptor(self._grey_small(x), self.lags) - self.descriptor_stats[0]) / self.descriptor_stats[1]
        a, b = d * w.sqrt(), self.bank_descriptor * w.sqrt()
        return ((a * a).sum(1, keepdim=True) - 2 * a @ b.t() + (b * b).sum(1)[None]).clamp_min(0) / w.sum().clamp_min(1)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """``cos(f(x), e_j) - match * dist_j`` for every bank clip: ``[B, N]`` (the logits before the temperature)."""
        if self.bank_size < 2:
            raise ConfigError("the substitute encoder has no bank: it is filled from the training data when the game "
                              "is built (privacam train), or loaded with a trained run's encoder.pt")
        s = self.embed(x) @ F.normalize(self.bank_embed, dim=1).t()
        if self.match > 0:
            s = s - self.match * self.descriptor_distance(x)
        return s

    def bank_logits(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` divided by ``tau`` (not divided when ``tau = 0``): ``[B, N]``."""
        s = self.scores(x)
        return s / self.tau if self.tau > 0 else s

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(j | x)`` over the bank ``[B, N]`` (stratified by person when ``stratify``)."""
        s = self.bank_logits(x)
        if not self.stratify:
            return torch.log_softmax(s, dim=1)
        strata = self.strata.to(s.dtype)
        per_person = torch.logsumexp(s[:, None, :] + strata[None], dim=2)  # [B, people]
        own = torch.logsumexp(per_person[:, :, None] + strata[None], dim=1)  # [B, N]: the normaliser of j's person
        return s - own - math.log(strata.shape[0])

    @property
    def randomised(self) -> bool:
        """Every release is a fresh draw (``tau > 0``)."""
        return self.tau > 0

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        """The index of each clip's substitute ``[B]``: Gumbel-max over ``log p(j | x)`` (a fresh draw from the
        encoder's generator; a RandomUniformLike op in an ONNX export), the most likely clip when ``tau = 0``."""
        s = self.log_probs(x) if self.stratify else self.bank_logits(x)
        if self.randomised:
            if torch.onnx.is_in_onnx_export():
                u = torch.rand_like(s)
            else:
                u = torch.rand(s.shape, generator=self.generator).to(s)
            s = s - torch.log(-torch.log(u.clamp(1e-9, 1 - 1e-9)))
        return s.argmax(dim=1)

    def release(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw: the substitutes ``[B, C, T, H, W]`` in [0, 1] and their bank indices ``[B]``."""
        j = self.draw(x)
        clips = self.bank.index_select(0, j).to(x.dtype) / 255.0
        if self.place and x.dim() == 5:
            src = self.bank_geometry.index_select(0, j).to(x.dtype)
            cell = ((motion_geometry(self._grey_small(x))[:, :2] * self.place).floor().clamp(0, self.place - 1) + 0.5) / self.place
            keep = self.carry_place.to(x.dtype)  # an axis that identifies people stays where the substitute has it
            dst = keep * cell + (1 - keep) * src[:, :2]
            clips = place(clips, src, torch.cat([dst, src[:, 2:]], 1))
        return (clips.squeeze(2) if x.dim() == 4 else clips), j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.emit == "index":
            return self.draw(x)
        return self.release(x)[0]

    def deterministic(self) -> "SubstituteEncoder":
        """A copy that releases the most likely substitute, without the draw (the ONNX parity check)."""
        det = copy.deepcopy(self)
        det.tau = 0.0
        return det

    def parity_module(self) -> nn.Module:
        """What an ONNX export is checked on: every op up to the temperature, the :meth:`scores` (the draw and the
        pick of a discrete bank clip cannot be compared with a tolerance)."""
        return _Scores(self)

    def with_emit(self, emit: str) -> "SubstituteEncoder":
        """A copy that releases ``emit`` (``clip`` or ``index``), sharing nothing mutable with this one."""
        if emit not in ("clip", "index"):
            raise ConfigError(f"emit {emit!r} is not one of clip, index")
        other = copy.deepcopy(self)
        other.emit = emit
        return other


class _Scores(nn.Module):
    def __init__(self, encoder: SubstituteEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.scores(x)


def is_substitute(encoder: nn.Module) -> bool:
    """Whether ``encoder`` releases substitutes from a bank (the game then plays expected losses)."""
    return isinstance(encoder, SubstituteEncoder)


@register_encoder("substitute")
def substitute(in_channels: int = 3, grey: bool = False, clip_len: int = 16, tau: float = 0.05, dim: int = 32,
               width: int = 8, internal: int = 16, emit: str = "clip", stratify: bool = False, place: int = 0,
               match: float = 0.0, guard: float = 0.0, seed: int = 0) -> Encoder:
    """f_d that releases a real clip of a bank, drawn by a learned low-temperature softmax (see :class:`SubstituteEncoder`)."""
    return SubstituteEncoder(in_channels, grey, clip_len, tau, dim, width, internal, emit, stratify, place, match, guard,
                             seed)


__all__ = ["WHERE", "SubstituteEncoder", "block_mean", "clip_descriptor", "is_substitute", "lag_profile", "motion_geometry", "place"]
