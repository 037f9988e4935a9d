"""Which submissions a data manager means: one filter shared by exports, bulk review and
the feeds, so that "approved, from device X, last week" selects the same rows everywhere.

``matching(f, form_id)`` selects ``(Submission.id, SubmissionDef.id)`` pairs: the current
version of each live submission, or every version when ``include_history`` is set. Deleted
submissions never match. Callers add their own ordering and columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, select

from server.models import FormDef, Submission, SubmissionDef


@dataclass(frozen=True)
class SubmissionFilter:
    submitted_from: dt.datetime | None = None
    """Submissions first received at or after this instant."""
    submitted_to: dt.datetime | None = None
    """Submissions first received before this instant (exclusive)."""
    submitter_user_ids: tuple[int, ...] = ()
    submitter_app_user_ids: tuple[int, ...] = ()
    device_ids: tuple[str, ...] = ()
    review_states: tuple[str, ...] = ()
    form_versions: tuple[str, ...] = ()
    """Form versions (the ``version`` string) the matching version was submitted against."""
    include_history: bool = False
    """Every version of edited submissions, not only the current one."""
    draft: bool = False

    def conditions(self, form_id: int) -> list[ColumnElement[bool]]:
        """WHERE terms over ``Submission`` and ``SubmissionDef`` (joined by submission_id)."""
        terms: list[ColumnElement[bool]] = [
            Submission.form_id == form_id,
            Submission.draft.is_(self.draft),
            Submission.deleted_at.is_(None),
        ]
        if not self.include_history:
            terms.append(SubmissionDef.current.is_(True))
        if self.submitted_from is not None:
            terms.append(Submission.created_at >= self.submitted_from)
        if self.submitted_to is not None:
            terms.append(Submission.created_at < self.submitted_to)
        submitters: list[ColumnElement[bool]] = []
        if self.submitter_user_ids:
            submitters.append(Submission.submitter_user_id.in_(self.submitter_user_ids))
        if self.submitter_app_user_ids:
            submitters.append(
                Submission.submitter_app_user_id.in_(self.submitter_app_user_ids))
        if submitters:
            terms.append(submitters[0] if len(submitters) == 1 else submitters[0] | submitters[1])
        if self.device_ids:
            terms.append(Submission.device_id.in_(self.device_ids))
        if self.review_states:
            terms.append(Submission.review_state.in_(self.review_states))
        if self.form_versions:
            terms.append(SubmissionDef.form_def_id.in_(
                select(FormDef.id).where(FormDef.form_id == form_id,
                                         FormDef.version.in_(self.form_versions))))
        return terms


def matching(f: SubmissionFilter, form_id: int) -> Select[tuple[int, int]]:
    """``(submission id, submission def id)`` of every version the filter selects."""
    return (select(Submission.id, SubmissionDef.id)
            .join(SubmissionDef, SubmissionDef.submission_id == Submission.id)
            .where(*f.conditions(form_id)))
