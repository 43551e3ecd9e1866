"""The ``assistant`` command for the tests, forked from a process that has already loaded it.

Every run of the command spends about three seconds of CPU importing its libraries and
loading the French pipeline before it does anything; the suite starts some ninety of them on
two cores. A launcher process imports the command and loads the pipeline once, then forks a
child for each run: the child sets the run's environment, working folder and standard
streams, and calls the same ``main()`` the console script calls. What a test sees is a
process of its own with a pid, an exit code and signals, as with ``subprocess.Popen``.

The launcher never starts a thread (forking a process with threads can copy a held lock),
so it waits for its children by polling. Runs that need a fresh interpreter (uvicorn's
worker processes, an environment changing how Python starts) use ``subprocess`` itself.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
# What changes how an interpreter starts cannot be given to a child already running.
_STARTUP_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONWARNINGS", "PYTHONSAFEPATH")
_Stream = IO | int | None


class Launched:
    """A run of the command started by the launcher: ``poll``, ``wait``, signals and
    ``returncode`` as on ``subprocess.Popen``."""

    def __init__(self, connection: socket.socket, pid: int, args: list[str]) -> None:
        self._connection = connection
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def _read(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        self._connection.settimeout(timeout)
        try:
            message = self._connection.recv(4096)
        except (TimeoutError, BlockingIOError):
            return
        if not message:
            raise RuntimeError("the launcher stopped before the run ended")
        self.returncode = int(json.loads(message)["returncode"])
        self._connection.close()

    def poll(self) -> int | None:
        """The exit code if the run has ended, else None."""
        self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the run to end and return its exit code (negative: the signal that ended it)."""
        self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send a signal to the run, unless it has already ended."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM, as ``Popen.terminate``."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as ``Popen.kill``."""
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The test process's side: starts the launcher process once, then asks it for runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._address = ""

    def _started(self) -> str:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                if self._address:
                    shutil.rmtree(os.path.dirname(self._address), ignore_errors=True)
                folder = tempfile.mkdtemp(prefix="assistant-launcher-")
                self._address = os.path.join(folder, "socket")
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.launcher", self._address],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                assert self._process.stdout is not None
                ready = self._process.stdout.readline()
                if ready.strip() != b"ready":
                    raise RuntimeError(f"the launcher did not start: {ready!r}")
                atexit.register(self.close)
            return self._address

    def close(self) -> None:
        """Stop the launcher (its stdin closing tells it to)."""
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                assert self._process.stdin is not None
                self._process.stdin.close()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
            self._process = None
            if self._address:
                shutil.rmtree(os.path.dirname(self._address), ignore_errors=True)
                self._address = ""

    def popen(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path | str = ROOT,
        stdout: _Stream = None,
        stderr: _Stream = None,
    ) -> Launched | subprocess.Popen[bytes]:
        """Start ``assistant ARGS`` with this environment, folder and output streams
        (a file, ``subprocess.DEVNULL`` or ``subprocess.STDOUT`` for stderr)."""
        command = [str(Path(sys.executable).parent / "assistant"), *args]
        if any(env.get(name) != os.environ.get(name) for name in _STARTUP_VARIABLES):
            return subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        opened: list[int] = []

        def descriptor(stream: _Stream, default: int) -> int:
            if stream is None:
                return default
            if stream == subprocess.DEVNULL:
                opened.append(os.open(os.devnull, os.O_RDWR))
                return opened[-1]
            if isinstance(stream, int):
                return stream
            return stream.fileno()

        out = descriptor(stdout, 1)
        err = out if stderr == subprocess.STDOUT else descriptor(stderr, 2)
        stdin = os.open(os.devnull, os.O_RDONLY)
        opened.append(stdin)
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            connection.connect(self._started())
            request = json.dumps({"args": args, "env": env, "cwd": str(cwd)}).encode()
            socket.send_fds(connection, [request], [stdin, out, err])
            pid = int(json.loads(connection.recv(4096))["pid"])
        except BaseException:
            connection.close()
            raise
        finally:
            for fd in opened:
                os.close(fd)
        return Launched(connection, pid, command)

    def run(
        self, args: list[str], *, env: dict[str, str], cwd: Path | str = ROOT, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``assistant ARGS`` to its end and return its exit code and text output, as
        ``subprocess.run(capture_output=True, text=True)``; past ``timeout`` it is killed."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = self.popen(args, env=env, cwd=cwd, stdout=out, stderr=err)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                process.args, code, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
            )


LAUNCHER = Launcher()


def _child(request: dict, descriptors: list[int]) -> None:
    """In the forked child: become the run, then exit with its code."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
        for target, fd in enumerate(descriptors):
            os.dup2(fd, target)
        for fd in set(descriptors):
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["assistant", *request["args"]]
        from assistant.cli import main

        code = main(request["args"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve(address: str) -> None:
    """The launcher process: load the command once, then fork a child for each request."""
    import assistant.cli  # noqa: F401  (imported here so that every child has it)
    from vectorstore.linguistics import PIPELINES

    PIPELINES.load()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(address)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _ in selector.select(timeout=0.02):
            if key.fileobj is sys.stdin:
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            connection, _ = listener.accept()
            message, descriptors, _, _ = socket.recv_fds(connection, 1 << 20, 3)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in children.values():
                    other.close()
                connection.close()
                _child(json.loads(message), descriptors)
            for fd in descriptors:
                os.close(fd)
            connection.sendall(json.dumps({"pid": pid}).encode())
            children[pid] = connection
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            connection = children.pop(pid, None)
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
                connection.close()


if __name__ == "__main__":
    _serve(sys.argv[1])
