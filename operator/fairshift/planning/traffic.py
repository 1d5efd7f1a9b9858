"""Traffic and replicas each phase wants, and the writes that get the world there.

Level-triggered: the desired weights follow from the phase and the step; a write is planned
only where the observed world differs. A degrade in force (``status.fallback``) takes its
share from the model in every phase until it ends, and the canary's step weight is a share
of what remains; a kill with a fallback sends everything there.
"""

from __future__ import annotations

from fairshift.api.spec import Step
from fairshift.api.status import Phase
from fairshift.api.traffic import Weights
from fairshift.engine.machine import DESIRED
from fairshift.planning.draft import Draft
from fairshift.planning.observation import Observation
from fairshift.planning.plan import EnsureFallbackService, ScaleCandidate, ScalePrimary, SetTraffic

ROUTE_RECHECK = 3.0


def step_weight(steps: list[Step], index: int | None) -> int:
    """The canary weight in force at step ``index``: the last setWeight at or before it."""
    if index is None:
        return 0
    weight = 0
    for step in steps[: index + 1]:
        if step.set_weight is not None:
            weight = step.set_weight
    return weight


def fallback_weight(draft: Draft) -> int:
    """Percent of traffic on the fallback: all of it after a kill with a fallback, the
    degrade's share while one is in force, else none (and none once the spec no longer
    names a fallback: there is nothing to route to)."""
    if killed_to_fallback(draft):
        return 100
    share = draft.status.fallback
    return share.percent if share is not None and draft.spec.fallback_ref is not None else 0


def killed_to_fallback(draft: Draft) -> bool:
    """A kill that keeps the model deployed; without a fallbackRef now, it scales to zero."""
    killed = draft.status.killed
    declared = draft.spec.fallback_ref is not None
    return draft.phase is Phase.KILLED and killed is not None and killed.fallback and declared


def current_weight(draft: Draft) -> int:
    if draft.phase is Phase.CANARY:
        weight = step_weight(draft.spec.strategy.canary.steps, draft.status.current_step)
        return round(weight * (100 - fallback_weight(draft)) / 100)
    if draft.phase is Phase.PAUSED:
        return draft.status.canary_weight
    return 0


def desired_weights(draft: Draft) -> Weights:
    desired = DESIRED[draft.phase]
    shadow = draft.spec.strategy.shadow
    mirror = 0
    if draft.phase is Phase.SHADOW and shadow is not None:
        mirror = shadow.mirror_percent
    elif draft.phase is Phase.PAUSED and desired.mirror:
        mirror = draft.status.mirror_percent
    fallback = fallback_weight(draft)
    canary = min(current_weight(draft), 100 - fallback) if desired.route_canary else 0
    return Weights.canary_share(canary, mirror, fallback)


def route(draft: Draft, observed: Observation, wanted: Weights) -> None:
    """Plan the route write when the live route differs; status shows what is wanted."""
    if observed.route.weights != wanted:
        if wanted.fallback > 0:
            draft.write(EnsureFallbackService())
        draft.write(SetTraffic(wanted))
    show(draft, wanted)


def show(draft: Draft, wanted: Weights) -> None:
    draft.set(
        canary_weight=wanted.canary,
        mirror_percent=wanted.mirror_percent,
        fallback_weight=wanted.fallback,
    )


def traffic_shown(draft: Draft, observed: Observation, explain: bool = True) -> bool:
    """The route sends what this phase and step want, read back; otherwise write and wait.

    ``explain=False`` keeps status's message (a rollback keeps saying why it happens).
    """
    wanted = desired_weights(draft)
    if observed.route.shows(wanted):
        show(draft, wanted)
        return True
    route(draft, observed, wanted)
    if explain:
        draft.say("waiting for the route to show the new weights", "RouteNotReady")
    draft.check_within(ROUTE_RECHECK)
    return False


def scale_candidate(draft: Draft, observed: Observation, replicas: int) -> None:
    """The candidate (the user's Deployment) to ``replicas``, unless the router owns replicas."""
    if draft.spec.routing.kind == "replicas":
        return
    target = observed.target
    if target is not None and target.replicas == replicas:
        return
    draft.write(ScaleCandidate(replicas))


def converge(draft: Draft, observed: Observation) -> None:
    """Make traffic and the candidate's replicas match the phase (idempotent)."""
    desired = DESIRED[draft.phase]
    if draft.phase in (Phase.PROMOTING, Phase.ROLLING_BACK, Phase.RESTORING, Phase.INITIALIZING):
        return
    serve_or_kill(draft, observed)
    if observed.target is not None and desired.candidate_scaled:
        primary = observed.primary
        scale_candidate(draft, observed, max(primary.replicas if primary else 1, 1))
    # a killed model is out of the path: no route to keep, unless a fallback takes it all
    if desired.primary_serving or killed_to_fallback(draft):
        route(draft, observed, desired_weights(draft))
    if observed.target is not None and not desired.candidate_scaled:
        scale_candidate(draft, observed, 0)
    show_conditions(draft)


def serve_or_kill(draft: Draft, observed: Observation) -> None:
    """The primary at zero while killed (deployed still when a fallback takes the traffic);
    after a revive, back to its replicas before."""
    primary, killed = observed.primary, draft.status.killed
    if primary is None:
        return
    if killed_to_fallback(draft):
        return
    if not DESIRED[draft.phase].primary_serving:
        if primary.replicas != 0:
            draft.write(ScalePrimary(0))
    elif killed is not None:
        if primary.replicas != killed.replicas:
            draft.write(ScalePrimary(killed.replicas))
        elif primary.available:
            draft.set(killed=None)


def show_conditions(draft: Draft) -> None:
    phase, desired = draft.phase, DESIRED[draft.phase]
    progressing = phase in (Phase.SHADOW, Phase.CANARY, Phase.PROMOTING)
    draft.condition(
        "Progressing", "True" if progressing else "False", phase.value, draft.status.message
    )
    draft.condition(
        "Paused",
        "True" if phase is Phase.PAUSED else "False",
        draft.status.paused_reason or "",
        "",
    )
    completed = desired.terminal and phase is not Phase.IDLE
    draft.condition("Completed", "True" if completed else "False", phase.value, "")
