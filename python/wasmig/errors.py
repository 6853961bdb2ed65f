"""Errors. Each message is one line naming what was wrong and what to do; the
`exit_code` matches the `wasmig` CLI's for the same kind of failure."""

from __future__ import annotations


class WasmigError(Exception):
    """Base class: a wasmig operation stopped. `exit_code` as in the CLI."""

    exit_code = 1


class PluginFault(WasmigError):
    """The component could not be loaded, trapped, or ran out of time or memory."""

    exit_code = 9


class PlanError(WasmigError):
    """A `plan-error` the component returned: {kind, message} (unknown revision, drift, ...)."""

    exit_code = 4

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class Refused(WasmigError):
    """Input or database state the runner refuses before changing anything."""

    exit_code = 4


class ChecksumMismatch(Refused):
    """A recorded (or pinned) checksum differs from the plugin's."""


class LintError(Refused):
    """A step of the plan has an error-level lint finding."""


class DataInUse(WasmigError):
    """A downgrade guard found rows that still use what the downgrade removes."""

    exit_code = 6


class LockTimeout(WasmigError):
    """Another wasmig run held the migration lock for too long."""

    exit_code = 7


class StepFailed(WasmigError):
    """A step's SQL failed; its transaction was rolled back."""


class VerifyFailed(WasmigError):
    """The schema differs from what the revision promises. `findings` lists them."""

    exit_code = 3

    def __init__(self, revision, findings: list):
        from .plugin import field

        def one(f) -> str:
            loc = field(f, "location")
            return f"{field(f, 'rule')}{' ' + loc if loc else ''}: {field(f, 'message')}"

        shown = "; ".join(one(f) for f in findings[:5])
        more = f"; and {len(findings) - 5} more" if len(findings) > 5 else ""
        super().__init__(
            f"verify found {len(findings)} mismatch(es) with what {revision or 'the empty chain'} promises: {shown}{more}"
        )
        self.revision = revision
        self.findings = findings
