"""Offscreen MuJoCo rendering on a machine without a display: OpenGL back-end choice, cameras, text overlay.

    backend = choose_backend()                 # "egl" or "osmesa" (or what MUJOCO_GL says), probed once
    with OffscreenRenderer(model, 640, 480) as r:
        rgb = r.render(data, camera, rows=[("return", "12.3"), ("step", "40")])   # [480, 640, 3] uint8

Why not ``mujoco.Renderer``: it takes its OpenGL back-end from ``MUJOCO_GL`` once, when ``import mujoco``
runs, and falls back to GLFW (which needs a display) when the variable is unset. robotrl imports mujoco
long before it knows whether a video is wanted (``robotrl train ... --video`` parses its flags with the
envs imported), so this module creates the GL context itself (``mujoco.egl.GLContext`` or
``mujoco.osmesa.GLContext``) and drives MuJoCo's own scene, render and overlay calls: the choice can be
made at the first frame, and the text overlay (return, step, success) is drawn by MuJoCo's font in the
same pass, with no image library.

Choosing the back-end: ``MUJOCO_GL`` (egl, osmesa or glfw) when the user sets it; otherwise EGL, then
OSMesa, each tried in a short-lived subprocess (PyOpenGL binds one platform per process, so a failed
EGL attempt would poison OSMesa in the same process). On this project's 2-core CI machine both EGL
(Mesa's llvmpipe through the EGL device platform, ``libegl-mesa0``) and OSMesa (``libosmesa6``) render,
at the same speed; on a machine with an NVIDIA driver EGL uses the GPU. When neither works, the error
names the system package to install; ``python -m robotrl.video.render --setup`` (run by ``make setup``)
installs it with apt-get where it can.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from typing import Any

from robotrl.errors import UserError

BACKENDS = ("egl", "osmesa")  # tried in this order when MUJOCO_GL is not set
USER_BACKENDS = ("egl", "osmesa", "glfw")  # accepted from MUJOCO_GL

# System packages that provide each back-end (Debian/Ubuntu names; Fedora in the message).
APT_OSMESA = ("libosmesa6",)
APT_EGL = ("libegl1", "libegl-mesa0", "libgl1-mesa-dri", "libopengl0")
INSTALL_HINT = ("on Debian/Ubuntu run 'apt-get install libosmesa6' (or, where Mesa no longer ships OSMesa, "
                "'apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0'), on Fedora 'dnf install "
                "mesa-libOSMesa', or 'make setup', which installs it where it can")

_PROBE = r"""
import sys
import mujoco
import numpy as np
GLContext = __import__("mujoco." + sys.argv[1], fromlist=["GLContext"]).GLContext
xml = ('<mujoco><worldbody><light pos="0 0 3"/><geom type="sphere" size=".3" rgba="1 0 0 1"/>'
       '<camera name="c" pos="0 -2 0" xyaxes="1 0 0 0 0 1"/></worldbody></mujoco>')
m = mujoco.MjModel.from_xml_string(xml)
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
ctx = GLContext(32, 24)
ctx.make_current()
con = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_100)
mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, con)
scn = mujoco.MjvScene(m, maxgeom=100)
cam = mujoco.MjvCamera()
cam.type, cam.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, 0
mujoco.mjv_updateScene(m, d, mujoco.MjvOption(), None, cam, mujoco.mjtCatBit.mjCAT_ALL, scn)
rect = mujoco.MjrRect(0, 0, 32, 24)
mujoco.mjr_render(rect, scn, con)
rgb = np.zeros((24, 32, 3), np.uint8)
mujoco.mjr_readPixels(rgb, None, rect, con)
from OpenGL import GL
renderer = GL.glGetString(GL.GL_RENDERER).decode()
con.free()
ctx.free()
if rgb[..., 0].max() < 100:
    sys.exit("rendered a blank image")
print(renderer)
"""


def _env_backend() -> str | None:
    value = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not value:
        return None
    if value not in USER_BACKENDS:
        raise UserError(f"MUJOCO_GL={value!r} cannot render offscreen here; unset it (robotrl then picks EGL or "
                        f"OSMesa) or set it to one of {', '.join(USER_BACKENDS)}")
    return value


def check_environment() -> None:
    """Refuse MUJOCO_GL / PYOPENGL_PLATFORM values that cannot render offscreen, with one line."""
    _env_backend()
    _platform_backend()


_PLATFORMS = {"egl": "egl", "osmesa": "osmesa", "glx": "glfw"}  # PyOpenGL platform -> the back-end that uses it


def _platform_backend() -> str | None:
    platform = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if platform and platform not in _PLATFORMS:
        raise UserError(f"PYOPENGL_PLATFORM={platform!r} cannot render offscreen; unset it (or set egl or osmesa)")
    return _PLATFORMS.get(platform)


def probe(backend: str, *, timeout: float = 120.0) -> tuple[bool, str]:
    """Try `backend` in a fresh interpreter: (True, the OpenGL renderer's name) or (False, why not)."""
    env = {**os.environ, "MUJOCO_GL": backend}
    env.pop("PYOPENGL_PLATFORM", None)  # mujoco.egl / mujoco.osmesa set it; GLFW goes with PyOpenGL's default
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE, backend], capture_output=True, text=True, env=env,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"no answer in {timeout:.0f} s"
    if p.returncode == 0:
        return True, p.stdout.strip().splitlines()[-1] if p.stdout.strip() else backend
    lines = [ln.strip() for ln in p.stderr.strip().splitlines() if ln.strip()]
    why = lines[-1] if lines else f"exit status {p.returncode}"
    if backend == "glfw":
        why = f"GLFW needs a display ({why})"
    return False, why if len(why) <= 200 else why[:197] + "..."


@functools.cache
def choose_backend() -> str:
    """The OpenGL back-end this process renders with; raises UserError naming the package to install."""
    check_environment()
    forced = _env_backend() or _platform_backend()
    candidates = (forced,) if forced else BACKENDS
    why = []
    for backend in candidates:
        ok, info = probe(backend)
        if ok:
            return backend
        why.append(f"{backend}: {info}")
    if forced:
        raise UserError(f"cannot render with the {forced} back-end that MUJOCO_GL or PYOPENGL_PLATFORM asks for "
                        f"({why[0]}); unset them to let robotrl pick, or install what it needs: {INSTALL_HINT}")
    raise UserError(f"rendering needs OSMesa or EGL, and neither works here ({'; '.join(why)}); {INSTALL_HINT}")


def _gl_context_class(backend: str) -> Any:
    """``mujoco.egl.GLContext`` etc.; importing it binds PyOpenGL to that platform (and raises ImportError if
    PyOpenGL is already bound to another one in this process)."""
    import importlib

    return importlib.import_module(f"mujoco.{backend}").GLContext


def font_scale(height: int) -> int:
    """MuJoCo font scale (percent) for a frame `height` pixels high (below 100 MuJoCo draws the same size)."""
    return 100 if height < 720 else 150 if height < 1080 else 200


class OffscreenRenderer:
    """Renders one MuJoCo model into RGB frames of a fixed size, with an optional two-column text overlay."""

    def __init__(self, model: Any, width: int, height: int, *, backend: str | None = None,
                 max_geom: int = 10_000):
        import mujoco
        import numpy as np

        self.model, self.width, self.height = model, int(width), int(height)
        self.backend = backend or choose_backend()
        vis = model.vis.global_
        vis.offwidth, vis.offheight = max(vis.offwidth, self.width), max(vis.offheight, self.height)
        self._gl = self._con = None
        try:
            self._gl = _gl_context_class(self.backend)(self.width, self.height)
            self._gl.make_current()
            scale = getattr(mujoco.mjtFontScale, f"mjFONTSCALE_{font_scale(self.height)}")
            self._con = mujoco.MjrContext(model, scale)
        except Exception as e:  # GL context or MuJoCo context creation: a missing driver shows up here
            self.close()
            raise UserError(f"cannot create an OpenGL context with MUJOCO_GL={self.backend} "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); {INSTALL_HINT}"
                            ) from None
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._scene = mujoco.MjvScene(model, maxgeom=max_geom)
        self._option = mujoco.MjvOption()
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.zeros((self.height, self.width, 3), dtype=np.uint8)

    def render(self, data: Any, camera: Any, rows: list[tuple[str, str]] | None = None) -> Any:
        """The frame [height, width, 3] (uint8, top row first) of `data` seen by `camera` (an MjvCamera);
        `rows` of (label, value) are drawn in the top-left corner."""
        import mujoco
        import numpy as np

        self._gl.make_current()
        mujoco.mjv_updateScene(self.model, data, self._option, None, camera, mujoco.mjtCatBit.mjCAT_ALL,
                               self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._con)
        if rows:
            mujoco.mjr_overlay(mujoco.mjtFont.mjFONT_NORMAL, mujoco.mjtGridPos.mjGRID_TOPLEFT, self._rect,
                               "\n".join(r[0] for r in rows), "\n".join(r[1] for r in rows), self._con)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._con)
        return np.flipud(self._rgb).copy()  # OpenGL's first row is the bottom one

    def close(self) -> None:
        if self._con is not None:
            self._gl.make_current()
            self._con.free()
            self._con = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> OffscreenRenderer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# cameras ------------------------------------------------------------------------------------------------------

def camera_names(model: Any) -> list[str]:
    import mujoco

    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) or f"camera{i}" for i in range(model.ncam)]


def _floating_base(model: Any) -> bool:
    """A walker: its first body moves freely (free joint) or in a plane (slide + hinge root joints)."""
    import mujoco

    if model.nbody < 2 or model.body_jntnum[1] == 0:
        return False
    first = model.body_jntadr[1]
    types = {int(model.jnt_type[first + k]) for k in range(model.body_jntnum[1])}
    return int(mujoco.mjtJoint.mjJNT_FREE) in types or int(mujoco.mjtJoint.mjJNT_SLIDE) in types


def make_camera(env: Any, name: str | None = None) -> tuple[Any, str]:
    """An MjvCamera for `env` (a Gymnasium MuJoCo env, wrapped or not) and the name it goes by.

    `name`: a camera of the model's MJCF, ``track`` (the model's camera of that name, or else one that
    follows the robot's base from the side) or ``free`` (the task's default view). Default: ``track``
    for walkers (a robot with a floating base), ``free`` otherwise.
    """
    import mujoco
    import numpy as np

    base = env.unwrapped
    if not (isinstance(getattr(base, "model", None), mujoco.MjModel) and hasattr(base, "data")):
        task = getattr(getattr(env, "spec", None), "id", type(base).__name__)
        raise UserError(f"task {task!r} is not simulated in MuJoCo; robotrl video films MuJoCo tasks")
    model = base.model
    names = camera_names(model)
    if name is None:
        name = "track" if ("track" in names or _floating_base(model)) else "free"
    cam = mujoco.MjvCamera()
    if name in names:
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = names.index(name)
        return cam, name
    if name == "track":
        if not _floating_base(model):
            raise UserError(f"camera 'track' follows a walker's base; this model has no moving base "
                            f"(cameras: {', '.join(['free', *names])})")
        mujoco.mjv_defaultFreeCamera(model, cam)
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = 1
        pos = base.data.xpos[model.body_rootid == 1]  # the robot's bodies as the env was reset
        size = float(np.max(np.ptp(pos, axis=0))) if len(pos) > 1 else 0.5
        cam.distance = max(1.0, 2.5 * size)  # the robot fills about a third of the picture
        cam.azimuth, cam.elevation = 90.0, -20.0
        return cam, name
    if name == "free":
        mujoco.mjv_defaultFreeCamera(model, cam)
        config = getattr(getattr(base, "mujoco_renderer", None), "default_cam_config", None) or {}
        for key, value in config.items():
            if key in ("trackbodyid", "type", "fixedcamid"):
                continue
            if isinstance(value, np.ndarray | list | tuple):
                getattr(cam, key)[:] = value
            else:
                setattr(cam, key, value)
        return cam, name
    choices = dict.fromkeys(["track", "free", *names] if _floating_base(model) else ["free", *names])
    raise UserError(f"no camera {name!r} in this model; choose one of: {', '.join(choices)}")


# set-up -------------------------------------------------------------------------------------------------------

def _apt_has(package: str) -> bool:
    """The package lists know `package` (recent Mesa releases dropped OSMesa, so newer distributions may lack it)."""
    p = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True)
    return p.returncode == 0 and "Candidate:" in p.stdout and "Candidate: (none)" not in p.stdout


def setup(log: Any = print) -> int:
    """Make sure one back-end works; install the system package with apt-get where allowed. Exit status."""
    ok_backend = None
    for backend in BACKENDS:
        ok, info = probe(backend)
        if ok:
            ok_backend = (backend, info)
            break
    if ok_backend:
        log(f"robotrl: rendering with {ok_backend[0]} ({ok_backend[1]})")
        return 0
    apt = shutil.which("apt-get")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    sudo = [] if root else (["sudo", "-n"] if shutil.which("sudo") and subprocess.run(
        ["sudo", "-n", "true"], capture_output=True).returncode == 0 else None)
    if apt is None or sudo is None:
        log(f"robotrl: error: rendering videos needs OSMesa or EGL, which this machine lacks: {INSTALL_HINT}")
        return 1
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in range(2):
        if attempt:  # a fresh machine has empty package lists
            subprocess.run([*sudo, apt, "update", "-qq"], env=env, check=False)
        packages = APT_OSMESA if _apt_has(APT_OSMESA[0]) else APT_EGL
        log(f"robotrl: installing {' '.join(packages)} for offscreen rendering (apt-get)")
        p = subprocess.run([*sudo, apt, "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)
        if p.returncode == 0:
            break
    for backend in BACKENDS:
        ok, info = probe(backend)
        if ok:
            log(f"robotrl: rendering with {backend} ({info})")
            return 0
    log(f"robotrl: error: rendering still does not work after apt-get; {INSTALL_HINT}")
    return 1


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m robotrl.video.render", description=__doc__.splitlines()[0])
    p.add_argument("--setup", action="store_true", help="install the system package for rendering if missing")
    args = p.parse_args(argv)
    if args.setup:
        return setup()
    try:
        backend = choose_backend()
    except UserError as e:
        print(f"robotrl: error: {e}", file=sys.stderr)
        return 1
    print(backend)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
