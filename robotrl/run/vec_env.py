"""N copies of one task, stepped as a batch, optionally split across worker processes.

Gymnasium's own vector envs run either every env in the calling process (`SyncVectorEnv`) or one
process per env (`AsyncVectorEnv`). On a machine with a few cores and 8-64 envs neither is right:
`ShardedVectorEnv` splits the envs into ``workers + 1`` contiguous shards; the calling process
steps shard 0 itself while each worker process steps one other shard. Actions and results travel
through one block of shared memory; a step costs one byte each way per worker. Waking a sleeping
process costs 50-100 us on a VM, so both sides poll the pipe for a short while before blocking
(`_SPIN_S`): during a rollout the next message nearly always arrives within that window, and during
a learning update the workers fall asleep and cost nothing. ``workers=0`` keeps every env in the
calling process (no IPC).

Autoreset is owned here, explicitly, in Gymnasium's SAME_STEP mode: when env ``i`` ends an episode
at a step, the returned ``obs[i]`` is already the first observation of its next episode, and the
last observation of the ended one is in ``info["final_obs"][i]`` (mask ``info["_final_obs"]``).
Episode return and length of ended episodes come in ``info["episode"]`` (mask ``info["_episode"]``),
like Gymnasium's RecordEpisodeStatistics. Terminated and truncated are kept apart: only
``terminated`` means "no future reward"; a truncated episode must be bootstrapped from
``final_obs``.
"""

from __future__ import annotations

import contextlib
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from robotrl.errors import UserError

EnvFn = Callable[[], gym.Env]
_SPIN_S = 0.0005  # poll a pipe this long before a blocking read


def _recv_bytes(conn: Any) -> bytes:
    """`conn.recv_bytes()`, but poll first: a blocked process is slow to wake on a VM."""
    deadline = time.perf_counter() + _SPIN_S
    while not conn.poll(0):
        if time.perf_counter() > deadline:
            break
    return conn.recv_bytes()


def _layout(num_envs: int, obs_dim: int, act_dim: int) -> list[tuple[str, tuple[int, ...], Any]]:
    return [
        ("obs", (num_envs, obs_dim), np.float64),
        ("final_obs", (num_envs, obs_dim), np.float64),
        ("actions", (num_envs, act_dim), np.float64),
        ("reward", (num_envs,), np.float64),
        ("terminated", (num_envs,), np.bool_),
        ("truncated", (num_envs,), np.bool_),
        ("ep_return", (num_envs,), np.float64),
        ("ep_length", (num_envs,), np.int64),
    ]


def _views(buf: memoryview | bytearray, layout: list) -> dict[str, np.ndarray]:
    views, offset = {}, 0
    for name, shape, dtype in layout:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        views[name] = np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset)
        offset += (n + 63) // 64 * 64
    return views


def _nbytes(layout: list) -> int:
    return sum((int(np.prod(s)) * np.dtype(d).itemsize + 63) // 64 * 64 for _, s, d in layout)


class _Shard:
    """Envs ``lo..hi-1`` of the batch, stepped in a loop, writing into the shared arrays."""

    def __init__(self, env_fn: EnvFn, lo: int, hi: int, arrays: dict[str, np.ndarray]):
        self.envs = [env_fn() for _ in range(lo, hi)]
        self.lo, self.hi = lo, hi
        self.a = arrays
        self.ep_ret = np.zeros(hi - lo)
        self.ep_len = np.zeros(hi - lo, dtype=np.int64)

    def reset(self, seeds: Sequence[int | None]) -> None:
        for k, env in enumerate(self.envs):
            obs, _ = env.reset(seed=seeds[k])
            self.a["obs"][self.lo + k] = obs
        self.ep_ret[:] = 0.0
        self.ep_len[:] = 0

    def step(self) -> None:
        a = self.a
        for k, env in enumerate(self.envs):
            i = self.lo + k
            obs, reward, terminated, truncated, _ = env.step(a["actions"][i])
            self.ep_ret[k] += reward
            self.ep_len[k] += 1
            a["reward"][i] = reward
            a["terminated"][i] = terminated
            a["truncated"][i] = truncated
            if terminated or truncated:
                a["final_obs"][i] = obs
                a["ep_return"][i] = self.ep_ret[k]
                a["ep_length"][i] = self.ep_len[k]
                self.ep_ret[k] = 0.0
                self.ep_len[k] = 0
                obs, _ = env.reset()
            a["obs"][i] = obs

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _attach(name: str) -> shared_memory.SharedMemory:
    """Attach to the parent's block without letting this process's resource tracker own it (before
    Python 3.13 an attaching process registers the block and unlinks it when it exits)."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]  # Python >= 3.13
    except TypeError:
        from multiprocessing import resource_tracker

        shm = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        return shm


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold back the stop signals in this thread while helper processes start, so that they inherit the mask.

    A closed terminal or `kill -TERM -PGID` signals the whole process group. The run's own handler stops it at the
    end of the iteration with a checkpoint; env workers and the shared-memory resource tracker killed by the same
    signal would take that checkpoint with them. Python's tracker ignores SIGINT and SIGTERM, not SIGHUP; started
    here (if not running yet) it keeps SIGHUP blocked. A signal arriving meanwhile is delivered on leaving."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_main() -> None:
    """Entry point of a worker process: ``python -c '...; _worker_main()' FD``.

    Workers are plain subprocesses rather than `multiprocessing` children: spawn-style children
    re-import the parent's ``__main__`` (which breaks for ``python - < script`` and re-runs a user's
    unguarded script), and forked ones inherit torch's thread pools. The parent sends its
    ``sys.path`` and then the pickled shard arguments over the inherited socket.
    """
    for s in STOP_SIGNALS:  # the parent handles Ctrl-C, SIGTERM and SIGHUP (sent to the whole group) and closes us;
        signal.signal(s, signal.SIG_IGN)  # if it dies, the socket's EOF ends us
    conn = Connection(int(sys.argv[1]))
    sys.path[:] = conn.recv()
    try:
        args = pickle.loads(conn.recv_bytes())
    except Exception:
        conn.send_bytes(b"e")
        conn.send(traceback.format_exc())
        return
    _worker(conn, *args)


def _worker(conn: Any, env_fn: EnvFn, lo: int, hi: int, shm_name: str, layout: list) -> None:
    shm = _attach(shm_name)
    shard = None
    try:
        shard = _Shard(env_fn, lo, hi, _views(shm.buf, layout))
        conn.send_bytes(b"k")
        while True:
            cmd = _recv_bytes(conn)
            if cmd == b"s":
                shard.step()
                conn.send_bytes(b"k")
            elif cmd == b"r":
                shard.reset(conn.recv())
                conn.send_bytes(b"k")
            elif cmd == b"c":
                break
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except UserError as e:  # the task refused (a robot's simulation diverged): the parent says it in one line
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send_bytes(b"u")
            conn.send(str(e))
    except Exception:
        try:
            conn.send_bytes(b"e")
            conn.send(traceback.format_exc())
        except (BrokenPipeError, OSError):
            pass
    finally:
        if shard is not None:
            shard.close()
        del shard
        shm.close()


class ShardedVectorEnv(VectorEnv):
    """`num_envs` copies of ``env_fn()``, SAME_STEP autoreset, envs split over `workers` processes."""

    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env_fn: EnvFn, num_envs: int, workers: int = 0):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        probe = env_fn()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.spec = probe.spec
        probe.close()
        if not isinstance(self.single_observation_space, gym.spaces.Box) or not isinstance(
                self.single_action_space, gym.spaces.Box):
            raise ValueError("ShardedVectorEnv needs Box observation and action spaces")
        self.num_envs = num_envs
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        obs_dim = int(np.prod(self.single_observation_space.shape))
        act_dim = int(np.prod(self.single_action_space.shape))
        self._obs_shape = self.single_observation_space.shape
        layout = _layout(num_envs, obs_dim, act_dim)
        self.workers = min(max(0, workers), num_envs - 1)
        self._procs: list[Any] = []
        self._conns: list[Any] = []
        self._shm = None
        bounds = np.linspace(0, num_envs, self.workers + 2).round().astype(int)
        self._bounds = bounds
        if self.workers == 0:
            self._buf = bytearray(_nbytes(layout))
            self._a = _views(self._buf, layout)
        else:
            with _stop_signals_held():  # the helpers started here inherit the mask: a stop signal is the parent's
                self._shm = shared_memory.SharedMemory(create=True, size=_nbytes(layout))
                self._a = _views(self._shm.buf, layout)
                for w in range(1, self.workers + 1):
                    parent, child = socket.socketpair()
                    proc = subprocess.Popen(
                        [sys.executable, "-c", "from robotrl.run.vec_env import _worker_main; _worker_main()",
                         str(child.fileno())], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
                    self._procs.append(proc)
                    child.close()
                    conn = Connection(parent.detach())
                    conn.send(list(sys.path))
                    conn.send_bytes(pickle.dumps((env_fn, int(bounds[w]), int(bounds[w + 1]), self._shm.name, layout)))
                    self._conns.append(conn)
        # Shard 0 lives here; build it while the workers build theirs.
        self._local: _Shard | None = _Shard(env_fn, 0, int(bounds[1]), self._a)
        for conn in self._conns:
            self._expect(conn)
        self.closed = False

    def _expect(self, conn: Any) -> None:
        try:
            msg = _recv_bytes(conn)
        except EOFError:
            raise RuntimeError("an environment worker process died") from None
        if msg == b"u":
            raise UserError(conn.recv())
        if msg == b"e":
            raise RuntimeError("an environment worker failed:\n" + conn.recv())

    def _obs(self, arr: np.ndarray) -> np.ndarray:
        return arr.reshape((self.num_envs, *self._obs_shape)).copy()

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        for w, conn in enumerate(self._conns, start=1):
            conn.send_bytes(b"r")
            conn.send(seeds[self._bounds[w]:self._bounds[w + 1]])
        self._local.reset(seeds[:self._bounds[1]])
        for conn in self._conns:
            self._expect(conn)
        return self._obs(self._a["obs"]), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        a = self._a
        a["actions"][:] = np.asarray(actions, dtype=np.float64).reshape(a["actions"].shape)
        for conn in self._conns:
            conn.send_bytes(b"s")
        self._local.step()
        for conn in self._conns:
            self._expect(conn)
        terminated = a["terminated"].copy()
        truncated = a["truncated"].copy()
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            info = {
                "final_obs": self._obs(a["final_obs"]),
                "_final_obs": done,
                "episode": {"r": a["ep_return"].copy(), "l": a["ep_length"].copy()},
                "_episode": done,
            }
        return self._obs(a["obs"]), a["reward"].copy(), terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        if self._local is not None:
            self._local.close()
            self._local = None
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send_bytes(b"c")
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []
        if self._shm is not None:
            self._a = {}
            self._shm.close()
            self._shm.unlink()
            self._shm = None

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            with contextlib.suppress(Exception):
                self.close()
