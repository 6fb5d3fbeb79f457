"""The resident answerer: `crmsum ask` hands its question to a warm process on the data dir's unix socket,
gets the same output as answering in-process, and answers on its own when nobody listens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from crmsum import answer as A
from crmsum.answer import resident as R
from crmsum.errors import CrmsumError
from delivery_env import build_base, copy_env, settings_for

QUESTION = "Что Олег Петров делал в марте 2024?"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = build_base(tmp_path_factory.mktemp("resident_base") / "data")
    data_dir, lake = copy_env(base, tmp_path_factory.mktemp("resident") / "data")
    yield settings_for(data_dir), lake
    for t in threading.enumerate():  # `serve` warms the insights in the background: let it end, then close
        if t.name == "crmsum-warm":
            t.join(120)
    A.reset_contexts()


@pytest.fixture
def served(env):
    s, lake = env
    res = R.Resident(s, lake)
    assert res.start()
    yield res
    res.close()


def _comparable(out: str) -> dict:
    return {k: v for k, v in json.loads(out).items() if k != "answer_id"}


def test_an_answer_through_the_socket_is_the_in_process_answer(env, served):
    s, lake = env
    out = R.ask(s.state_dir, QUESTION, as_json=True)
    assert out is not None and served.served == 1
    local = A.answer_question(QUESTION, settings=s, lake=lake, record=False)
    assert _comparable(out) == _comparable(json.dumps(local.to_json(A.get_context(s, lake).vault)))
    assert json.loads(out)["manager"] == "Олег Петров" and json.loads(out)["source"] == "precomputed"
    text = R.ask(s.state_dir, QUESTION, as_json=False)
    assert text.startswith("Менеджер: Олег Петров") and text.endswith("\n")


def test_the_console_command_asks_the_resident(env, served):
    s, _ = env
    proc = subprocess.run([sys.executable, "-m", "crmsum", "ask", QUESTION, "--json"], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, CRMSUM_DATA_DIR=str(s.data_dir), CRMSUM_LLM="offline"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manager"] == "Олег Петров"
    assert served.served == 1, "the process answered on its own"


def test_only_a_plain_question_goes_to_the_resident(env, served):
    s, _ = env
    assert R.ask_argv(["--json", QUESTION], s.state_dir) is not None
    for argv in (["--help"], [], [QUESTION, "второй"], [QUESTION, "--verbose"], [QUESTION, "--json", "--json"]):
        assert R.ask_argv(argv, s.state_dir) is None, argv
    assert served.served == 1


def test_nobody_listening_means_the_caller_answers(env, tmp_path):
    s, _ = env
    assert R.ask(tmp_path, QUESTION, as_json=True) is None  # no socket at all
    stale = tmp_path / R.SOCKET_NAME  # a socket file left by a process that died
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    assert stale.exists() and R.ask(tmp_path, QUESTION, as_json=True) is None


def test_a_stale_socket_is_replaced_and_a_second_answerer_refused(env):
    s, lake = env
    path = R.socket_path(s.state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
    first = R.Resident(s, lake)
    assert first.start() and oct(path.stat().st_mode & 0o777) == "0o600"
    try:
        assert not R.Resident(s, lake).start()
        with pytest.raises(CrmsumError, match="another answerer"):
            R.serve(s, threading.Event(), lake)
        assert R.ask(s.state_dir, QUESTION, as_json=True) is not None
    finally:
        first.close()
    assert not path.exists()


def test_an_oversized_or_broken_request_gets_an_error_and_the_answerer_goes_on(env, served):
    s, _ = env
    for payload in (b"x" * (R.MAX_REQUEST + 10), b"not json\n", b'{"question": 5}\n'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(served.path))
            sock.sendall(payload)
            reply = json.loads(sock.makefile("rb").readline())
        assert "error" in reply and "output" not in reply
    assert R.ask(s.state_dir, QUESTION, as_json=True) is not None and served.served == 1


def test_serve_answers_until_stopped(env):
    s, lake = env
    stop = threading.Event()
    t = threading.Thread(target=R.serve, args=(s, stop, lake), daemon=True)
    t.start()
    path = R.socket_path(s.state_dir)
    for _ in range(200):
        if path.exists():
            break
        stop.wait(0.05)
    assert R.ask(s.state_dir, QUESTION, as_json=False) is not None
    stop.set()
    t.join(10)
    assert not t.is_alive() and not path.exists()


def test_the_quick_data_dir_is_the_settings_data_dir(tmp_path, monkeypatch):
    from crmsum.config import Settings
    from crmsum.paths import quick_data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRMSUM_DATA_DIR", raising=False)
    assert quick_data_dir() == Settings().data_dir
    (tmp_path / ".env").write_text("CRMSUM_DATA_DIR=/srv/crm\n")
    assert quick_data_dir() == Settings().data_dir == type(quick_data_dir())("/srv/crm")
    monkeypatch.setenv("CRMSUM_DATA_DIR", str(tmp_path / "env"))
    assert quick_data_dir() == Settings().data_dir == tmp_path / "env"


@pytest.mark.slow
def test_a_running_bot_answers_crmsum_ask(env):
    """`crmsum bot` as a process (against the Telegram emulator) listens for `crmsum ask`, and removes the
    socket when it is stopped."""
    from crmsum.sandbox.telegram_emulator import TelegramEmulator

    s, _ = env
    token = "123456789:RESIDENT-bot"
    path = R.socket_path(s.state_dir)
    with TelegramEmulator(token=token) as tg:
        proc = subprocess.Popen([sys.executable, "-m", "crmsum", "bot"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, CRMSUM_DATA_DIR=str(s.data_dir), CRMSUM_LLM="offline",
                                         CRMSUM_TELEGRAM_TOKEN=token, CRMSUM_TELEGRAM_API_URL=tg.url))
        try:
            for _ in range(600):
                if path.exists() or proc.poll() is not None:
                    break
                threading.Event().wait(0.1)
            out = R.ask(s.state_dir, QUESTION, as_json=True)
            assert out is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
            assert json.loads(out)["manager"] == "Олег Петров"
        finally:
            proc.terminate()
            proc.wait(30)
    assert not path.exists()
