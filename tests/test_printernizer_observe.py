"""AsyncSource: what an async service knows, asked on its loop from the reader's thread."""

from __future__ import annotations

import asyncio

from otel_usage.printernizer import AsyncSource


def test_the_reader_thread_gets_a_fresh_value_and_keeps_the_last_on_failure() -> None:
    answers: list[object] = [{"bambu_lab": 2}, RuntimeError("printer service down"),
                             {"bambu_lab": 3}]
    seen: list[dict[str, int]] = []

    async def fetch() -> dict[str, int]:
        await asyncio.sleep(0)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, dict)
        return answer

    async def host() -> None:
        source: AsyncSource[dict[str, int]] = AsyncSource(fetch, {})
        # Another thread asks, as the metric reader's does, while this loop runs.
        await asyncio.to_thread(lambda: seen.extend(source() for _ in range(3)))

    asyncio.run(host())
    assert seen == [{"bambu_lab": 2}, {"bambu_lab": 2}, {"bambu_lab": 3}]


def test_on_the_loops_thread_or_after_the_loop_it_answers_the_cached_value() -> None:
    async def fetch() -> int:
        return 5

    async def host() -> AsyncSource[int]:
        source = AsyncSource(fetch, 0)
        assert source() == 0  # on the loop's own thread: never waits
        for _ in range(100):  # the fetch runs on this loop once it is free again
            if source.value == 5:
                break
            await asyncio.sleep(0)
        assert source.value == 5
        return source

    source = asyncio.run(host())
    assert source() == 5  # the loop is gone: the last value, no error
