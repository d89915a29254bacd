"""Key checks. Until accounts exist (the accounts issue), one static key from settings is one owner."""

import hmac

from pydantic import BaseModel


class Introspection(BaseModel):
    active: bool
    owner: str | None = None


def introspect(presented: str, *, static_key: str, static_owner: str) -> Introspection:
    if presented and hmac.compare_digest(presented.encode(), static_key.encode()):
        return Introspection(active=True, owner=static_owner)
    return Introspection(active=False)
