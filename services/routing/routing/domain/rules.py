"""Routing rules: parsing and validation of the rules document, matching directives, deriving tasks."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from routing.domain.calendar import WorkingCalendar
from routing.domain.errors import RuleIssue, RuleSetInvalid
from routing.domain.matching import OPERATORS, Condition, FieldMatch, InvalidPattern
from routing.domain.tasks import ROLE_RANK, Role
from routing.domain.units import Unit

MATCH_FIELDS = ("issuer", "document_type", "notation", "subject", "urgency")
URGENCIES = ("thuong", "khan", "thuong_khan", "hoa_toc")
RULE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Applied to stripped text, with no two quantifiers able to trade characters: linear on any input.
_NUMBER_RE = re.compile(r"^\d+\s*[/-]\s*(\S.*)$")
# Bounds on what a rule set may hold and on what a match looks at, so neither storing nor evaluating a rule
# can be made arbitrarily slow or large by its text.
MAX_RULES = 1000
MAX_TEMPLATES = 100
MAX_VALUES = 100  # operands of one operator, and units or groups of one template
MAX_VALUE = 300  # characters of one operand
MAX_DESCRIPTION = 2000
MAX_TITLE = 1000
MAX_INSTRUCTIONS = 4000
MAX_FACT = 2000  # characters of a directive field that matching looks at (intake's subject is at most 500)
MAX_NUMBER = 200


@dataclass(frozen=True)
class DueSpec:
    """How a deadline is set: `working_days` after arrival, a fixed `date`, or the `directive`'s own."""

    kind: str
    working_days: int = 0
    on: date | None = None


@dataclass(frozen=True)
class TaskTemplate:
    units: tuple[str, ...]
    groups: tuple[str, ...]
    role: Role
    title: str | None = None
    instructions: str | None = None
    due: DueSpec | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    match: tuple[FieldMatch, ...]
    tasks: tuple[TaskTemplate, ...]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    default_due: Mapping[str, DueSpec] = field(default_factory=dict)
    format_version: int = 1


@dataclass(frozen=True)
class DirectiveFacts:
    """What rules look at in a directive, taken from intake's registration event."""

    arrival_date: date
    issuer_name: str = ""
    issuer_code: str = ""
    document_type: str = ""
    number: str = ""
    notation: str = ""
    subject: str = ""
    urgency: str = "thuong"
    due_date: date | None = None

    def candidates(self, name: str) -> list[str]:
        return [value[:MAX_FACT] for value in self._candidates(name)]

    def _candidates(self, name: str) -> list[str]:
        if name == "issuer":
            return [self.issuer_name, self.issuer_code]
        if name == "notation":
            # Intake may send the notation apart or only inside the number ("120/KH-BCĐ", "171-CV/BTGTU").
            return [self.notation or notation_of(self.number)]
        if name == "document_type":
            return [self.document_type]
        if name == "subject":
            return [self.subject]
        return [self.urgency]


def notation_of(number: str) -> str:
    """The ký hiệu part of a number: "120/KH-BCĐ" → "KH-BCĐ", "171-CV/BTGTU" → "CV/BTGTU".

    Only the first MAX_NUMBER characters after the padding count: a number is short, a long one costs no more.
    """
    text = (number or "").strip()[:MAX_NUMBER].rstrip()
    m = _NUMBER_RE.match(text)
    return m.group(1).rstrip() if m else text


@dataclass(frozen=True)
class PlannedTask:
    """A task a rule set would create for one unit."""

    unit: str
    role: Role
    title: str
    instructions: str | None
    due_date: date | None
    rule_id: str | None
    template: int | None = None


@dataclass(frozen=True)
class Derivation:
    matched_rules: tuple[str, ...]
    tasks: tuple[PlannedTask, ...]


class _Collector:
    def __init__(self) -> None:
        self.issues: list[RuleIssue] = []

    def add(self, rule: str, fld: str, message: str) -> None:
        self.issues.append(RuleIssue(rule, fld, message))


def _strings(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _parse_due(raw: object, rule: str, fld: str, out: _Collector) -> DueSpec | None:
    if raw == "directive":
        return DueSpec("directive")
    if not isinstance(raw, Mapping) or len(raw) != 1:
        out.add(rule, fld, "due must be one of {working_days: N}, {date: YYYY-MM-DD} or {directive: true}")
        return None
    ((kind, value),) = raw.items()
    if kind == "working_days":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
            out.add(rule, f"{fld}.working_days", "must be a whole number from 0 to 365")
            return None
        return DueSpec("working_days", working_days=value)
    if kind == "date":
        if isinstance(value, date):
            return DueSpec("date", on=value)
        try:
            return DueSpec("date", on=date.fromisoformat(str(value)))
        except ValueError:
            out.add(rule, f"{fld}.date", f"not a date (YYYY-MM-DD): {value!r}")
            return None
    if kind == "directive":
        if value is not True:
            out.add(rule, f"{fld}.directive", "must be true")
            return None
        return DueSpec("directive")
    out.add(rule, fld, f"unknown due kind {kind!r}; use working_days, date or directive")
    return None


def _parse_field(name: str, raw: object, rule: str, out: _Collector) -> FieldMatch | None:
    fld = f"match.{name}"
    if _strings(raw) is not None:
        raw = {"any": raw}
    if not isinstance(raw, Mapping) or not raw:
        out.add(rule, fld, f"must map an operator ({', '.join(OPERATORS)}) to its values")
        return None
    threshold_raw = raw.get("threshold")
    threshold = 0.85
    if threshold_raw is not None:
        numeric = isinstance(threshold_raw, int | float) and not isinstance(threshold_raw, bool)
        if not numeric or not 0.5 <= float(threshold_raw) <= 1:
            out.add(rule, f"{fld}.threshold", "must be a number between 0.5 and 1")
        else:
            threshold = float(threshold_raw)
        if "fuzzy" not in raw:
            out.add(rule, f"{fld}.threshold", "threshold only applies to fuzzy")
    conditions: list[Condition] = []
    for op, values in raw.items():
        if op == "threshold":
            continue
        if op not in OPERATORS:
            out.add(rule, f"{fld}.{op}", f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
            continue
        vals = _strings(values)
        if vals is None or not all(v.strip() for v in vals):
            out.add(rule, f"{fld}.{op}", "must be a non-empty string or list of non-empty strings")
            continue
        if len(vals) > MAX_VALUES or any(len(v) > MAX_VALUE for v in vals):
            out.add(rule, f"{fld}.{op}", f"at most {MAX_VALUES} values of at most {MAX_VALUE} characters")
            continue
        try:
            conditions.append(Condition.build(op, vals, threshold))
        except InvalidPattern as exc:
            out.add(rule, f"{fld}.{op}", f"bad regular expression: {exc}")
    if not conditions:
        return None
    return FieldMatch(name, tuple(conditions))


def _parse_template(
    raw: object,
    rule: str,
    fld: str,
    out: _Collector,
    units: Collection[str] | None,
    groups: Collection[str] | None,
) -> TaskTemplate | None:
    if not isinstance(raw, Mapping):
        out.add(rule, fld, "each task template must be a mapping")
        return None
    unknown = sorted(set(raw) - {"to", "role", "title", "instructions", "due"}, key=str)
    for key in unknown:
        out.add(rule, f"{fld}.{key}", "unknown field")
    ok = not unknown
    to = raw.get("to")
    unit_codes: list[str] = []
    group_names: list[str] = []
    if not isinstance(to, Mapping) or not (to.get("units") or to.get("groups")):
        out.add(rule, f"{fld}.to", "must name units and/or groups: {units: [...], groups: [...]}")
        ok = False
    else:
        for key, names, known, what in (
            ("units", unit_codes, units, "unit"),
            ("groups", group_names, groups, "group"),
        ):
            if to.get(key) is None:
                continue
            vals = _strings(to.get(key))
            if vals is None:
                out.add(rule, f"{fld}.to.{key}", "must be a list of strings")
                ok = False
                continue
            if len(vals) > MAX_VALUES or any(len(v) > MAX_VALUE for v in vals):
                out.add(
                    rule, f"{fld}.to.{key}", f"at most {MAX_VALUES} names of at most {MAX_VALUE} characters"
                )
                ok = False
                continue
            names.extend(vals)
            for name in vals:
                if known is not None and name not in known:
                    out.add(rule, f"{fld}.to.{key}", f"unknown {what} {name!r}")
                    ok = False
        for key in sorted(set(to) - {"units", "groups"}, key=str):
            out.add(rule, f"{fld}.to.{key}", "unknown field; use units or groups")
            ok = False
    role_raw = raw.get("role")
    role: Role | None = None
    try:
        role = Role(str(role_raw))
    except ValueError:
        out.add(rule, f"{fld}.role", f"unknown role {role_raw!r}; use chu_tri, phoi_hop or de_biet")
        ok = False
    texts: dict[str, str | None] = {}
    for key, limit in (("title", MAX_TITLE), ("instructions", MAX_INSTRUCTIONS)):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            out.add(rule, f"{fld}.{key}", "must be text")
            ok = False
        elif isinstance(value, str) and len(value) > limit:
            out.add(rule, f"{fld}.{key}", f"at most {limit} characters")
            ok = False
        texts[key] = value if isinstance(value, str) else None
    due = None
    if raw.get("due") is not None:
        due = _parse_due(raw.get("due"), rule, f"{fld}.due", out)
        ok = ok and due is not None
    if not ok or role is None:
        return None
    return TaskTemplate(
        tuple(unit_codes), tuple(group_names), role, texts["title"], texts["instructions"], due
    )


def parse_ruleset(
    doc: object,
    *,
    units: Collection[str] | None = None,
    groups: Collection[str] | None = None,
) -> RuleSet:
    """Validates a whole rules document and raises RuleSetInvalid listing every issue.

    `units` and `groups` are the known names; None skips reference checks (offline use without units).
    """
    out = _Collector()
    if not isinstance(doc, Mapping):
        raise RuleSetInvalid([RuleIssue("(document)", "", "expected a mapping with 'rules'")])
    for key in sorted(set(doc) - {"version", "defaults", "rules"}, key=str):
        out.add("(document)", key, "unknown field")
    fmt = doc.get("version", 1)
    if fmt != 1:
        out.add("(document)", "version", "only format version 1 is known")
    defaults: dict[str, DueSpec] = {}
    raw_defaults = doc.get("defaults") or {}
    if not isinstance(raw_defaults, Mapping):
        out.add("(defaults)", "", "must be a mapping")
    else:
        for key in sorted(set(raw_defaults) - {"due"}, key=str):
            out.add("(defaults)", str(key), "unknown field; use due")
        due_defaults = raw_defaults.get("due") or {}
        if not isinstance(due_defaults, Mapping):
            out.add("(defaults)", "due", "must map urgencies to due specifications")
        else:
            for urgency, spec in due_defaults.items():
                if urgency not in URGENCIES:
                    out.add("(defaults)", f"due.{urgency}", f"unknown urgency; use {', '.join(URGENCIES)}")
                    continue
                parsed = _parse_due(spec, "(defaults)", f"due.{urgency}", out)
                if parsed is not None:
                    if parsed.kind == "directive":
                        out.add("(defaults)", f"due.{urgency}", "a default cannot refer to the directive")
                    else:
                        defaults[urgency] = parsed
    raw_rules = doc.get("rules")
    rules: list[Rule] = []
    if not isinstance(raw_rules, list):
        out.add("(document)", "rules", "must be a list of rules")
        raw_rules = []
    elif len(raw_rules) > MAX_RULES:
        out.add("(document)", "rules", f"at most {MAX_RULES} rules")
        raw_rules = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        rule_id = raw.get("id") if isinstance(raw, Mapping) else None
        label = rule_id if isinstance(rule_id, str) and rule_id else f"rules[{i}]"
        if not isinstance(raw, Mapping):
            out.add(label, "", "each rule must be a mapping")
            continue
        if not isinstance(rule_id, str) or not RULE_ID_RE.match(rule_id):
            out.add(label, "id", "a rule needs an id of letters, digits, . _ - (at most 64)")
        elif rule_id in seen:
            out.add(label, "id", "duplicate rule id")
        seen.add(label)
        for key in sorted(set(raw) - {"id", "description", "match", "tasks"}, key=str):
            out.add(label, key, "unknown field")
        match_raw = raw.get("match")
        matches: list[FieldMatch] = []
        if not isinstance(match_raw, Mapping) or not match_raw:
            out.add(label, "match", f"must give at least one of {', '.join(MATCH_FIELDS)}")
        else:
            for name, spec in match_raw.items():
                if name not in MATCH_FIELDS:
                    out.add(label, f"match.{name}", f"unknown field; use {', '.join(MATCH_FIELDS)}")
                    continue
                fm = _parse_field(str(name), spec, label, out)
                if fm is not None:
                    matches.append(fm)
        tasks_raw = raw.get("tasks")
        templates: list[TaskTemplate] = []
        if not isinstance(tasks_raw, list) or not tasks_raw:
            out.add(label, "tasks", "must list at least one task template")
        elif len(tasks_raw) > MAX_TEMPLATES:
            out.add(label, "tasks", f"at most {MAX_TEMPLATES} task templates")
        else:
            for j, t in enumerate(tasks_raw):
                tpl = _parse_template(t, label, f"tasks[{j}]", out, units, groups)
                if tpl is not None:
                    templates.append(tpl)
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            out.add(label, "description", "must be text")
        elif isinstance(description, str) and len(description) > MAX_DESCRIPTION:
            out.add(label, "description", f"at most {MAX_DESCRIPTION} characters")
        rules.append(
            Rule(label, description if isinstance(description, str) else "", tuple(matches), tuple(templates))
        )
    if out.issues:
        raise RuleSetInvalid(out.issues)
    return RuleSet(tuple(rules), defaults, 1)


def rule_matches(rule: Rule, directive: DirectiveFacts) -> bool:
    """Every field the rule gives must match."""
    return bool(rule.match) and all(fm.evaluate(directive.candidates(fm.field)) for fm in rule.match)


def due_date_for(
    spec: DueSpec | None, directive: DirectiveFacts, ruleset: RuleSet, calendar: WorkingCalendar
) -> date | None:
    """The rule's deadline, else the directive's, else the urgency default; never after the directive's."""
    due: date | None = None
    if spec is not None:
        due = _resolve(spec, directive, calendar)
    if due is None:
        due = directive.due_date
    if due is None:
        default = ruleset.default_due.get(directive.urgency) or ruleset.default_due.get("thuong")
        if default is not None:
            due = _resolve(default, directive, calendar)
    if due is not None and directive.due_date is not None and directive.due_date < due:
        due = directive.due_date
    return due


def _resolve(spec: DueSpec, directive: DirectiveFacts, calendar: WorkingCalendar) -> date | None:
    if spec.kind == "working_days":
        return calendar.add_working_days(directive.arrival_date, spec.working_days)
    if spec.kind == "date":
        return spec.on
    return directive.due_date


def derive_tasks(
    ruleset: RuleSet, directive: DirectiveFacts, units: Sequence[Unit], calendar: WorkingCalendar
) -> Derivation:
    """One task per active unit: the strongest role wins; on a tie the earlier rule and template win."""
    active = [u for u in units if u.active]
    by_code = {u.code: u for u in active}
    chosen: dict[str, PlannedTask] = {}
    matched: list[str] = []
    for rule in ruleset.rules:
        if not rule_matches(rule, directive):
            continue
        matched.append(rule.id)
        for index, tpl in enumerate(rule.tasks):
            targets = [c for c in tpl.units if c in by_code]
            targets += [u.code for u in active if set(u.groups) & set(tpl.groups)]
            for code in targets:
                current = chosen.get(code)
                if current is not None and ROLE_RANK[current.role] <= ROLE_RANK[tpl.role]:
                    continue
                chosen[code] = PlannedTask(
                    unit=code,
                    role=tpl.role,
                    title=tpl.title or directive.subject,
                    instructions=tpl.instructions,
                    due_date=due_date_for(tpl.due, directive, ruleset, calendar),
                    rule_id=rule.id,
                    template=index,
                )
    order = {u.code: i for i, u in enumerate(active)}
    tasks = sorted(chosen.values(), key=lambda t: (ROLE_RANK[t.role], order[t.unit]))
    return Derivation(tuple(matched), tuple(tasks))


def rule_set_summary(ruleset: RuleSet) -> list[dict[str, Any]]:
    return [{"id": r.id, "description": r.description, "tasks": len(r.tasks)} for r in ruleset.rules]
