"""Uploads nobody claimed are removed once their URL has long expired (and event bodies the broker no
longer refers to, shared.claim_check).

A presigned upload that is never analysed would otherwise stay in the bucket for good (a free account
could fill it). An analysed one is copied to a frozen key and removed at once, so whatever stays under
`uploads/` past its URL's lifetime and a grace for the analysis request is unclaimed. Every replica may
run this: removing an object twice is harmless.
"""

import asyncio
import logging
from datetime import timedelta

from shared.claim_check import expire_claims
from shared.storage import ObjectStore

from .intake import KEY_ROOT

logger = logging.getLogger(__name__)


def expire_unclaimed_uploads(
    store: ObjectStore, bucket: str, older_than: timedelta, prefix: str = f"{KEY_ROOT}/"
) -> list[str]:
    """Remove the uploads (under `prefix`) last written more than `older_than` ago; their keys."""
    if not prefix.startswith(f"{KEY_ROOT}/"):
        raise ValueError(f"only uploads expire, not {prefix!r}")
    return store.remove_older_than(bucket, prefix, older_than)


async def run_upload_expiry(
    store: ObjectStore, bucket: str, older_than: timedelta, interval_s: float
) -> None:
    """Expire unclaimed uploads, and the bodies of events the broker no longer keeps, every `interval_s`
    until cancelled."""
    while True:
        try:
            expired = await asyncio.to_thread(expire_unclaimed_uploads, store, bucket, older_than)
            if expired:
                logger.info("removed %d unclaimed uploads", len(expired))
            bodies = await asyncio.to_thread(expire_claims, store, bucket)
            if bodies:
                logger.info("removed %d event bodies past the topics' retention", len(bodies))
        except Exception:
            logger.exception("expiring unclaimed uploads failed")
        await asyncio.sleep(interval_s)
