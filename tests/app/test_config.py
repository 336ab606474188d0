"""Settings from the environment, and `mr2probe serve` refusing to expose an open API."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli import main
from app.config import Settings, is_loopback


def test_settings_read_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MR2PROBE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MR2PROBE_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("MR2PROBE_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("MR2PROBE_CPU_JOBS", "3")
    monkeypatch.setenv("MR2PROBE_DATA_ROOT", "/srv/data")
    s = Settings()
    assert s.data_dir == tmp_path and s.token == "s3cr3t-value" and s.max_upload_bytes == 1234 and s.cpu_jobs == 3
    assert s.data_root == Path("/srv/data") and s.db_path == tmp_path / "mr2probe.sqlite3"
    assert "s3cr3t-value" not in repr(s)  # the token is a secret in reprs and logs
    assert Settings(data_dir=tmp_path / "x").data_dir == tmp_path / "x"  # keyword arguments win


def test_empty_token_means_no_token(monkeypatch):
    monkeypatch.setenv("MR2PROBE_API_TOKEN", "")
    assert Settings().token is None


@pytest.mark.parametrize("token", ["pässwörd", "トークン", "two words", "tab\there", "nul\x00"])
def test_a_token_no_http_client_can_send_is_refused_unrepeated(token):
    """'pässwörd' started the server, and no UTF-8 client could ever match it (an attack round)."""
    with pytest.raises(ValidationError, match="the API token must be printable ASCII") as err:
        Settings(api_token=token)
    assert token not in str(err.value)
    assert Settings(api_token="  A-z0_9.~+/=!  \n").token == "A-z0_9.~+/=!"


@pytest.mark.parametrize("field,value,message", [
    ("device", "tpu", "device must be one of auto, cpu, cuda, cuda:N, got 'tpu'"),  # as a probe config says it
    ("cpu_jobs", 0, "greater than or equal to 1"),
    ("cpu_jobs", 100_000, "less than or equal to 64"),
    ("max_upload_bytes", 0, "greater than 0"),
])
def test_invalid_settings_name_the_value(field, value, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Settings(**{field: value})


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("192.168.1.5", False), ("::", False), ("example.org", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


def test_serve_refuses_public_host_without_token(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MR2PROBE_API_TOKEN", raising=False)
    rc = main(["serve", "--host", "0.0.0.0", "--port", "1", "--data-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "refusing to listen on '0.0.0.0' without an API token" in err
    assert not (tmp_path / "mr2probe.sqlite3").exists()  # refused before anything started


def test_relative_folders_are_resolved_so_messages_never_quote_them(tmp_path, monkeypatch):
    """--data-dir ./svc put 'svc/uploads/ds_x/a.zip' into an upload's 422, which the cleaning of absolute paths let
    through (found by an outside round); the folders are resolved once, and the cleaning names them."""
    from app.config import Settings
    from app.messages import ClientMessages

    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir="svc", data_root="root")
    assert settings.data_dir == tmp_path.resolve() / "svc" and settings.data_root == tmp_path.resolve() / "root"
    text = f"{settings.uploads_dir / 'ds_x' / 'a.zip'}: found 1 class folder"
    assert ClientMessages(settings).clean(text) == "<data dir>/uploads/ds_x/a.zip: found 1 class folder"


def test_serve_refuses_a_missing_data_root_and_a_busy_port_in_one_line(monkeypatch, tmp_path, capsys):
    """A data root that does not exist was accepted (every registration then refused), and a port in use ended
    in uvicorn's own log line and exit 3 (found by an outside round): both are one 'error:' line, exit 2, before
    anything starts."""
    import socket

    monkeypatch.delenv("MR2PROBE_API_TOKEN", raising=False)
    monkeypatch.delenv("MR2PROBE_DATA_ROOT", raising=False)
    rc = main(["serve", "--port", "0", "--data-dir", str(tmp_path / "state"), "--data-root", str(tmp_path / "nope")])
    assert rc == 2
    assert f"the data root {tmp_path / 'nope'} is not a folder (--data-root" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--data-dir", str(tmp_path / "state")]) == 2
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err
    assert not (tmp_path / "state" / "mr2probe.sqlite3").exists()


@pytest.mark.parametrize("flag", ["--data-root", "--data-dir"])
def test_serve_refuses_a_folder_flag_given_twice(flag, tmp_path, capsys):
    """`--data-root A --data-root B` served B alone: registering a folder under A was a 403 'outside the data root'
    with nothing to say the first root was dropped (a first-user round). Given twice it is refused, naming both."""
    first, second = tmp_path / "a", tmp_path / "b"
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--port", "0", flag, str(first), flag, str(second)])
    assert stop.value.code == 2
    said = f"error: argument {flag}: given twice ({first} and {second}): the server takes one"
    assert said in capsys.readouterr().err
    assert not first.exists() and not second.exists()


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_refuses_a_port_out_of_range_in_one_line(port, tmp_path, capsys):
    """--port 70000 printed pydantic's four-line report with its errors.pydantic.dev URL (found by the third attack
    round): it is refused in one line naming --port and its range, before anything starts (argparse's refusal
    came after its usage lines)."""
    from app.commands.serve import MAX_PORT
    from app.config import Settings

    assert Settings.model_fields["port"].metadata[-1].le == MAX_PORT  # one range: the settings' own
    assert main(["serve", "--port", port, "--data-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert err == f"mr2probe serve: error: --port must be an integer in [0, 65535], got {port}\n"
    assert not (tmp_path / "state").exists()


def test_serve_names_an_unresolvable_host_and_a_data_dir_that_is_a_file(monkeypatch, tmp_path, capsys):
    """An unresolvable --host said 'Name or service not known (another server? choose another --port)', and a
    --data-dir that is a file '[Errno 17] File exists' (found by the third attack round): each is one line naming
    the option and what is wrong."""
    monkeypatch.delenv("MR2PROBE_DATA_ROOT", raising=False)
    assert main(["serve", "--host", "bad host!", "--token", "x", "--data-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert "error: cannot resolve the host 'bad host!' (--host)" in err
    assert "--port" not in err and "another server" not in err
    a_file = tmp_path / "state.txt"
    a_file.write_text("x")
    for data_dir, what in ((a_file, "is a file"), (a_file / "sub", f"is under {a_file}, a file")):
        assert main(["serve", "--port", "0", "--data-dir", str(data_dir)]) == 2
        err = capsys.readouterr().err
        assert f"error: the data dir {data_dir} {what}, not a folder (--data-dir" in err
        assert "Errno" not in err
    assert a_file.read_text() == "x"
    if os.path.isdir("/proc/self"):  # Linux: nothing can be made in /proc ('[Errno 2] No such file or directory')
        for command in (["serve", "--port", "0"], ["demo", "--no-serve", "--data", str(tmp_path)]):
            assert main([*command, "--data-dir", "/proc/mr2probe-test"]) == 2
            assert capsys.readouterr().err.endswith(
                "error: the data dir /proc/mr2probe-test cannot be written (No such file or directory in /proc; "
                "--data-dir): choose a folder for the server's state\n")


@pytest.mark.parametrize("variable, value, flags, said", [
    ("MR2PROBE_DATA_DIR", "/proc/mr2probe-test", [], "cannot be written (No such file or directory in /proc; "
     "MR2PROBE_DATA_DIR): choose a folder"),
    ("mr2probe_data_dir", "/proc/mr2probe-test", [], "in /proc; mr2probe_data_dir): choose a folder"),
    ("MR2PROBE_DATA_DIR", "/proc/mr2probe-test", ["--data-dir", "/proc/mr2probe-other"],
     "the data dir /proc/mr2probe-other cannot be written (No such file or directory in /proc; --data-dir)"),
    ("MR2PROBE_DATA_ROOT", "/nonexistent-root", ["--data-dir", "{tmp}"],
     "the data root /nonexistent-root is not a folder (MR2PROBE_DATA_ROOT): "),
    ("MR2PROBE_HOST", "bad host!", ["--token", "x", "--data-dir", "{tmp}"],
     "cannot resolve the host 'bad host!' (MR2PROBE_HOST): "),
])
def test_serve_names_a_refused_setting_as_it_was_given(monkeypatch, tmp_path, capsys, variable, value, flags, said):
    """A data dir, data root or host refused at start said "(--data-dir, MR2PROBE_DATA_DIR)" whichever was set: it
    names the one that set it, the flag over the variable."""
    if variable.upper() == "MR2PROBE_DATA_DIR" and not os.path.isdir("/proc/self"):
        pytest.skip("Linux's /proc: nothing can be made there")
    monkeypatch.delenv("MR2PROBE_DATA_ROOT", raising=False)
    monkeypatch.setenv(variable, value)
    assert main(["serve", "--port", "0", *[f.format(tmp=tmp_path / "state") for f in flags]]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("env, flag, said", [
    ({"MR2PROBE_CPU_JOBS": "abc"}, [], "MR2PROBE_CPU_JOBS must be an integer in [1, 64], got 'abc'"),
    ({"mr2probe_cpu_jobs": "-2"}, [], "mr2probe_cpu_jobs must be an integer in [1, 64], got -2"),
    ({}, ["--cpu-jobs", "0"], "--cpu-jobs must be an integer in [1, 64], got 0"),
    ({"MR2PROBE_CPU_JOBS": "0"}, ["--cpu-jobs", "x"], "--cpu-jobs must be an integer in [1, 64], got 'x'"),
    ({"MR2PROBE_MAX_UPLOAD_BYTES": "-5"}, [], "MR2PROBE_MAX_UPLOAD_BYTES must be an integer > 0, got -5"),
    ({"MR2PROBE_PORT": "70000"}, [], "MR2PROBE_PORT must be an integer in [0, 65535], got 70000"),
    ({"MR2PROBE_UPLOAD_IDLE_SECONDS": "soon", "MR2PROBE_THREADS": "0"}, [],
     "MR2PROBE_UPLOAD_IDLE_SECONDS must be in (0, 3600], got 'soon'; MR2PROBE_THREADS must be an integer in "
     "[1, 1024], got 0"),
    ({}, ["--token", "pässwort"], "--token: the API token must be printable ASCII"),
])
def test_a_setting_refused_is_one_line_naming_its_flag_and_variable(monkeypatch, tmp_path, capsys, env, flag, said):
    """A README round: each printed pydantic's four-line report naming the field (cpu_jobs), not what was set; then
    pydantic's words ("Input should be greater than or equal to 1") after both the flag and the variable. Now the
    setting as it was given (the flag over the variable), the value and what it accepts, in one line."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for command in (["serve"] + ["--port", "0"] * ("MR2PROBE_PORT" not in env), ["demo", "--no-serve"]):
        if command[0] == "demo" and (flag or "MR2PROBE_PORT" in env):
            continue  # demo takes no such flags (its port is its own flag's); its settings are read the same way
        assert main([*command, "--data-dir", str(tmp_path / "state"), *flag]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"mr2probe {command[0]}: error: {said}") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("variable", ["MR2PROBE_DEVICE", "mr2probe_device"])
def test_serve_refuses_a_device_this_host_lacks_in_one_line(monkeypatch, tmp_path, capsys, variable):
    """An attack round: MR2PROBE_DEVICE=cuda:99 started a server whose every job then failed. The variable is named
    as it was set (it is read case-insensitively): 'mr2probe_device=cuda:99' was told '(MR2PROBE_DEVICE)'."""
    import torch

    monkeypatch.delenv("MR2PROBE_API_TOKEN", raising=False)
    monkeypatch.delenv("MR2PROBE_DEVICE", raising=False)
    missing = f"cuda:{torch.cuda.device_count()}"
    monkeypatch.setenv(variable, missing)
    assert main(["serve", "--port", "0", "--data-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert f"device '{missing}' does not exist on this host" in err and f"({variable})" in err
    assert len(err.strip().splitlines()) == 1


def test_a_new_data_dir_is_readable_by_its_owner_alone(tmp_path):
    """The service's state (uploaded images, features, runs, the database) is not left readable by the other users
    of a shared machine under a default umask; a data dir that exists keeps its mode."""
    import stat

    from fastapi.testclient import TestClient

    from app.commands.backup import backup
    from app.datadir import lock_data_dir
    from app.main import create_app

    old = os.umask(0o022)
    try:
        create_app(Settings(data_dir=tmp_path / "new" / "state", device="cpu"), start_worker=False).state.store.close()
        lock_data_dir(tmp_path / "locked").close()  # mr2probe serve's start-up check makes it first
        (tmp_path / "shared").mkdir(mode=0o750)
        with TestClient(create_app(Settings(data_dir=tmp_path / "shared", device="cpu"), start_worker=False)):
            pass
        backup(tmp_path / "new" / "state", tmp_path / "backup")  # a copy of it too
    finally:
        os.umask(old)
    for made in (tmp_path / "new" / "state", tmp_path / "locked", tmp_path / "backup"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755  # the folders above: as usual
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o750
