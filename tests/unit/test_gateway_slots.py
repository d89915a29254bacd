"""What an account (and a replica) may hold at once: slots taken and given back."""

import pytest

from services.gateway.settings import Settings
from services.gateway.slots import AccountSlots, NoSlotFree, SlotScope


def test_an_account_holds_its_share_and_gets_it_back() -> None:
    slots = AccountSlots(per_account=2)
    releases = [slots.take("a"), slots.take("a")]
    with pytest.raises(NoSlotFree) as refused:
        slots.take("a")
    assert (refused.value.scope, refused.value.limit) == (SlotScope.ACCOUNT, 2)
    slots.take("b")  # another account's share is its own
    releases[0]()
    releases[0]()  # giving back twice gives back once
    slots.take("a")
    with pytest.raises(NoSlotFree):
        slots.take("a")


def test_the_replica_total_bounds_all_accounts_together() -> None:
    slots = AccountSlots(per_account=2, total=3)
    release = slots.take("a")
    slots.take("a")
    slots.take("b")
    with pytest.raises(NoSlotFree) as refused:
        slots.take("c")
    assert (refused.value.scope, refused.value.limit) == (SlotScope.REPLICA, 3)
    with pytest.raises(NoSlotFree) as own:
        slots.take("a")  # the account's own cap is named first
    assert own.value.scope is SlotScope.ACCOUNT
    release()
    slots.take("c")
    assert slots.held == 3


def test_an_amount_is_taken_and_given_back_whole() -> None:
    slots = AccountSlots(per_account=100, total=150)
    release = slots.take("a", 60)
    with pytest.raises(NoSlotFree) as refused:
        slots.take("a", 41)
    assert refused.value.scope is SlotScope.ACCOUNT
    slots.take("a", 40)
    with pytest.raises(NoSlotFree) as full:
        slots.take("b", 51)
    assert full.value.scope is SlotScope.REPLICA
    release()
    slots.take("b", 51)
    assert slots.held == 91


def test_an_account_share_of_the_scratch_volume_holds_a_largest_file_and_fits_the_volume() -> None:
    mib = 1024**2
    Settings(scratch_bytes=2048 * mib, scratch_bytes_per_account=1024 * mib, max_upload_bytes=512 * mib)
    for scratch, share in ((2048, 256), (512, 1024)):
        with pytest.raises(ValueError, match="EA_SCRATCH_BYTES_PER_ACCOUNT"):
            Settings(
                scratch_bytes=scratch * mib, scratch_bytes_per_account=share * mib, max_upload_bytes=512 * mib
            )
