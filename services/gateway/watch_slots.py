"""A cap on the event streams and long polls one account holds open on a replica at once.

Each costs a connection, a task and a database listener slot for as long as it lasts, and the request rate
limit counts it once: without a cap, one key could hold thousands open. The count is per replica (these
are in-process resources); N replicas allow an account N times the cap.
"""

from collections import Counter
from collections.abc import Callable


class TooManyWatches(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this account already follows {limit} analyses at once (event streams and long polls); "
            "close one, or follow them with webhooks"
        )
        self.limit = limit


class WatchSlots:
    def __init__(self, per_account: int) -> None:
        self.per_account = per_account
        self._held: Counter[str] = Counter()

    def take(self, owner: str) -> Callable[[], None]:
        """Hold one of the owner's slots; the returned function gives it back (calling it again is harmless).
        TooManyWatches when all are held."""
        if self._held[owner] >= self.per_account:
            raise TooManyWatches(self.per_account)
        self._held[owner] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._held[owner] -= 1
                if self._held[owner] <= 0:
                    del self._held[owner]

        return release
