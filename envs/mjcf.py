"""Reading a user's MJCF model: the files it names, MuJoCo's parser and compiler with their errors on one line
(`RobotConfigError`, naming the robot config or the model), the names of its objects, its joint and actuator
kinds."""

from __future__ import annotations

import math
from pathlib import Path

import mujoco

from robotrl.envs.robot_config import RobotConfig, RobotConfigError
from robotrl.userfile import file_problem, one_toml_in, read_text

HINGE, SLIDE, FREE = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE),
                      int(mujoco.mjtJoint.mjJNT_FREE))


def names_of(model: mujoco.MjModel, objtype: mujoco.mjtObj, n: int) -> list[str]:
    """The names of the model's first `n` objects of `objtype` ("" for an unnamed one)."""
    try:
        return [mujoco.mj_id2name(model, objtype, i) or "" for i in range(n)]
    except UnicodeDecodeError as e:  # a name from an included file in another encoding (the main one is checked)
        raise RobotConfigError(f"the model has a {objtype.name[7:].lower()} name that is not UTF-8 text "
                               f"(byte 0x{e.object[e.start]:02x}): save the MJCF files as UTF-8") from None


def load_spec(config: RobotConfig) -> mujoco.MjSpec:
    """The MjSpec of the config's model, parsed by MuJoCo after the files it names are found to be plain files."""
    path = config.model
    problem = file_problem(path)
    if problem == "is a directory":
        inside = one_toml_in(path) if config.path is None else None  # `robot inspect DIR`
        raise RobotConfigError(f"{config.where}: model {str(path)!r} is a directory; give the MJCF file (.xml)"
                               + (f" or the robot config in it: {str(inside)!r}" if inside else ""))
    if problem == "does not exist":
        raise RobotConfigError(f"{config.where}: model file {str(path)!r} not found")
    if problem is not None:  # a pipe or a device: MuJoCo's reader would block on it or read it for ever
        raise RobotConfigError(f"{config.where}: model {str(path)!r} {problem}")
    _check_model_files(path, config.where)
    # UTF-8, as MuJoCo decodes names (a Latin-1 body name was a UnicodeDecodeError traceback)
    read_text(path, config.where if config.path is None else f"{config.where}: model {str(path)!r}",
              error=RobotConfigError)
    said: list[str] = []
    before = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(said.append)  # the parser's own warnings, every time (the usual handler says each once)
    try:
        spec = mujoco.MjSpec.from_file(str(path))
    except Exception as e:  # MuJoCo's parser: ValueError / mujoco.FatalError with the line number
        raise RobotConfigError(f"{config.where}: MuJoCo cannot load {str(path)!r} ({_mujoco_message(e)})") from None
    finally:
        mujoco.set_mju_user_warning(before)
    for text in said:
        if "NaN" in text:  # a NaN in a number is a mistake: said as one
            raise RobotConfigError(f"{config.where}: {str(path)!r} has 'nan' where MuJoCo expects a number ({text})")
        if before is not None:
            before(text)
    return spec


_FILE_ATTRIBUTES = ("file", "fileright", "fileleft", "fileup", "filedown", "filefront", "fileback")


def _check_model_files(path: Path, where: str, depth: int = 0) -> None:
    """Every file the MJCF names (``<include>``, meshes, height fields, textures, skins) that exists must be a regular
    file: MuJoCo reads them as it parses and compiles, and would block on a named pipe or read a device for ever.
    A missing file is left to MuJoCo's own error; so is an MJCF that does not parse."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, ValueError, RecursionError):
        return
    folder = path.parent
    dirs = {folder}
    for c in root.iter("compiler"):
        for key in ("assetdir", "meshdir", "texturedir"):
            if c.get(key):
                dirs.add(folder / c.get(key))
    for el in root.iter():
        for key in _FILE_ATTRIBUTES:
            name = el.get(key)
            if not name:
                continue
            for candidate in sorted({d / name for d in dirs}):
                problem = file_problem(candidate)
                if problem is not None and not problem.startswith("does not exist"):
                    raise RobotConfigError(f"{where}: {str(path)!r} names {key}={name!r} ({el.tag}), which {problem}")
                if problem is None and el.tag == "include" and depth < 8:
                    _check_model_files(candidate, where, depth + 1)


def compile_spec(spec: mujoco.MjSpec, config: RobotConfig) -> mujoco.MjModel:
    """`spec` compiled, or MuJoCo's complaint as a RobotConfigError."""
    try:
        return spec.compile()
    except Exception as e:
        raise RobotConfigError(f"{config.where}: MuJoCo cannot compile {str(config.model)!r} "
                               f"({_mujoco_message(e)})") from None


def _mujoco_message(e: Exception) -> str:
    """MuJoCo's error on one line, with the line number it gives on a later line (``XML parse error 6:`` then
    ``Error=XML_ERROR_PARSING_ELEMENT ErrorID=6 (0x6) Line number=22``)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def is_position_servo(model: mujoco.MjModel, a: int) -> bool:
    """Actuator `a` drives its joint to ctrl with a PD law (gain kp, bias -kp q - kd qdot)."""
    return (int(model.actuator_biastype[a]) == int(mujoco.mjtBias.mjBIAS_AFFINE)
            and int(model.actuator_gaintype[a]) == int(mujoco.mjtGain.mjGAIN_FIXED)
            and model.actuator_biasprm[a, 1] != 0
            and math.isclose(model.actuator_biasprm[a, 1], -model.actuator_gainprm[a, 0], rel_tol=1e-9))




def free_joint_name(model: mujoco.MjModel, joint: int) -> str:
    """The name robotrl knows free joint `joint` by: its own, or for an unnamed one (``<freejoint/>``, as MuJoCo
    Menagerie writes it) its body's name, or that name + ``_free`` where a joint of the model has the body's name
    already. The base's observations (`base_ang_vel`, `projected_gravity`) are named after it in the task's spec and
    card; the legged template gives the joint this name in the model it compiles, so the simulation, the simulated
    robot and the card agree. "" when neither the joint nor its body has a name."""
    own = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)
    if own:
        return own
    body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.jnt_bodyid[joint])) or ""
    taken = set(names_of(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt))
    return next((n for n in (body, f"{body}_free") if body and n not in taken), "")


def collides(model: mujoco.MjModel, geom: int) -> bool:
    return bool(model.geom_contype[geom] or model.geom_conaffinity[geom])


def site_foot_geom(model: mujoco.MjModel, site: int) -> int | None:
    """The geom a foot given as a site stands for: of the colliding geoms of the site's rigid body (its body and the
    bodies welded to it), the one whose centre is nearest the site at the model's initial pose; None if it has none.

    Why not MuJoCo's contact sensor on the site (which counts contacts inside the site's volume): a published model's
    foot site marks the foot, often at the centre of its sphere and smaller than it, so a contact at the sole lies
    outside the site's volume and the sensor never sees one (a 1 cm site at the centre of a 2 cm foot sphere resting
    on a plane: no contact seen; a 3 cm one: seen). The foot's own geom sees every contact, whatever the site's
    size."""
    weld = model.body_weldid
    link = int(weld[model.site_bodyid[site]])
    geoms = [g for g in range(model.ngeom) if int(weld[model.geom_bodyid[g]]) == link and collides(model, g)]
    if not geoms:
        return None
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    return min(geoms, key=lambda g: float(((data.geom_xpos[g] - data.site_xpos[site]) ** 2).sum()))


def foot_geoms(model: mujoco.MjModel, name: str) -> list[int]:
    """The colliding geoms of foot `name` (a body's own geoms, a geom, or a site's geom, `site_foot_geom`; a name that
    is a body and a geom is the body), empty if it has none."""
    b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if b >= 0:
        adr, num = int(model.body_geomadr[b]), int(model.body_geomnum[b])
        return [g for g in range(adr, adr + num) if adr >= 0 and collides(model, g)]
    g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
    if g >= 0:
        return [g] if collides(model, g) else []
    s = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, name)
    found = site_foot_geom(model, s) if s >= 0 else None
    return [] if found is None else [found]
