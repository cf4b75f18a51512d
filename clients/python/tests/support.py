"""Test support: a real runtrail server in a child process, and waiting with deadlines."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, Dict, List, Optional, TypeVar

ROOT = Path(__file__).resolve().parents[3]
PYTHON_DIR = ROOT / "clients" / "python"
CLI = ROOT / "packages" / "cli" / "dist" / "main.js"
T = TypeVar("T")


def sighup_as_a_terminal_gives_it() -> None:
    """For a test module's setUpModule: SIGHUP at its default here, so in the scripts its tests start, until the module is done.

    A suite started under nohup has SIGHUP ignored, and an ignored signal
    stays ignored across fork and exec: every script would ignore it, as
    runtrail then must, and the tests of what SIGHUP does would fail.
    (While the module runs, a hangup of the suite's terminal ends it.)
    """
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        unittest.addModuleCleanup(signal.signal, signal.SIGHUP, signal.SIG_IGN)


def wait_until(check: Callable[[], Optional[T]], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Server:
    """``runtrail serve`` (the built CLI) on 127.0.0.1 in its own data dir; restartable on the same port and data.

    Nothing happens until ``start``, so a test module can make its shared server at import and hand
    its methods to unittest: ``setUpModule, tearDownModule = server.start, server.close``.
    """

    def __init__(self, env: Optional[Dict[str, str]] = None, args: Optional[List[str]] = None) -> None:
        self.data_dir = ""
        self.env = {**os.environ, "RUNTRAIL_LOG_LEVEL": "warn", **(env or {})}
        #: More ``serve`` arguments (``--handlers FILE``); a restart uses them as they are then.
        self.args = list(args or [])
        self.port = 0
        self.url = ""
        self.process: Optional[subprocess.Popen[str]] = None
        self.output: List[str] = []
        self._pump: Optional[threading.Thread] = None

    def start(self, timeout: float = 30.0) -> "Server":
        if not CLI.exists():
            raise RuntimeError(f"{CLI} is missing: run `npm run build` first")
        # Made at the first start; a restart keeps it (same data).
        self.data_dir = self.data_dir or tempfile.mkdtemp(prefix="runtrail-py-")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._start_once(deadline)
                return self
            except AddressInUse:
                # The port of a restart was taken in between: try again until the deadline.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _start_once(self, deadline: float) -> None:
        args = ["node", str(CLI), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data_dir, "--node", "py-test", *self.args]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=str(ROOT))
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.output.append(line)
                lines.put(line)
            lines.put(None)

        pumping = threading.Thread(target=pump, daemon=True)
        pumping.start()
        self._pump = pumping
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ended(process)
                raise AssertionError(f"runtrail serve did not start: {''.join(self.output)}")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pumping.join(10)
                ended(process)
                if "EADDRINUSE" in "".join(self.output):
                    raise AddressInUse()
                raise AssertionError(f"runtrail serve exited {process.returncode}: {''.join(self.output)}")
            match = re.search(r"serving on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                self.process = process
                return

    def kill(self) -> None:
        """SIGKILL: no graceful close, an answer may be lost after its append was committed."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self._reap()

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._reap()

    def _reap(self) -> None:
        assert self.process is not None and self._pump is not None
        self._pump.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class AddressInUse(Exception):
    pass


def ended(process: "subprocess.Popen[str]") -> None:
    """Kill ``process`` if it still runs, reap it and close its pipes, which the garbage collector would otherwise report as leaked (ResourceWarning)."""
    if process.poll() is None:
        process.kill()
    # Popen's own exit: closes stdin, stdout and stderr and waits.
    process.__exit__(None, None, None)


def protocol_has_route(name: str) -> bool:
    """Whether this checkout's route table (packages/protocol/src/routes.ts) defines route ``name``."""
    source = (ROOT / "packages" / "protocol" / "src" / "routes.ts").read_text()
    return re.search(rf"\b{re.escape(name)}: \{{", source) is not None


def python_env(server_url: str, **extra: str) -> Dict[str, str]:
    """The environment of a child Python script using this checkout's runtrail package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTRAIL_")}
    env["PYTHONPATH"] = str(PYTHON_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["RUNTRAIL_URL"] = server_url
    env.update(extra)
    return env


class ScriptTimedOut(subprocess.TimeoutExpired):
    """A child script past its deadline; its message carries what the script printed, with every thread's stack."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n--- its stdout (tail) ---\n{_tail(self.output)}\n--- its stderr (tail), with each process's threads ---\n{_tail(self.stderr)}"


def _tail(text: Optional[str], lines: int = 120) -> str:
    return "\n".join((text or "").splitlines()[-lines:]) or "(nothing)"


def run_python(code: str, env: Dict[str, str], timeout: float = 60.0) -> "subprocess.CompletedProcess[str]":
    """Run ``code`` in a child Python; one past ``timeout`` is killed with every process it started.

    subprocess.run's own timeout kills the child alone: a script's forked pool
    workers stayed behind, waiting on their queue for ever. The script gets a
    session of its own, and the whole group goes.

    A script past its deadline first gets SIGABRT, which faulthandler (turned on
    here, inherited by forked children) answers by printing every thread's stack
    on stderr: the error then tells a stuck script, and where it is stuck, from a
    slow one.
    """
    child = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        start_new_session=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        signals = _group_signal_states(child.pid)
        os.killpg(child.pid, signal.SIGABRT)
        try:
            # Each process of the group prints its threads' stacks as the signal ends it.
            stdout, stderr = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            # Something in the group outlived SIGABRT (a handler of its own): SIGKILL ends it, and the output is read then.
            os.killpg(child.pid, signal.SIGKILL)
            stdout, stderr = child.communicate()
        raise ScriptTimedOut(child.args, timeout, output=stdout, stderr=f"{stderr}\n--- signal state of each thread at the deadline ---\n{signals}") from None
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def _group_signal_states(pgid: int) -> str:
    """Each thread of process group ``pgid``: its signals pending, blocked and caught (Linux's /proc; hex masks, bit n-1 is signal n)."""
    lines = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for task in sorted(stat.parent.glob("task/*/status")):
                fields = dict(line.split(":\t", 1) for line in task.read_text().splitlines() if ":\t" in line)
                lines.append(" ".join(f"{k}={fields.get(k, '?').strip()}" for k in ("Pid", "Name", "State", "SigPnd", "ShdPnd", "SigBlk", "SigCgt")))
        except (OSError, ValueError, IndexError):
            continue  # the process ended while it was read, or this is not Linux: it has nothing to say
    return "\n".join(lines) or "(not readable here)"


class _Proxy:
    """A TCP proxy on a port of its own in front of the server's: each connection is handed to ``_relay`` on a thread."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


def _request_head(client: socket.socket) -> Optional[bytes]:
    """A request's head as the client sent it (with what came after it in the same reads), or None if it closed first."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(65536)
        if not chunk:
            return None
        head += chunk
    return head


class CuttingProxy(_Proxy):
    """A TCP proxy in front of the server that cuts the first ``cuts`` responses after ``after`` bytes; records each request's head."""

    def __init__(self, target_port: int, after: int, cuts: int = 1) -> None:
        self.after = after
        self.cuts = cuts
        self.requests: List[str] = []
        super().__init__(target_port)

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        with client, upstream:
            head = _request_head(client)
            if head is None:
                return
            self.requests.append(head.decode("latin-1"))
            cut = self.cuts > 0
            self.cuts -= 1
            upstream.sendall(head)
            relayed = 0
            try:
                while True:
                    chunk = upstream.recv(65536)
                    if not chunk:
                        return
                    if cut and relayed + len(chunk) >= self.after:
                        client.sendall(chunk[: self.after - relayed])
                        return  # both sockets close: the client sees the body end early
                    client.sendall(chunk)
                    relayed += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                # The client hung up mid-answer (a script that stops reading on a local error, as tests
                # make it): nothing is left to relay. Not a traceback in the test run's output.
                return


class HoldingProxy(_Proxy):
    """A TCP proxy in front of the server that holds each request whose head contains ``hold`` until ``release()``
    (or ``cap`` seconds, so a test that never releases fails on its assertions, not on a hang)."""

    def __init__(self, target_port: int, hold: str, cap: float = 20.0) -> None:
        self.hold = hold.encode("latin-1")
        self.cap = cap
        self.holding = threading.Event()  # set once a request is held
        self.released = threading.Event()
        self.gave_up = threading.Event()  # set if a request went on because ``cap`` passed, not because it was released
        super().__init__(target_port)

    def release(self) -> None:
        self.released.set()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            head = _request_head(client)
            if head is None:
                return
            if self.hold in head.split(b"\r\n", 1)[0]:
                self.holding.set()
                if not self.released.wait(self.cap):
                    self.gave_up.set()
            upstream.sendall(head)
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            _pipe(upstream, client)

    def close(self) -> None:
        self.release()
        super().close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` into ``sink`` until either closes."""
    try:
        while True:
            chunk = source.recv(65536)
            if not chunk:
                return
            sink.sendall(chunk)
    except OSError:
        return  # the other side closed: the exchange is over
