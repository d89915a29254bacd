"""Caps on what accounts hold at once on one replica: a share per account, and optionally a total.

Event streams and long polls each cost a connection, a task and a database listener slot for as long as
they last, and the request rate limit counts them once: without a cap, one key could hold thousands open
(one unit each). Files being received or fetched take scratch space until they are stored, as many bytes
as they may grow to (a sent file its declared length, a fetched one the upload limit): without a cap, a few
large fetches fill the volume and evict the pod with every tenant's requests on it. The counts are per
replica (in-process resources); N replicas allow an account N times its share.
"""

from collections import Counter
from collections.abc import Callable
from enum import StrEnum


class SlotScope(StrEnum):
    ACCOUNT = "account"
    REPLICA = "replica"


class NoSlotFree(Exception):
    """The account's share (`ACCOUNT`) or the replica's total (`REPLICA`) has no room for what was asked."""

    def __init__(self, scope: SlotScope, limit: int) -> None:
        super().__init__(f"the {scope.value}'s limit of {limit} is taken")
        self.scope = scope
        self.limit = limit


class AccountSlots:
    def __init__(self, per_account: int, total: int | None = None) -> None:
        if per_account < 1 or (total is not None and total < 1):
            raise ValueError("slot limits must be at least 1")
        self.per_account = per_account
        self.total = total
        self._held: Counter[str] = Counter()

    @property
    def held(self) -> int:
        return self._held.total()

    def take(self, owner: str, amount: int = 1) -> Callable[[], None]:
        """Hold `amount` of the owner's share; the returned function gives it back (calling it again is
        harmless). NoSlotFree when the account's (checked first) or the replica's room is short."""
        if amount < 1:
            raise ValueError("take at least 1")
        if self._held[owner] + amount > self.per_account:
            raise NoSlotFree(SlotScope.ACCOUNT, self.per_account)
        if self.total is not None and self.held + amount > self.total:
            raise NoSlotFree(SlotScope.REPLICA, self.total)
        self._held[owner] += amount
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._held[owner] -= amount
                if self._held[owner] <= 0:
                    del self._held[owner]

        return release
