"""Who takes part in a postmortem's review: each person with a role and the part of the organisation they speak for.

The list is stored with the postmortem (a PATCH replaces it, and each change is a revision of the postmortem).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from app.vocabulary import ParticipantRole

MAX_PARTICIPANTS = 100


def _stripped(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    who: Annotated[str, Field(min_length=1, max_length=255, description="e-mail (as in people.yaml) or name")]
    role: ParticipantRole
    function: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the part of the organisation they speak for: engineering, support, …"
    )

    _who = field_validator("who")(_stripped)

    @field_validator("function")
    @classmethod
    def _function(cls, value: str | None) -> str | None:
        return None if value is None else _stripped(value)

    @field_validator("role", mode="before")
    @classmethod
    def _known_role(cls, value: Any) -> Any:
        # Named in the answer: a typo in a role ("facilitatr") should say which word was not understood.
        if isinstance(value, str) and value not in {role.value for role in ParticipantRole}:
            roles = ", ".join(ParticipantRole)
            raise ValueError(f"unknown role {value[:64]!r}: the roles are {roles}")
        return value

    @property
    def key(self) -> str:
        return self.who.lower()


def _one_facilitator_and_no_repeats(people: list[Participant]) -> list[Participant]:
    facilitators = [p.who for p in people if p.role == ParticipantRole.FACILITATOR]
    if len(facilitators) > 1:
        raise ValueError(f"one facilitator at most, not {len(facilitators)} ({', '.join(facilitators)})")
    seen: set[tuple[str, str]] = set()
    for person in people:
        if (person.key, person.role) in seen:
            raise ValueError(f"{person.who} is listed twice as {person.role}")
        seen.add((person.key, person.role))
    return people


Participants = Annotated[
    list[Participant], Field(max_length=MAX_PARTICIPANTS), AfterValidator(_one_facilitator_and_no_repeats)
]
PARTICIPANTS = TypeAdapter[list[Participant]](Participants)
# How the list is kept: read back as stored, without the input checks (a row never fails to load).
STORED = TypeAdapter(list[Participant])


def with_role(people: list[Participant], role: ParticipantRole) -> list[Participant]:
    return [p for p in people if p.role == role]


def facilitator(people: list[Participant]) -> Participant | None:
    found = with_role(people, ParticipantRole.FACILITATOR)
    return found[0] if found else None
