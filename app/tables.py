"""Every table module, imported so the shared metadata is complete (Alembic autogenerate and migrations)."""

from app.actions import Action, ActionFinding
from app.budget import WriteBudget, WriteSlot
from app.findings import Finding
from app.inbox import InboundEvent
from app.incidents import Incident, TimelineEntry
from app.installation import Installation
from app.jobs import Job, Schedule
from app.ledger import LedgerEntry
from app.postmortems import Postmortem, PostmortemRevision
from app.tokens import ApiToken
from app.tracking import PollCursor

__all__ = [
    "Action",
    "ActionFinding",
    "ApiToken",
    "Finding",
    "InboundEvent",
    "Incident",
    "Installation",
    "Job",
    "LedgerEntry",
    "PollCursor",
    "Postmortem",
    "PostmortemRevision",
    "Schedule",
    "TimelineEntry",
    "WriteBudget",
    "WriteSlot",
]
