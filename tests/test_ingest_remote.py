"""The writer process and its client: framing, errors across the socket, a full round trip."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from ingest_reports import CATALOG, NOW, new_installation, request
from ingest_support import query, settings

from ingest import _remote
from ingest._errors import CredentialRejected, Overloaded, StoreUnavailable
from ingest._store import ReportJob
from ingest._validate import Limits, validate
from ingest._writer import EraseJob

LIMITS = Limits(CATALOG, NOW, 24, 3600)


async def test_a_frame_reads_back_as_the_same_object() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(_remote.frame((1, "ping", None)) + _remote.frame({"a": [1, 2]}))
    assert await _remote.read_frame(reader) == (1, "ping", None)
    assert await _remote.read_frame(reader) == {"a": [1, 2]}


def test_errors_cross_the_socket_with_their_class_and_retry_after() -> None:
    rebuilt = _remote._rebuild(*_remote._error(Overloaded("full", retry_after=9)))
    assert (type(rebuilt), str(rebuilt), rebuilt.retry_after) == (Overloaded, "full", 9)  # type: ignore[attr-defined]
    rebuilt = _remote._rebuild(*_remote._error(CredentialRejected("no")))
    assert (type(rebuilt), str(rebuilt)) == (CredentialRejected, "no")


async def test_an_unreachable_writer_process_is_a_503(tmp_path: Path) -> None:
    remote = _remote.RemoteWriter(settings("sqlite://"), str(tmp_path / "none.sock"))
    with pytest.raises(StoreUnavailable):
        await remote.ping()


def _job(installation: str) -> ReportJob:
    [report] = validate(request(installation), LIMITS).reports
    return ReportJob(installation, "a" * 64, ((report, {}),))


async def test_reports_counts_and_erasure_go_through_the_writer_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ingest.db"
    path = str(tmp_path / "writer.sock")
    config = replace(settings(url), writer_socket=path)
    options = _remote.settings_options(config)
    process = multiprocessing.get_context("spawn").Process(
        target=_remote.writer_process, args=(options, path, "warning"))
    process.start()
    try:
        while not os.path.exists(path):
            time.sleep(0.05)
        remote = _remote.RemoteWriter(config, path)
        erased, kept = new_installation(), new_installation()
        assert await remote.ping() is None
        stored = await asyncio.gather(remote.submit(_job(erased)), remote.submit(_job(kept)))
        assert stored == [True, True]
        remote.count("accepted")
        remote.count("accepted")
        assert await remote.submit(EraseJob(erased, "a" * 64)) == 1
        with pytest.raises(CredentialRejected):
            await remote.submit(EraseJob(kept, "b" * 64))
        await remote.close()
    finally:
        process.terminate()
        process.join(30)
    assert process.exitcode == 0
    assert query(url, "SELECT COUNT(*) FROM weekly_reports") == [(1,)]
    assert query(url, "SELECT outcome, requests FROM daily_stats") == [("accepted", 2)]
