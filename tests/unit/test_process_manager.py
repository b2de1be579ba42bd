"""The Procfile rendered into supervisord's configuration, and the listener that prefixes the output."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from cli.process_log import Prefixer, serve
from cli.process_manager import GROUP, Process, read_procfile, shell_command, socket_path, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_supervisord_accepts_the_config_with_every_procfile_process(tmp_path: Path) -> None:
    processes = read_procfile(ROOT / "deploy" / "Procfile")
    config = write_config(ROOT / "deploy" / "Procfile", tmp_path, ROOT)
    options = ServerOptions()
    options.realize(args=["-c", str(config)])
    groups = {group.name: group for group in options.process_group_configs}
    assert set(groups) == {GROUP, "process-log"}, "one group, so a shutdown stops them all at once"
    programs = {program.name: program for program in groups[GROUP].process_configs}
    assert set(programs) == {p.name for p in processes}
    for program in programs.values():
        assert program.autorestart is RestartUnconditionally
        assert program.stopasgroup and program.killasgroup
        assert program.stdout_events_enabled, "its output would not reach the terminal"
        assert program.startretries > 1 and program.startsecs > 0  # the growing delay of a crash loop
    assert options.nodaemon


def test_a_single_command_is_execed_and_a_compound_one_keeps_its_own_exec() -> None:
    single = shlex.split(shell_command('uvicorn app --port "${PORT:-80}"'))
    assert single == ["/bin/sh", "-c", 'exec uvicorn app --port "${PORT:-80}"']
    compound = shlex.split(shell_command("mkdir -p d && exec celery beat"))
    assert compound == ["/bin/sh", "-c", "mkdir -p d && exec celery beat"]
    assert shlex.split(shell_command("echo a && exit 3"))[2] == "echo a && exit 3"  # its status kept
    assert shlex.split(shell_command("exec sleep 1"))[2] == "exec sleep 1"
    assert "%%" in shell_command("date +%s"), "supervisord would expand %(...)s in the command"


def test_read_procfile_refuses_a_name_twice(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\na: one\n\na: two\n")
    try:
        read_procfile(procfile)
    except ValueError as error:
        assert "'a'" in str(error)
    else:
        raise AssertionError("a duplicate process name was accepted")
    procfile.write_text("# comment\na: one\nb:two\n")
    assert read_procfile(procfile) == [Process("a", "one"), Process("b", "two")]


def test_a_deep_data_dir_gets_its_socket_in_the_temporary_directory(tmp_path: Path) -> None:
    assert socket_path(tmp_path) == tmp_path / "supervisor.sock"
    deep = tmp_path / ("d" * 120)
    assert len(str(socket_path(deep))) <= 100


def test_lines_cut_across_chunks_come_out_whole_with_their_process_name() -> None:
    out = io.BytesIO()
    prefixer = Prefixer(out, width=5)
    prefixer.feed("llm", b"first li")
    prefixer.feed("api", b"up\r\n")
    prefixer.feed("llm", b"ne\nsecond\n")
    assert out.getvalue().decode().splitlines() == ["api   | up", "llm   | first line", "llm   | second"]


def test_the_listener_speaks_supervisord_protocol() -> None:
    body = b"processname:llm groupname:llm pid:7 channel:stdout\nhello\n"
    header = (
        "ver:3.0 server:supervisor serial:1 pool:process-log poolserial:1 eventname:PROCESS_LOG_STDOUT"
        f" len:{len(body)}\n"
    )
    stdin, stdout, printed = io.BytesIO(header.encode() + body), io.BytesIO(), io.BytesIO()
    serve(stdin, stdout, Prefixer(printed, width=3))
    assert stdout.getvalue() == b"READY\nRESULT 2\nOKREADY\n"
    assert printed.getvalue() == b"llm | hello\n"
