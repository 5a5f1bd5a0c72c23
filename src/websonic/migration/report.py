"""A migration while and after it runs: progress updates, results, verification reports.

Every report turns into JSON with ``to_json()`` (what ``--json`` prints and the run's record
keeps); nothing here holds a password.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from websonic.migration.plan import Mode, Plan

Phase = Literal[
    "plan", "schema", "copy", "indexes", "catch-up", "cutover", "verify", "cleanup", "done"
]


@dataclass(frozen=True)
class Progress:
    """One update for the progress display (and the job's log)."""

    phase: Phase
    message: str = ""
    tables_done: int = 0
    tables_total: int = 0
    rows: int = 0
    bytes: int = 0
    bytes_total: int = 0
    lag_bytes: int | None = None  # online: how far the target is behind the source


@dataclass
class TableResult:
    name: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class TableCheck:
    name: str
    source_rows: int
    target_rows: int
    chunks: int = 1
    mismatched: list[str] = field(default_factory=list)  # the key ranges whose checksums differ

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and not self.mismatched


ACCOUNT_KINDS = ("grant", "role", "user", "account")


@dataclass(frozen=True)
class Difference:
    """One object that differs between source and target (or exists on one side only)."""

    kind: str  # table, column, index, constraint, view, materialized view, function, trigger,
    #            sequence, extension, grant
    name: str
    source: str | None  # its definition on the source (None: missing there)
    target: str | None


@dataclass
class VerifyReport:
    tables: list[TableCheck] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.differences and all(t.ok for t in self.tables)

    def expecting(self, accounts: tuple[str, ...]) -> VerifyReport:
        """Without the differences that are the target's own accounts (a site's database user
        made on its server by WebSonic): grants and roles that exist on the target only."""
        if not accounts:
            return self
        names = {f"'{a}'@" for a in accounts} | {f'"{a}"' for a in accounts} | set(accounts)
        kept = [
            d for d in self.differences
            if not (d.kind in ACCOUNT_KINDS and d.source is None
                    and any(name in d.name for name in names))
        ]  # fmt: skip
        return VerifyReport(self.tables, kept, self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "tables": [{**asdict(t), "ok": t.ok} for t in self.tables],
            "differences": [asdict(d) for d in self.differences],
        }


@dataclass
class MigrateReport:
    run: int | None
    engine: str
    mode: Mode
    source: str
    target: str
    status: str  # succeeded | failed | stopped | planned
    tables: list[TableResult] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase
    seconds: float = 0.0
    write_downtime_seconds: float | None = None  # online: writes frozen -> switched
    resumed: bool = False
    verify: VerifyReport | None = None
    errors: list[str] = field(default_factory=list)
    plan: Plan | None = None
    notes: list[str] = field(default_factory=list)  # what the user should know (how to undo…)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded" and (self.verify is None or self.verify.ok)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ok=self.ok, rows=self.rows, bytes=self.bytes)
        data["verify"] = self.verify.to_json() if self.verify else None
        data["plan"] = self.plan.to_json() if self.plan else None
        return data
