"""What one execution of a program against its tests produced."""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES = ("syntax_error", "runtime_error", "timeout", "failed", "passed")
"""Every `ExecResult.outcome`, from worst to best."""


@dataclass(frozen=True)
class ExecResult:
    """The verdict on one program, decided by the trusted side (never by the program).

    Attributes:
        outcome: ``syntax_error`` (does not compile), ``runtime_error`` (the program crashed, or every
            test raised), ``timeout`` (killed at the wall-clock or CPU limit before all tests passed),
            ``failed`` (ran, but some test did not pass) or ``passed`` (every test passed).
        test_passed: one bool per test, in order.
        test_status: one of ``passed``, ``failed`` (wrong value), ``error`` (raised), ``not_run``
            (the program died or timed out first) per test.
        trusted: per test, True when the verdict was computed outside the sandbox from a returned
            value (the ``assert CALL == EXPECTED`` family); False for other test shapes, which run
            inside the sandbox and are therefore weaker evidence.
        duration: wall-clock seconds the sandboxed child ran.
        stderr_tail: the last few KiB the program wrote to stderr (tracebacks included).
        cached: the result came from the executor's cache.
        limit: which time limit decided: ``given`` (by the caller), ``calibrated`` (the problem's
            ``time_limit``), ``default`` (`DEFAULT_TIMEOUT`, no limit given) or ``generous`` (the
            default, on the re-run after a timeout under the calibrated limit).
        time_limit: the seconds of that limit.
        values: only with ``run_many(..., values=True)``: per test, an `codegym.execution.Evaluated`
            (the value its ``CALL`` returned, decoded outside the sandbox, or the exception type it
            raised); empty otherwise. `codegym.feedback` shows it to a repairing model.
    """

    outcome: str
    test_passed: tuple[bool, ...]
    test_status: tuple[str, ...] = ()
    trusted: tuple[bool, ...] = ()
    duration: float = 0.0
    stderr_tail: str = ""
    cached: bool = False
    limit: str = "given"
    time_limit: float = 0.0
    values: tuple = ()

    @property
    def passed(self) -> bool:
        """Every test passed (and there was at least one)."""
        return self.outcome == "passed"

    @property
    def n_tests(self) -> int:
        return len(self.test_passed)

    @property
    def n_passed(self) -> int:
        return sum(self.test_passed)

    @property
    def pass_ratio(self) -> float:
        """Fraction of tests passed, 0.0 when there are none."""
        return self.n_passed / self.n_tests if self.test_passed else 0.0
