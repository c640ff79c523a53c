"""What the engine returns: one Result per patient, and the error of a broken knowledge base."""

from __future__ import annotations

from dataclasses import dataclass, field


class EngineError(Exception):
    """clingo failed on a knowledge base (a KB bug, not a patient's property)."""


class GroundingStopped(EngineError):
    """Grounding passed its time or memory limit (a rule that grounds without end); the
    message names the knowledge base (:mod:`pyasp_screen.knowledge.grounding`)."""


@dataclass
class Result:
    """The screening result of one patient.

    statuses: criterion or component ID -> met | not_met | unknown;
    verdicts: population -> eligible | ineligible | undetermined; overall: the same words;
    contradictions: condition IDs both held and failed (a knowledge-base error).
    """

    patient: str
    statuses: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    overall: str = "undetermined"
    contradictions: list[str] = field(default_factory=list)
