"""A spend cap on the host's key: what each visitor may spend on it per day (UTC).

Each run on the host's key is charged its estimate when it starts, and refunded
if it fails or is stopped before fal runs it. A run that would pass the cap is
refused before anything is sent. Visitors who bring their own key are never
counted. The ledger is a table in the app's SQLite database, so it survives a
restart.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from backend.database import Database
from backend.errors import StudioError
from backend.pricing import format_usd


class OverBudget(StudioError):
    default_message = (
        "This run would pass what you may spend on the host's key today. "
        "Paste your own fal key to go on, or come back tomorrow."
    )


@dataclass(frozen=True)
class Charge:
    entry_id: int
    visitor: str
    usd: float


@dataclass(frozen=True)
class Allowance:
    limit_usd: float
    spent_usd: float

    @property
    def left_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd)

    def describe(self) -> str:
        """ "$0.41 of your $1.00 today" """
        return f"{format_usd(self.left_usd)} of your {format_usd(self.limit_usd)} today"


class Budget:
    """The ledger of one app; `limit_usd` None means no cap (nothing is recorded)."""

    def __init__(self, database: Database | None, limit_usd: float | None) -> None:
        self._database = database
        self.limit_usd = limit_usd if database is not None else None

    @property
    def enabled(self) -> bool:
        return self.limit_usd is not None

    async def charge(self, visitor: str, usd: float) -> Charge | None:
        """Record a run's estimate; OverBudget (nothing recorded) if it would pass the cap."""
        if self.limit_usd is None or self._database is None:
            return None
        limit = self.limit_usd

        def charge(connection: sqlite3.Connection) -> Charge:
            day = _today()
            spent = _spent(connection, visitor, day)
            if spent + usd > limit + 1e-9:
                left = max(0.0, limit - spent)
                raise OverBudget(
                    f"This run would cost ≈ {format_usd(usd)}, and {format_usd(left)} of your "
                    f"{format_usd(limit)} a day on the host's key is left. Paste your own fal "
                    "key to go on, or come back tomorrow (UTC)."
                )
            cursor = connection.execute(
                "INSERT INTO host_key_spend (visitor, day, usd) VALUES (?, ?, ?)",
                (visitor, day, usd),
            )
            return Charge(int(cursor.lastrowid or 0), visitor, usd)

        return await self._database.run(charge)

    async def refund(self, charge: Charge) -> None:
        """Take a charge back: the run failed, or was stopped before fal ran it."""
        if self._database is None:
            return

        def refund(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE host_key_spend SET refunded = 1 WHERE id = ?", (charge.entry_id,)
            )

        await self._database.run(refund)

    async def allowance(self, visitor: str) -> Allowance | None:
        """What `visitor` may still spend today; None when there is no cap."""
        if self.limit_usd is None or self._database is None:
            return None
        limit = self.limit_usd

        def read(connection: sqlite3.Connection) -> Allowance:
            return Allowance(limit, _spent(connection, visitor, _today()))

        return await self._database.run(read)


def _spent(connection: sqlite3.Connection, visitor: str, day: str) -> float:
    row = connection.execute(
        "SELECT COALESCE(SUM(usd), 0) FROM host_key_spend "
        "WHERE visitor = ? AND day = ? AND refunded = 0",
        (visitor, day),
    ).fetchone()
    return float(row[0])


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
