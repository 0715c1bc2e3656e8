"""A worker process does not outlive its supervisor (DESIGN §4, process hygiene).

`kessai up` starts every worker in its own session (so Ctrl-C in a terminal reaches only the
supervisor, which then stops the workers). The price: when the supervisor dies without
stopping them (SIGKILL, OOM killer, a crash), nothing else would. So the supervisor puts its pid
in ``KESSAI_SUPERVISOR_PID`` and each worker calls :func:`watch_supervisor`, which starts a
daemon thread that polls for the supervisor. Once it is gone the worker stops itself the same
way the supervisor would have (SIGTERM, the worker's clean shutdown), and hard after a grace
period if that clean shutdown hangs (e.g. the broker went down with the supervisor).

A worker started as the supervisor's direct child watches ``getppid()``: the kernel reparents
an orphan at once, and that cannot be fooled by pid reuse. Otherwise (the variable set by hand,
a wrapper process in between) it watches whether the pid still names a live process. The
decision is in pure functions (:func:`watch_for`, :func:`supervisor_gone`) so it is tested
without processes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kessai.errors import ConfigError

ENV_VAR = "KESSAI_SUPERVISOR_PID"
POLL_S = 0.5  # how often the thread looks for the supervisor
GRACE_S = 5.0  # how long the clean shutdown may take before the process ends hard


@dataclass(frozen=True)
class Watch:
    """What a worker watches: the supervisor's pid, and whether it is the worker's parent."""

    pid: int
    direct: bool


def watch_for(value: str | None, ppid: int) -> Watch | None:
    """The watch for ``KESSAI_SUPERVISOR_PID`` = ``value``, given ``getppid()`` at start-up.

    None when there is no supervisor to watch (the variable unset or empty: a worker started
    by hand lives as long as its user wants).
    """
    if value is None or not value.strip():
        return None
    try:
        pid = int(value)
    except ValueError:
        raise ConfigError(f"{ENV_VAR} must be a process id, not {value!r}") from None
    if pid <= 1:
        raise ConfigError(f"{ENV_VAR} must be a process id above 1, not {pid}")
    return Watch(pid, direct=ppid == pid)


def supervisor_gone(watch: Watch, ppid: int, exists: bool) -> bool:
    """True once the supervisor is gone: for its direct child, the parent changed (orphans are
    reparented when their parent dies); otherwise the pid no longer names a live process."""
    if watch.direct:
        return ppid != watch.pid
    return not exists


def process_exists(pid: int) -> bool:
    """Whether ``pid`` names a process that has not exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) is all we know
    return state not in ("Z", "X")


def _say(msg: str) -> None:
    try:
        sys.stderr.write(f"kessai: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _stop_self(grace_s: float) -> None:
    """SIGTERM to this process (the worker's clean shutdown), then exit hard after the grace."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    _say(f"clean shutdown took longer than {grace_s:.0f}s; exiting now")
    os._exit(1)


def _watch(watch: Watch, poll_s: float, grace_s: float,
           stop: Callable[[float], None]) -> None:
    while not supervisor_gone(watch, os.getppid(), process_exists(watch.pid)):
        time.sleep(poll_s)
    _say(f"supervisor (pid {watch.pid}) is gone; stopping this worker")
    stop(grace_s)


def watch_supervisor(env: Mapping[str, str] | None = None, poll_s: float = POLL_S,
                     grace_s: float = GRACE_S) -> threading.Thread | None:
    """Start the daemon thread that ends this process when its supervisor is gone.

    Call it first thing in a worker process. Returns the thread, or None when ``env`` (default:
    ``os.environ``) names no supervisor.
    """
    watch = watch_for((os.environ if env is None else env).get(ENV_VAR), os.getppid())
    if watch is None:
        return None
    thread = threading.Thread(target=_watch, args=(watch, poll_s, grace_s, _stop_self),
                              name="kessai-lifeline", daemon=True)
    thread.start()
    return thread
