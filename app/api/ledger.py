"""Ledger routes: entries by action or postmortem, and the hash-chain check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app import ledger
from app.api.deps import ContextDep, Reader
from app.api.params import MAX_ID, Limit
from app.api.schemas import LedgerOut, Page, VerifyOut

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[LedgerOut])
def list_entries(
    context: ContextDep,
    _: Reader,
    action_id: OptionalId = None,
    postmortem_id: OptionalId = None,
    since_id: Annotated[int | None, Query(ge=0, le=MAX_ID, description="entries after this id")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,10}$")] = None,
    limit: Limit = 100,
) -> Page[LedgerOut]:
    after = min(int(cursor), MAX_ID) if cursor else since_id  # past the last possible id: an empty page
    with context.read() as session:
        rows, next_cursor = ledger.list_page(
            session, action_id=action_id, postmortem_id=postmortem_id, after=after, limit=limit
        )
        return Page(items=[LedgerOut.model_validate(r.model_dump()) for r in rows], next_cursor=next_cursor)


@router.get("/verify", response_model=VerifyOut, response_model_exclude_none=True)
def verify_chain(context: ContextDep, _: Reader) -> VerifyOut:
    with context.read() as session:
        ok, entries, first_bad, head = ledger.verify(session)
    return VerifyOut(ok=ok, entries=entries, first_bad_id=first_bad, head_hash=head)
