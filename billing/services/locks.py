"""PostgreSQL advisory locks: transaction-scoped ones serialise work per customer (or per singleton) across workers;
session-scoped claims keep a batch of customers to one worker across several transactions."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import connection


def advisory_lock(name: str) -> None:
    """Block until this transaction holds the named lock; released at commit or rollback."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


def lock_customer(customer_id: str) -> None:
    """All invoice mutations of one customer are serialised (as OpenMeter's billing customer lock)."""
    advisory_lock(f"billing:customer:{customer_id}")


def try_lock_customer(customer_id: str) -> bool:
    """Like `lock_customer`, but give up at once when another worker holds it (jobs skip that customer)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [f"billing:customer:{customer_id}"])
        return bool(cur.fetchone()[0])


def try_lock_customers(customer_ids: Sequence[str]) -> list[str]:
    """`try_lock_customer` for many customers in one statement: those this transaction now holds, in order."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM unnest(%s::varchar[]) WITH ORDINALITY AS c(id, n) "
            "WHERE pg_try_advisory_xact_lock(hashtext('billing:customer:' || id)) ORDER BY n",
            [list(customer_ids)],
        )
        return [row[0] for row in cur.fetchall()]


@contextmanager
def customers_claimed(purpose: str, customer_ids: Sequence[str]) -> Iterator[list[str]]:
    """Claim these customers for one piece of work that spans several transactions (a batch of period close: one
    transaction per chunk): yields those no other worker has claimed for `purpose`, in order, and releases them on
    exit. A worker that dies loses its claims with its connection. The key is not the customer lock's, so an API
    action on a claimed customer waits only for the transaction that holds its customer lock, not the batch."""
    prefix = f"billing:{purpose}:"
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM unnest(%s::varchar[]) WITH ORDINALITY AS c(id, n) "
            "WHERE pg_try_advisory_lock(hashtext(%s || id)) ORDER BY n",
            [list(customer_ids), prefix],
        )
        claimed = [row[0] for row in cur.fetchall()]
    try:
        yield claimed
    finally:
        if claimed:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtext(%s || id)) FROM unnest(%s::varchar[]) AS c(id)",
                            [prefix, claimed])
