"""What the benchmarks share: a free port, quantiles, a process's resident memory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of the values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of a process and its peak, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    current = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return current, peak


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`assistant serve` over a data folder, quiet and without a rate limit (the benchmark
    is one client measuring, not a client to limit); returns the process and its URL."""
    port = free_port()
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(data_dir),
        "ASSISTANT_LOG_LEVEL": "warning",
        "ASSISTANT_RATE_LIMIT_PER_MINUTE": "0",
    }
    server = subprocess.Popen(
        [str(BIN / "assistant"), "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"
