"""Connection sizing: does the PostgreSQL server have room for the fleet about to start?

Each hpo process holds one pooled connection (a worker, the supervisor, a dashboard), so a
fleet of W workers needs W + 1. A server with fewer free slots refuses the rest, each in one
line (:mod:`hpo.store.opening`); this check says so once, before anything starts, with the
figures to size by. Behind a pooler (PgBouncer) the server's slots are not the limit, so the
check stands aside when the server's port is not the URL's.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpo.store.urls import kind, one_off_connection, sqlalchemy_url


@dataclass(frozen=True)
class Slots:
    max_connections: int
    reserved: int  # superuser_reserved_connections: not for ordinary logins
    in_use: int  # client backends connected now

    @property
    def free(self) -> int:
        return self.max_connections - self.reserved - self.in_use


def server_slots(url: str) -> Slots | None:
    """The server's connection slots, or None where they do not bound the fleet (not
    PostgreSQL, behind a pooler) or cannot be read (opening the study will say why)."""
    if kind(url) != "postgresql":
        return None
    import sqlalchemy

    try:
        with one_off_connection(url, timeout=5) as conn:
            row = conn.execute(sqlalchemy.text(
                "SELECT current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int, "
                "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
                " inet_server_port()")).one()
    except sqlalchemy.exc.SQLAlchemyError:
        return None
    port = sqlalchemy.engine.make_url(sqlalchemy_url(url)).port or 5432
    if row[3] is not None and row[3] != port:
        return None  # a pooler in between: its own limits apply
    # This check's own connection was one of those in use; it is closed now.
    return Slots(int(row[0]), int(row[1]), max(0, int(row[2]) - 1))


def headroom_warning(url: str, workers: int) -> str | None:
    """One line when ``workers`` plus their supervisor need more connections than the server
    has free; None when they fit or it cannot tell."""
    slots = server_slots(url)
    needed = workers + 1
    if slots is None or needed <= slots.free:
        return None
    return (f"{workers} worker(s) and their supervisor need {needed} connections, but the "
            f"server has {max(0, slots.free)} free (max_connections={slots.max_connections}, "
            f"{slots.in_use} in use, {slots.reserved} reserved for superusers): the rest will "
            "be refused; lower --workers, raise max_connections, or put PgBouncer in front "
            "(connections = workers + supervisors + dashboards)")
