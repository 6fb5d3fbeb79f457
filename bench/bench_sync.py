"""Benchmark the amoCRM -> lake sync against the emulator at the real rate limit.

    python bench/bench_sync.py               # design scale: ~1,000 leads (~100k events+notes+tasks)
    python bench/bench_sync.py --scale 10    # 10x
    python bench/bench_sync.py --data DIR    # an existing `crmsum generate` output (DIR or DIR/amocrm)
    python bench/bench_sync.py --rps 50      # a faster limit (both the emulator and the client)

The API allows 7 requests/s, so a full sync cannot beat sum(pages per list) / 7 seconds (250 records per
page, 100 for events). Prints records/s, requests/s, the fraction of that bound achieved, where the time
went (API calls, limiter waits, anonymization, Parquet writes) and peak memory. A design-scale run takes
a few minutes at 7 rps; that is the point of the bench.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.memory import vm_hwm_mb  # noqa: E402
from crmsum.config import Settings  # noqa: E402
from crmsum.ingest.amocrm import STREAMS, sync  # noqa: E402
from crmsum.lake import Lake  # noqa: E402
from crmsum.privacy import Anonymizer, Vault  # noqa: E402
from crmsum.sandbox.amocrm_emulator import AmoEmulator  # noqa: E402
from crmsum.sources.amocrm import AmoClient  # noqa: E402

TOKEN = "bench-token"


class PeakRss(threading.Thread):
    """Samples this process's RSS every 50 ms (ru_maxrss also counts the generator's peak)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak / 2**20


@contextlib.contextmanager
def emulator(data: Path, rps: float, inproc: bool):
    """The emulator's URL: in a subprocess by default, so its threads do not share our GIL.

    Yielded once the emulator has indexed its data (seconds at scale 10): its start-up is not the
    client's time."""
    if inproc:
        with AmoEmulator(data, token=TOKEN, rate_limit=rps) as emu:
            emu.wait_ready()
            yield emu.url
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = ("from crmsum.sandbox.amocrm_emulator import run; "
            f"run({str(data)!r}, port={port}, token={TOKEN!r}, rate_limit={rps!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        line = proc.stdout.readline()
        if "emulator on" not in line:
            raise SystemExit(f"emulator did not start: {line}")
        line = proc.stdout.readline()
        if "data indexed" not in line:
            raise SystemExit(f"emulator did not index its data: {line}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def make_data(root: Path, scale: int) -> Path:
    from crmsum.sandbox.generate import generate

    t = time.perf_counter()
    counts = generate(root, leads=1000 * scale)
    print(f"generated scale {scale} in {time.perf_counter() - t:.1f}s: {counts}")
    return root / "amocrm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=1, help="1 = ~1,000 leads; 10 = 10,000 leads")
    ap.add_argument("--data", type=Path, help="an existing sample account (skips generation)")
    ap.add_argument("--rps", type=float, default=7.0, help="rate limit of the emulator and the client")
    ap.add_argument("--inproc", action="store_true",
                    help="run the emulator in this process (default: a subprocess, like a remote API)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_sync_") as tmp:
        tmp = Path(tmp)
        data = args.data if args.data else make_data(tmp / "account", args.scale)
        if (data / "amocrm").is_dir():
            data = data / "amocrm"
        with emulator(data, args.rps, args.inproc) as url:
            s = Settings(data_dir=tmp / "data", amocrm_base_url=url, amocrm_token=TOKEN, amocrm_rps=args.rps)
            anon = Anonymizer(Vault(s.vault_dir))
            lake = Lake(s.lake_dir)
            rss = PeakRss()
            rss.start()
            cpu0 = time.process_time()


            def progress(step: str, advance: float = 1, total: float | None = None) -> None:
                if total is not None:
                    print(f"  {step:<10} {int(total):>8} records  t={time.monotonic() - t0:6.1f}s", flush=True)

            t0 = time.monotonic()
            client = AmoClient.from_settings(s)
            report = sync(s, lake, anon, progress=progress, client=client)
            cpu = time.process_time() - cpu0
            peak = rss.stop()
            st = {"by_status": client.stats.by_status}

            # the bound: every list needs ceil(records / page size) pages (at least one) at rps
            need = 0
            for stream in STREAMS:
                n = report.fetched.get(stream.name, 0)
                need += 1 if stream.name == "pipelines" else max(1, math.ceil(n / stream.limit))
            bound_s = need / args.rps
            secs = report.seconds
            print()
            print(f"full sync: {report.records} records, {report.requests} requests "
                  f"({report.retries} retries, {st['by_status'].get(429, 0)} x 429, "
                  f"{st['by_status'].get(204, 0)} x 204) in {secs:.1f}s")
            print(f"records/s: {report.records / secs:,.0f}   requests/s: {report.requests / secs:.2f} "
                  f"(limit {args.rps:g})")
            print(f"rate-limit bound: {need} pages / {args.rps:g} rps = {bound_s:.1f}s -> achieved "
                  f"{bound_s / secs:.1%} of the bound")
            print(f"time: api calls {report.api_seconds:.1f}s, limiter waits {report.limiter_wait_seconds:.1f}s "
                  f"(request thread); anonymization {report.anonymize_seconds:.1f}s, mapping total "
                  f"{report.map_seconds:.1f}s, parquet writes {report.write_seconds:.1f}s, waiting for pages "
                  f"{report.consumer_wait_seconds:.1f}s (processing thread); cpu {cpu:.1f}s")
            print(f"peak RSS during sync: {peak:.0f} MB (before {rss.base / 2**20:.0f} MB, "
                  f"VmHWM {vm_hwm_mb():.0f} MB, which includes the generator's peak)")
            print("per list:", ", ".join(f"{k} {v}" for k, v in report.fetched.items()))

            again = sync(s, lake, anon, client=client)
            print(f"second run: {again.requests} requests, {sum(again.written.values())} rows written, "
                  f"{again.seconds:.1f}s")
            anon.close()


if __name__ == "__main__":
    main()
