"""The platform's vocabulary as every page names it: one wording per status, role, rule, stage and event.

Each table maps the API's value to a message id (N_), translated where it is shown; the Chinese is in
locales/zh/LC_MESSAGES/labels.po. Templates show a value with `{{ value|label("match_status") }}`, or
`m.status_badge("match_status", value)`; a value the table does not know is shown as the API sent it, so
a status added to the API later is still readable before it gets its own words.
"""

from __future__ import annotations

from gateway.web.i18n import N_, gettext

NEED_STATUS = {
    "draft": N_("Draft"), "open": N_("Open"), "fulfilled": N_("Fulfilled"), "closed": N_("Closed"),
    "cancelled": N_("Cancelled"),
}
OFFER_STATUS = {
    "active": N_("Open for pledges"), "paused": N_("Paused"), "withdrawn": N_("Withdrawn"), "exhausted": N_("Used up"),
}
MATCH_STATUS = {
    "proposed": N_("Awaiting approval"), "approving": N_("Being approved"), "approved": N_("Approved"),
    "failed": N_("Approval failed"), "rejected": N_("Rejected"), "cancelled": N_("Cancelled"),
    "superseded": N_("Superseded"), "delivered": N_("Delivered"), "received": N_("Received"),
    "cancelling": N_("Being cancelled"),
}
RUN_STATUS = {"queued": N_("Queued"), "running": N_("Running"), "finished": N_("Finished"), "failed": N_("Failed")}
RUN_STAGE = {
    "queued": N_("Waiting to start"), "loading": N_("Loading needs and offers"), "scoring": N_("Scoring candidate pairs"),
    "allocating": N_("Allocating quantities"), "explaining": N_("Explaining the choices"),
    "writing": N_("Writing proposals"), "finished": N_("Finished"), "failed": N_("Failed"),
}
PAIRING_STATUS = {"active": N_("Active"), "ended": N_("Ended")}
ROLE = {
    "officer": N_("Village officer"), "org_member": N_("Organisation member"), "coordinator": N_("Coordinator"),
    "admin": N_("Admin"), "service": N_("Service"),
}
# The matching rules, in the order the rule set lists them.
RULE = {
    "proximity": N_("Proximity"), "coverage": N_("Coverage"), "urgency": N_("Urgency"), "deadline": N_("Deadline"),
    "pairing": N_("Pairing"), "grade": N_("Organisation grade"), "equity": N_("Equity between villages"),
    "beneficiaries": N_("People reached"),
}
MATCH_ORIGIN = {"run": N_("Match run"), "coordinator": N_("Coordinator's proposal"), "pledge": N_("Organisation's pledge")}
UNMATCHED = {
    "no_candidate": N_("No suitable offer"), "capacity_taken": N_("Offers already taken"),
    "zero_score": N_("No worthwhile offer"), "not_selected": N_("Not selected"),
}
ORG_TYPE = {
    "social_organisation": N_("Social organisation"), "foundation": N_("Foundation"), "enterprise": N_("Enterprise"),
    "party_branch": N_("Party organisation"), "volunteer_team": N_("Volunteer team"), "school": N_("School"),
    "other": N_("Other"),
}
# What happened to a match (its audit trail); the approval saga's internal steps share one label.
MATCH_EVENT = {
    "propose": N_("Proposed"), "pledge": N_("Pledged"), "approve": N_("Approval started"), "approved": N_("Approved"),
    "failed": N_("Approval failed"), "reject": N_("Rejected"), "cancel": N_("Cancellation started"),
    "cancelled": N_("Cancelled"), "deliver": N_("Delivery recorded"), "receive": N_("Receipt confirmed"),
    "follow_up": N_("Follow-up visit"),
}
SAGA_STEP = N_("Processing step")
# What happened to a need (its history).
NEED_EVENT = {
    "created": N_("Posted"), "updated": N_("Changed"), "closed": N_("Closed"), "cancelled": N_("Cancelled"),
    "committed": N_("Committed by a match"), "released": N_("Commitment released"), "delivered": N_("Delivery recorded"),
}

VOCABULARIES: dict[str, dict[str, str]] = {
    "need_status": NEED_STATUS, "offer_status": OFFER_STATUS, "match_status": MATCH_STATUS, "run_status": RUN_STATUS,
    "run_stage": RUN_STAGE, "pairing_status": PAIRING_STATUS, "role": ROLE, "rule": RULE, "match_origin": MATCH_ORIGIN,
    "unmatched": UNMATCHED, "org_type": ORG_TYPE, "match_event": MATCH_EVENT, "need_event": NEED_EVENT,
}


def label(value: object, vocabulary: str) -> str:
    """`value` in the words of the page's language; '—' for none, and an unknown value as the API sent it."""
    if value is None or value == "":
        return "—"
    key = str(value)
    labels = VOCABULARIES[vocabulary]
    if key in labels:
        return gettext(labels[key])
    if vocabulary == "match_event" and key.startswith("saga_"):
        return gettext(SAGA_STEP)
    return key
