"""Is there a display to open a window on? Checked before Qt starts, because Qt aborts the process
(``qFatal``) with a misleading hint about ``libxcb-cursor0`` when it finds none."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

NO_DISPLAY = (
    "no display found: run on the workstation's desktop, "
    "or set QT_QPA_PLATFORM=offscreen for a screenshot"
)

# Platform plugins that draw on a display server; any other (offscreen, minimal, vnc, eglfs,
# linuxfb...) needs none, and Qt reports its own problems for those.
_DISPLAY_PLATFORMS = {"", "xcb", "wayland", "wayland-egl"}
X11_SOCKETS = Path("/tmp/.X11-unix")  # noqa: S108 - the X server's fixed socket directory
_LOCAL_X = re.compile(r"^(?:unix)?:(\d+)(?:\.\d+)?$")


def display_problem(
    env: Mapping[str, str] | None = None, x11_socket_dir: Path = X11_SOCKETS
) -> str | None:
    """``NO_DISPLAY`` when the platform Qt would use needs a display and none is reachable.

    ``env`` defaults to ``os.environ``. A local X display (``:N``) counts only when its socket
    ``x11_socket_dir/XN`` exists; a Wayland display when its socket exists under
    ``XDG_RUNTIME_DIR`` (or is an absolute path). A remote X display (``host:N``) is taken on
    trust: checking it would mean touching the network. Returns ``None`` when Qt may start.
    """
    env = os.environ if env is None else env
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    platforms = {p.strip() for p in platform.split(";")} if platform else {""}
    if not platforms <= _DISPLAY_PLATFORMS:
        return None
    if _wayland_reachable(env) or _x11_reachable(env, x11_socket_dir):
        return None
    return NO_DISPLAY


def _x11_reachable(env: Mapping[str, str], socket_dir: Path) -> bool:
    display = env.get("DISPLAY", "").strip()
    if not display:
        return False
    local = _LOCAL_X.match(display)
    if local is None:
        return True  # a remote or unusual display name: Qt says what is wrong with it
    return (socket_dir / f"X{local.group(1)}").exists()


def _wayland_reachable(env: Mapping[str, str]) -> bool:
    name = env.get("WAYLAND_DISPLAY", "").strip()
    if not name:
        return False
    path = Path(name) if name.startswith("/") else Path(env.get("XDG_RUNTIME_DIR", "")) / name
    return bool(env.get("XDG_RUNTIME_DIR") or name.startswith("/")) and path.exists()
