"""Terrain for the legged template: a grid of tiles in one MuJoCo heightfield, and the curriculum over its levels.

A robot config asks for it with a ``[terrain]`` table (no table: the flat floor, as before)::

    [terrain]
    levels = 10                 # rows of tiles, from easy (0) to hard (levels - 1)
    columns = 10                # tiles per level; the kinds below share the columns by proportion
    tile_size = 8.0             # a tile's side [m]
    resolution = 0.1            # distance between height samples [m]
    border = 10.0               # flat ground around the grid [m]; robots settle and are probed in it
    platform = 2.0              # flat square at a slope's or stairs' centre, where robots start [m]
    rough_height = [0.01, 0.08] # rough: heights uniform in +-this, easiest and hardest level [m]
    slope_deg = [0.0, 25.0]     # slopes: angle [deg]
    step_height = [0.05, 0.20]  # stairs: height of a step [m]
    step_width = 0.3            # stairs: depth of a step's tread [m]
    start_level = 4             # robots start on a level drawn from 0..this (at most levels - 1)
    seed = 0                    # the random heights of rough tiles
    [terrain.kinds]             # proportions of the columns (the missing ones 0)
    flat = 0.1
    rough = 0.3
    slope_up = 0.1
    slope_down = 0.1
    stairs_up = 0.2
    stairs_down = 0.2

The layout is legged_gym's and mjlab's: levels along x, kinds along y, each tile's difficulty a linear step from
the easiest value (level 0) to the hardest (the last level; a single level is the hardest). Slopes and stairs are
square pyramids around the tile's platform with the tile's edge at height 0, so neighbouring tiles meet without a
cliff; *up* means the robot walking out from the centre climbs (the centre lies in a pit), *down* that it descends
(the centre is a peak). Rough tiles are random heights, uniform in +-rough_height, at every sample. The flat border
around the grid holds the world origin (the middle of the border strip on the grid's low-x side), where the template
settles the robot and probes its stability, so those stay what they are on a plane.

MuJoCo's heightfield is a surface through the samples (two triangles per cell): a step is a ramp one `resolution`
wide, a slope between two samples is exact. The heights the table asks are the samples (`Terrain.heights`); the test
reads them back from the compiled model and with ray casts.

Curriculum (legged_gym's): each world has a level and a column. A world starts (its first reset after seeding) on
a column drawn at random and a level drawn from ``0..start_level``. At each later reset it moves up a level if its
last episode took it farther than half a tile from where it started, and down a level if it walked less than half
the distance its commands asked (the commanded planar speed summed over the episode's steps); a robot that passes
the hardest level goes to a random one. Draws come from the world's own generator, so a world of a batch is the
single world seeded alike. A robot that walks to within `EDGE` of the heightfield's edge has its episode truncated
there (not terminated: walking far is no failure), before it would walk off into nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import mujoco
import numpy as np

from robotrl.envs.perturb import perturbation

KINDS = ("flat", "rough", "slope_up", "slope_down", "stairs_up", "stairs_down")
DEFAULT_KINDS = (("flat", 0.1), ("rough", 0.3), ("slope_up", 0.1), ("slope_down", 0.1), ("stairs_up", 0.2),
                 ("stairs_down", 0.2))
MAX_SAMPLES = 16_000_000  # 64 MB of float32 heights in the model (and in each world's copy under randomisation)
HFIELD, GEOM = "robotrl_terrain", "floor"
BASE_DEPTH = 1.0  # the heightfield's solid below its lowest point [m]
EDGE = 0.5  # an episode whose robot comes this close to the heightfield's edge is cut [m]


@dataclass(frozen=True)
class TerrainSettings:
    """The ``[terrain]`` table, checked (`from_table`: one ValueError line per mistake). See the module docstring."""

    kinds: tuple[tuple[str, float], ...] = DEFAULT_KINDS
    levels: int = 10
    columns: int = 10
    tile_size: float = 8.0
    resolution: float = 0.1
    border: float = 10.0
    platform: float = 2.0
    rough_height: tuple[float, float] = (0.01, 0.08)
    slope_deg: tuple[float, float] = (0.0, 25.0)
    step_height: tuple[float, float] = (0.05, 0.20)
    step_width: float = 0.3
    start_level: int = 4
    seed: int = 0

    @classmethod
    def from_table(cls, table: Any) -> TerrainSettings:
        """The settings of a ``[terrain]`` table; ValueError (one line naming the key) on anything wrong."""
        if not isinstance(table, dict):
            raise ValueError(f"must be a table of terrain settings, got {table!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
        kw: dict[str, Any] = {}
        if "kinds" in table:
            kw["kinds"] = _kinds(table["kinds"])
        for key, lo, hi in (("levels", 1, 100), ("columns", 1, 100), ("seed", 0, 2**32 - 1)):
            if key in table:
                kw[key] = _integer(key, table[key], lo, hi)
        for key, lo, hi, unit in (("tile_size", 0.5, 100.0, "m"), ("resolution", 0.005, 1.0, "m"),
                                  ("border", 1.0, 100.0, "m"), ("platform", 0.0, 100.0, "m"),
                                  ("step_width", 0.01, 50.0, "m")):
            if key in table:
                kw[key] = _number(key, table[key], lo, hi, unit)
        for key, hi, unit in (("rough_height", 1.0, "m"), ("slope_deg", 60.0, "deg"), ("step_height", 1.0, "m")):
            if key in table:
                kw[key] = _span(key, table[key], hi, unit)
        if "start_level" in table:
            kw["start_level"] = _integer("start_level", table["start_level"], 0, 99)
        else:  # the default, on as many levels as there are
            kw["start_level"] = min(cls.start_level, kw.get("levels", cls.levels) - 1)
        settings = cls(**kw)
        settings.check()
        return settings

    def check(self) -> None:
        """What holds between the settings (each on its own is checked by `from_table`)."""
        res, size = self.resolution, self.tile_size
        for key in ("tile_size", "border"):
            n = getattr(self, key) / res
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"{key} ({getattr(self, key):g} m) must be a whole number of resolution ({res:g} m)")
        if size / res < 4:
            raise ValueError(f"tile_size ({size:g} m) must span at least 4 samples of resolution ({res:g} m)")
        if self.platform > size:
            raise ValueError(f"platform ({self.platform:g} m) must fit in a tile (tile_size {size:g} m)")
        if self.step_width < 2 * res:
            raise ValueError(f"step_width ({self.step_width:g} m) must be at least 2 x resolution ({res:g} m): a "
                             "step's tread needs samples of its own")
        if self.start_level >= self.levels:
            raise ValueError(f"start_level ({self.start_level}) must be below levels ({self.levels})")
        used = [k for k, p in self.kinds if p > 0]
        if len(used) > self.columns:
            raise ValueError(f"columns ({self.columns}) must be at least the number of kinds with a proportion "
                             f"({len(used)}: {', '.join(used)})")
        nx, ny = self.samples()
        if nx * ny > MAX_SAMPLES:
            raise ValueError(f"the heightfield would hold {nx} x {ny} samples, over {MAX_SAMPLES:,}: fewer levels or "
                             "columns, smaller tiles or border, or a coarser resolution")

    def samples(self) -> tuple[int, int]:
        """Heightfield samples along x (levels) and y (columns), borders included."""
        along = (self.levels * self.tile_size + 2 * self.border, self.columns * self.tile_size + 2 * self.border)
        return tuple(round(a / self.resolution) + 1 for a in along)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """JSON's own types (the task's spec records them: an edited table is noticed)."""
        d = asdict(self)
        d["kinds"] = dict(self.kinds)
        for k in ("rough_height", "slope_deg", "step_height"):
            d[k] = list(d[k])
        return d

    def column_kinds(self) -> tuple[str, ...]:
        """The kind of each column: the kinds in `KINDS` order, each on a number of neighbouring columns in
        proportion (largest remainders; every kind with a proportion gets at least one)."""
        total = sum(p for _, p in self.kinds)
        share = {k: p / total * self.columns for k, p in self.kinds if p > 0}
        count = {k: max(1, math.floor(s)) for k, s in share.items()}
        by_remainder = sorted(share, key=lambda k: (-(share[k] - math.floor(share[k])), KINDS.index(k)))
        while sum(count.values()) < self.columns:
            for k in by_remainder:
                if sum(count.values()) < self.columns:
                    count[k] += 1
        while sum(count.values()) > self.columns:  # the at-least-one rule overshot: take from the largest
            k = max(count, key=lambda k: (count[k], -KINDS.index(k)))
            count[k] -= 1
        return tuple(k for k in KINDS if k in count for _ in range(count[k]))

    def value(self, span: tuple[float, float], level: int) -> float:
        """A kind's value (`rough_height`, `slope_deg`, `step_height`) at `level`: linear from the easiest to the
        hardest level."""
        lo, hi = span
        return hi if self.levels == 1 else lo + (hi - lo) * level / (self.levels - 1)


def _kinds(value: Any) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, dict) or not value:
        raise ValueError(f"kinds must be a table of proportions by kind ({', '.join(KINDS)}), got {value!r}")
    for k, p in value.items():
        if k not in KINDS:
            raise ValueError(f"kinds: unknown kind {k!r}; known: {', '.join(KINDS)}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1e6 or math.isnan(p):
            raise ValueError(f"kinds.{k} must be a proportion >= 0, got {p!r}")
    if sum(value.values()) <= 0:
        raise ValueError("kinds: at least one kind must have a proportion above 0")
    return tuple((k, float(value[k])) for k in KINDS if k in value)


def _integer(key: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{key} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _number(key: str, v: Any, lo: float, hi: float, unit: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:  # NaN fails the comparison
        raise ValueError(f"{key} must be a number in [{lo:g}, {hi:g}] {unit}, got {v!r}")
    return float(v)


def _span(key: str, v: Any, hi: float, unit: str) -> tuple[float, float]:
    """A value per level: one number (every level) or [easiest, hardest]."""
    pair = [v, v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    if not (isinstance(pair, list) and len(pair) == 2
            and all(not isinstance(x, bool) and isinstance(x, (int, float)) and 0 <= x <= hi for x in pair)):
        raise ValueError(f"{key} must be a number or [easiest, hardest], each in [0, {hi:g}] {unit}, got {v!r}")
    return float(pair[0]), float(pair[1])


class Terrain:
    """The heights of a `TerrainSettings` grid and where its tiles lie in the world.

    ``heights[iy, ix]`` is the ground height [m] at world ``(x0 + ix * resolution, y0 + iy * resolution)``, the
    layout of MuJoCo's heightfield data (a row per y). Tile (level r, column c) spans ``tile_size`` around
    `centre(r, c)`."""

    def __init__(self, settings: TerrainSettings):
        s = self.settings = settings
        self.kinds = s.column_kinds()
        nx, ny = s.samples()
        self.x0 = -s.border / 2  # the world origin lies in the middle of the border strip before the grid
        self.y0 = -(s.columns * s.tile_size) / 2 - s.border
        self.heights = np.zeros((ny, nx))
        n = round(s.tile_size / s.resolution)
        b = round(s.border / s.resolution)
        for r in range(s.levels):
            for c in range(s.columns):
                self.heights[b + c * n:b + (c + 1) * n, b + r * n:b + (r + 1) * n] = self.tile(r, c)

    def centre(self, level: int, column: int) -> tuple[float, float]:
        s = self.settings
        return (self.x0 + s.border + (level + 0.5) * s.tile_size,
                self.y0 + s.border + (column + 0.5) * s.tile_size)

    def tile(self, level: int, column: int) -> np.ndarray:
        """The heights of one tile's samples ``[n, n]`` (its far edges are its neighbours' first samples)."""
        s = self.settings
        n = round(s.tile_size / s.resolution)
        u = (np.arange(n) - n / 2) * s.resolution  # from the tile's centre
        d = np.maximum(np.abs(u)[None, :], np.abs(u)[:, None])  # square rings around the centre
        a, p = s.tile_size / 2, s.platform / 2
        out_of_platform = a - np.maximum(d, p)  # 0 at the edge, largest on the platform
        kind = self.kinds[column]
        if kind == "flat":
            return np.zeros((n, n))
        if kind == "rough":
            h = s.value(s.rough_height, level)
            return np.random.default_rng([s.seed, level, column]).uniform(-h, h, (n, n))
        sign = -1.0 if kind.endswith("_up") else 1.0  # up: the centre in a pit, climbed out of
        if kind.startswith("slope"):
            return sign * math.tan(math.radians(s.value(s.slope_deg, level))) * out_of_platform
        steps = np.floor(out_of_platform / s.step_width + 1e-9)
        return sign * s.value(s.step_height, level) * steps

    def ground_under(self, level: int, column: int, radius: float) -> float:
        """The highest ground within `radius` of a tile's centre (a robot that reaches that far starts on it, not in
        it): the highest sample within radius + resolution, above which the surface between samples never rises."""
        s = self.settings
        cx, cy = self.centre(level, column)
        reach = radius + s.resolution
        ix = np.arange(self.heights.shape[1])
        iy = np.arange(self.heights.shape[0])
        xs = np.abs(self.x0 + ix * s.resolution - cx) <= reach
        ys = np.abs(self.y0 + iy * s.resolution - cy) <= reach
        return float(self.heights[np.ix_(ys, xs)].max())


@lru_cache(maxsize=4)
def terrain_of(settings: TerrainSettings) -> Terrain:
    """The terrain of `settings` (built once: the model and the task both read it)."""
    return Terrain(settings)


def add_terrain(spec: mujoco.MjSpec, settings: TerrainSettings, material: str | None = None) -> mujoco.MjsGeom:
    """Add the heightfield of `settings` to `spec` (asset ``robotrl_terrain``, geom ``floor``) and return the geom:
    the data normalised to [0, 1] as MuJoCo keeps it, the geom lowered to the lowest height so that surface heights
    are the terrain's."""
    t = terrain_of(settings)
    h = t.heights
    lo, hi = float(h.min()), float(h.max())
    span = hi - lo if hi - lo > 1e-9 else 1.0  # all flat: any elevation scale gives height lo
    ny, nx = h.shape
    hf = spec.add_hfield()
    hf.name, hf.nrow, hf.ncol = HFIELD, ny, nx
    half_x, half_y = (nx - 1) * settings.resolution / 2, (ny - 1) * settings.resolution / 2
    hf.size = [half_x, half_y, span, BASE_DEPTH]
    hf.userdata = ((h - lo) / span).astype(np.float32).ravel()
    geom = spec.worldbody.add_geom()
    geom.name, geom.type, geom.hfieldname = GEOM, mujoco.mjtGeom.mjGEOM_HFIELD, HFIELD
    geom.pos = [t.x0 + half_x, t.y0 + half_y, lo]
    if material is not None:
        geom.material = material
    return geom


def next_level(level: int, walked: float, asked: float, settings: TerrainSettings,
               rng: np.random.Generator) -> int:
    """A world's level after an episode in which it `walked` this far from its start [m] while its commands `asked`
    for this much [m]: up past half a tile, down below half the distance asked; past the hardest, a random level."""
    up = walked > settings.tile_size / 2
    down = walked < 0.5 * asked and not up
    level += int(up) - int(down)
    if level >= settings.levels:
        return int(rng.integers(settings.levels))
    return max(level, 0)


class Curriculum:
    """The level and column of each of `n` worlds, and what their episodes walked and were asked to walk."""

    def __init__(self, terrain: Terrain, n: int, radius: float):
        self.terrain, self.settings = terrain, terrain.settings
        s = self.settings
        self.level = np.full(n, -1, dtype=np.int64)  # -1: a new start (no episode to judge yet)
        self.column = np.zeros(n, dtype=np.int64)
        self.start_xy = np.zeros((n, 2))
        self.asked = np.zeros(n)
        self.ground = np.array([[terrain.ground_under(r, c, radius) for c in range(s.columns)]
                                for r in range(s.levels)])
        """the height a robot starts at on each tile, over the robot's footprint"""

    def forget(self, worlds: Any) -> None:
        """The worlds start afresh (they were seeded): their next reset draws a column and a level."""
        self.level[np.asarray(worlds, dtype=np.intp)] = -1

    def start(self, i: int, end_xy: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
        """World i's next episode: its level from its last one (or drawn, at a new start) and where it starts
        (the tile's centre, at the ground height there)."""
        s = self.settings
        if self.level[i] < 0:
            self.column[i] = rng.integers(s.columns)
            self.level[i] = rng.integers(s.start_level + 1)
        else:
            walked = float(np.hypot(*(np.asarray(end_xy) - self.start_xy[i])))
            self.level[i] = next_level(int(self.level[i]), walked, float(self.asked[i]), s, rng)
        x, y = self.terrain.centre(int(self.level[i]), int(self.column[i]))
        self.start_xy[i] = x, y
        self.asked[i] = 0.0
        return x, y, float(self.ground[self.level[i], self.column[i]])

    def off_field(self, xy: np.ndarray) -> np.ndarray:
        """Whether each world's base (``xy [N, 2]``) is within `EDGE` of the heightfield's edge or beyond: its
        episode is cut there (truncated, as at the time limit: walking far is no fault), before it walks off."""
        t, (ny, nx) = self.terrain, self.terrain.heights.shape
        r = self.settings.resolution
        x_hi, y_hi = t.x0 + (nx - 1) * r, t.y0 + (ny - 1) * r
        return ((xy[:, 0] < t.x0 + EDGE) | (xy[:, 0] > x_hi - EDGE) | (xy[:, 1] < t.y0 + EDGE)
                | (xy[:, 1] > y_hi - EDGE))

    def track(self, command: np.ndarray, dt: float) -> None:
        """Count a control step's commanded planar distance (``command [N, 3]``: vx, vy, yaw rate)."""
        self.asked += np.hypot(command[:, 0], command[:, 1]) * dt


def footprint_radius(model: mujoco.MjModel, qpos: np.ndarray, base: int) -> float:
    """How far the robot's colliding geoms reach horizontally from its base in the pose `qpos` [m]."""
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(model, d)
    root = model.body_rootid[base]
    geoms = [g for g in range(model.ngeom) if model.body_rootid[model.geom_bodyid[g]] == root
             and (model.geom_contype[g] or model.geom_conaffinity[g])]
    return max(float(np.hypot(*(d.geom_xpos[g, :2] - d.xpos[base, :2])) + model.geom_rbound[g]) for g in geoms)


def rough_config(config: Any, height: float, seed: int = 0, *, size: float = 50.0) -> Any:
    """The robot config `config` with rough ground for the legged template: one tile `size` m wide of random heights
    uniform in +-`height` [m] (an episode of 20 s at 1 m/s stays on it)."""
    import dataclasses

    settings = TerrainSettings(kinds=(("rough", 1.0),), levels=1, columns=1, resolution=0.1, border=2.0,
                               tile_size=_number("size", size, 1, 100, "m"), platform=0.0, start_level=0,
                               rough_height=_span("height", height, 1.0, "m"),
                               seed=_integer("seed", seed, 0, 2**32 - 1))
    settings.check()
    return dataclasses.replace(config, terrain=settings)


def rough_ground(robot: Any, height: float, seed: int = 0, *, size: float = 50.0) -> Any:
    """The same robot (a `robotrl.envs.robot.Robot` or its `RobotConfig`) for the legged template on rough ground
    (`rough_config`): ``LeggedVelocityTask(rough_ground(robot, 0.04), ...)`` or ``LeggedVelocityEnv(...)`` runs it."""
    from robotrl.envs.robot import Robot

    config = robot.config if isinstance(robot, Robot) else robot
    return Robot(rough_config(config, height, seed, size=size), "legged")


@perturbation("rough", "rough ground in place of the floor: heights uniform in +-value [m] over a 50 m tile",
              low=1e-3, high=0.5, rebuild=lambda config, value: rough_config(config, value))
def _rough(perturbed: Any, value: float, condition: dict[str, float]) -> None:
    """Nothing to change in the task built by `rebuild`: its ground is the rough tile."""
