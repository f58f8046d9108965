"""Progress displays: redrawn in place on a terminal, plain rate-limited lines in a log."""
from __future__ import annotations

import io

import pytest

from mnas.progress import LogLines, Progress, progress_bar


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_are_plain_and_at_most_one_per_interval() -> None:
    out, clock = io.StringIO(), Clock()
    log = LogLines(out, interval=5.0, clock=clock)
    for step in range(100):  # 100 redraws over 9.9 s
        clock.now = step * 0.1
        log.write(f"\rbar {step}/100   ")
    log.write("\n")  # the bar closes
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines == ["bar 0/100", "bar 50/100", "bar 99/100"]


def test_log_lines_pass_other_text_and_do_not_repeat_the_last_line() -> None:
    out, clock = io.StringIO(), Clock()
    log = LogLines(out, interval=5.0, clock=clock)
    log.write("\rbar 1/2")
    log.write("a message\n")
    clock.now = 1.0
    log.write("\rbar 1/2")
    log.write("\n")
    assert out.getvalue() == "bar 1/2\na message\n"


def test_a_bar_in_a_log_is_a_few_readable_lines() -> None:
    out = io.StringIO()
    bar = progress_bar(5000, desc="latency table", unit="entry", stream=out)
    for _ in range(5000):
        bar.update(1)
    bar.set_postfix(best="0.5")  # refresh=True: rate-limited too
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and all(len(line) < 120 for line in lines), lines
    assert lines[-1].startswith("latency table: 5000/5000 (100%)") and "best=0.5" in lines[-1]


def test_a_bar_on_a_terminal_redraws_in_place() -> None:
    out = Tty()
    bar = progress_bar(3, desc="children", unit="child", stream=out, mininterval=0)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert out.getvalue().count("\r") >= 3 and "3/3" in out.getvalue()


def test_disabled_bars_write_nothing() -> None:
    out = io.StringIO()
    with progress_bar(3, desc="x", unit="it", enabled=False, stream=out) as bar:
        bar.update(3)
    assert out.getvalue() == ""


def test_the_search_line_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(40, 0)  # stderr is captured: not a terminal
    for done in range(1, 41):
        progress.update(done, 2, None)
    progress.close()
    err = capsys.readouterr().err
    assert "\r" not in err and err.splitlines()[-1].startswith("children: 40/40")
    assert len(err.splitlines()) <= 3  # the start, the end, and at most one in between

