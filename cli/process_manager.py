"""The development stack under supervisord: deploy/Procfile is the process list, rendered into its config.

Every Procfile line becomes a supervisord program that is restarted whenever it exits. A process that
exits before it has run ``START_SECONDS`` is retried with a growing delay (1 s, 2 s, 3 s, ...) up to
``START_RETRIES`` times; supervisord logs each exit and each start. The programs' output reaches the
terminal through the ``cli.process_log`` listener, one line at a time with the process name in front.
Ctrl-C or SIGTERM to supervisord stops every program (its whole process group), then supervisord. The
programs form one group, ``chatai``: ``supervisorctl restart chatai:llm``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# honcho's and foreman's line grammar; anything else (comments, blanks) is not a process.
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
START_SECONDS = 3
START_RETRIES = 30
STOP_WAIT_SECONDS = 20
LOG_LISTENER = "process-log"
# One group: supervisord stops group after group on shutdown, so one group stops every program at once.
GROUP = "chatai"
# sun_path holds 108 bytes; a deep data directory gets its socket under the temporary directory.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Process:
    name: str
    command: str


def read_procfile(path: Path) -> list[Process]:
    processes: list[Process] = []
    for line in path.read_text().splitlines():
        match = PROCFILE_LINE.match(line)
        if match:
            name, command = match.groups()
            if any(p.name == name for p in processes):
                raise ValueError(f"process {name!r} appears twice in {path}")
            processes.append(Process(name, command.strip()))
    return processes


def shell_command(command: str) -> str:
    """The program line for supervisord: the Procfile command under ``/bin/sh -c``.

    A single command is ``exec``-ed, so the pid supervisord signals and reports is the process itself;
    a compound one (``a && exec b``) is left to say where it execs (signals reach the whole process
    group either way). ``%`` is doubled: supervisord expands ``%(name)s`` in program commands."""
    compound = re.search(r"[;&|]", command) or re.match(r"exec\s", command)
    script = command if compound else f"exec {command}"
    return f"/bin/sh -c {shlex.quote(script)}".replace("%", "%%")


def socket_path(run_dir: Path) -> Path:
    path = run_dir / "supervisor.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"chatai-supervisor-{digest}.sock"


def render_config(processes: list[Process], run_dir: Path, project_root: Path) -> str:
    """supervisord's configuration for these processes, its state (socket, pid, logs) under ``run_dir``."""
    logs = run_dir / "logs"
    sock = socket_path(run_dir)
    # As root, naming the user keeps supervisord from warning that it did not drop privileges.
    user = "user=root\n" if os.geteuid() == 0 else ""
    sections = [
        f"""[supervisord]
nodaemon=true
{user}logfile={run_dir / "supervisord.log"}
logfile_maxbytes=10MB
logfile_backups=2
pidfile={run_dir / "supervisord.pid"}
childlogdir={logs}
directory={project_root}

[unix_http_server]
file={sock}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{sock}
""",
        # The listener prints every program's output; a large buffer keeps bursts from being dropped.
        f"""[eventlistener:{LOG_LISTENER}]
command={sys.executable} -m cli.process_log --width {max((len(p.name) for p in processes), default=1)}
events=PROCESS_LOG
buffer_size=100000
directory={project_root}
priority=1
autorestart=true
stderr_logfile=/dev/stdout
stderr_logfile_maxbytes=0
""",
    ]
    sections.append(f"[group:{GROUP}]\nprograms={','.join(p.name for p in processes)}\n")
    for process in processes:
        sections.append(
            f"""[program:{process.name}]
command={shell_command(process.command)}
directory={project_root}
autostart=true
autorestart=true
startsecs={START_SECONDS}
startretries={START_RETRIES}
stopsignal=TERM
stopwaitsecs={STOP_WAIT_SECONDS}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={logs / f"{process.name}.log"}
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=2
stdout_events_enabled=true
"""
        )
    return "\n".join(sections)


def write_config(procfile: Path, run_dir: Path, project_root: Path) -> Path:
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    config = run_dir / "supervisord.conf"
    config.write_text(render_config(read_procfile(procfile), run_dir, project_root))
    return config


def supervisord_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "supervisor.supervisord", "--configuration", str(config)]


def run_in_foreground(argv: list[str], env: dict[str, str]) -> int:
    """Run supervisord as this process's child until it exits; returns its exit status.

    supervisord takes SIGHUP as "reload", so a closed terminal would leave the whole stack running without
    one. It therefore runs in a session of its own, away from the terminal's signals, and this process
    turns Ctrl-C, SIGTERM and a hang-up alike into SIGTERM for it: stop every process, then exit.
    """
    manager = subprocess.Popen(argv, env=env, start_new_session=True)

    def stop(signum: int, frame: object) -> None:
        if manager.poll() is None:
            manager.send_signal(signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    return manager.wait()


def supervisorctl_argv(config: Path, *command: str) -> list[str]:
    return [sys.executable, "-m", "supervisor.supervisorctl", "--configuration", str(config), *command]
