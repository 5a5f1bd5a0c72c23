"""A migration before it starts: its options, the servers, what will be copied, blockers.

Engines (``postgres``, ``mariadb``, ``sqlite``) produce a :class:`Plan`; the CLI shows it (and
stops there on ``--dry-run``); nothing here holds a password (URLs are kept masked).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["offline", "online"]
MODES = ("offline", "online")


@dataclass(frozen=True)
class MigrateOptions:
    mode: Mode = "offline"
    jobs: int = 2  # parallel table copies / index builds
    force: bool = False  # a target database that is not empty is emptied first
    dry_run: bool = False  # plan only
    verify: bool = True  # verify after the copy (always in the cutover window of online mode)
    #: online: switch when the target is at most this far behind (bytes of WAL / binlog)
    max_lag_bytes: int = 1 << 20
    #: online: give up the cutover (unfreeze the source) if draining takes longer than this
    cutover_timeout: float = 30.0
    #: online: a command run inside the cutover window to point the application at the target
    on_switch: str | None = None
    #: large tables are split into ranges of about this many rows for parallel copy/checksums
    chunk_rows: int = 100_000
    #: accounts that exist on the target by design (a site's own database user): their grants
    #: there are not differences
    target_accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerInfo:
    """What a probe of a database server found (version as a tuple, e.g. (15, 4))."""

    engine: str
    version: tuple[int, ...]
    version_text: str
    database_bytes: int = 0
    settings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TablePlan:
    name: str  # schema-qualified where the engine has schemas: public.products
    rows: int  # estimate from the catalog
    bytes: int
    primary_key: tuple[str, ...] = ()  # empty: none (copied whole, checked whole)
    chunks: int = 1


@dataclass(frozen=True)
class Blocker:
    """Something that stops the migration before anything changes (``fatal``), or a warning."""

    code: str  # no-primary-key, large-objects, extension-missing, downgrade, disk, not-empty, …
    message: str
    hint: str = ""
    fatal: bool = True


@dataclass
class Plan:
    engine: str
    mode: Mode
    source: str  # masked URL
    target: str  # masked URL
    source_version: str
    target_version: str
    tables: list[TablePlan] = field(default_factory=list)
    blockers: list[Blocker] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)  # kind -> count (views, functions…)
    estimated_seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def fatal(self) -> list[Blocker]:
        return [b for b in self.blockers if b.fatal]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(total_bytes=self.total_bytes, total_rows=self.total_rows)
        return data
