"""What the rules of a knowledge base say, read with clingo's parser (nothing is run).

:func:`parse` turns every program into plain, picklable records: each rule's head and body atoms
(pools expanded), its comparisons, the constants it names, where it is. The compiled knowledge
base (:mod:`pyasp_screen.knowledge.kb`) is built from them, so no stage ever searches program
text: renaming a variable, splitting a rule over lines or writing a comment inside it changes
nothing here.

Terms are tuples: ``("sym", name)`` a constant, ``("str", text)``, ``("num", n)``,
``("var", Name)``, ``("bin", op, left, right)``, ``("un", op, term)``, ``("fun", name, args)``,
``("other",)``.

clingo's lexer reports an unexpected non-ASCII character with a message cut inside the
character, and the process then aborts while decoding it ("PANIC: exception in nothrow scope").
Every text is therefore first parsed with non-ASCII characters replaced by an ASCII byte clingo
accepts in strings and comments and refuses elsewhere; the real text is parsed only once that
copy parses without error.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from clingo import ast

from pyasp_screen.knowledge.confine import Problem, refused_in, walk

Term = tuple
Location = tuple[str, int, int]

OPS = {0: ">", 1: "<", 2: "<=", 3: ">=", 4: "!=", 5: "="}
BINOPS = {0: "^", 1: "?", 2: "&", 3: "+", 4: "-", 5: "*", 6: "/", 7: "\\", 8: "**"}


@dataclass(frozen=True)
class Atom:
    """One atom occurrence: predicate name, argument terms, where, and its sign (0 positive,
    1 ``not``, 2 ``not not``)."""

    name: str
    args: tuple[Term, ...]
    location: Location
    sign: int = 0

    @property
    def signature(self) -> str:
        return f"{self.name}/{len(self.args)}"

    def text(self, i: int) -> str | None:
        """Argument i as text if it is a constant, string or number (None otherwise)."""
        return constant(self.args[i]) if i < len(self.args) else None


@dataclass(frozen=True)
class Comparison:
    left: Term
    op: str
    right: Term
    location: Location
    top: bool  # a body literal of its own (not inside an aggregate or a condition)


@dataclass(frozen=True)
class Rule:
    """One rule (a fact is a rule without body). ``part``: its #program part."""

    location: Location
    part: str
    heads: tuple[Atom, ...]
    body: tuple[Atom, ...]
    comparisons: tuple[Comparison, ...]
    identifiers: tuple[tuple[str, Location], ...]  # constants named as terms, first place each
    compared: tuple[tuple[str, Location], ...]      # constants inside comparisons or arithmetic
    variables: frozenset[str] = frozenset()


@dataclass
class Parsed:
    """The statements of every program, and what stopped them from being read."""

    rules: list[Rule] = field(default_factory=list)
    defined: list[tuple[str, Location]] = field(default_factory=list)  # #defined p/n
    problems: list[Problem] = field(default_factory=list)              # syntax errors, refusals


def constant(t: Term) -> str | None:
    if t[0] in ("sym", "str"):
        return t[1]
    if t[0] == "num":
        return str(t[1])
    return None


def _term(node) -> Term:
    t = node.ast_type
    if t == ast.ASTType.Variable:
        return ("var", node.name)
    if t == ast.ASTType.SymbolicTerm:
        s = node.symbol
        if s.type == s.type.Number:
            return ("num", s.number)
        if s.type == s.type.String:
            return ("str", s.string)
        if s.type == s.type.Function and not s.arguments:
            return ("sym", s.name) if s.name else ("fun", "", ())
        return ("other",)
    if t == ast.ASTType.Function:
        if not node.arguments and node.name and not node.external:
            return ("sym", node.name)
        return ("fun", node.name, tuple(_term(a) for a in node.arguments))
    if t == ast.ASTType.BinaryOperation:
        return ("bin", BINOPS.get(int(node.operator_type), "?"), _term(node.left), _term(node.right))
    if t == ast.ASTType.UnaryOperation:
        return ("un", {0: "-", 1: "~", 2: "||"}[int(node.operator_type)], _term(node.argument))
    if t == ast.ASTType.Pool:
        return ("pool", tuple(_term(a) for a in node.arguments))
    return ("other",)


def _alternatives(t: Term) -> list[Term]:
    """The terms a (possibly pooled) term stands for."""
    if t[0] == "pool":
        return [x for alt in t[1] for x in _alternatives(alt)]
    if t[0] == "fun" and t[1] == "" and len(t[2]) == 1:  # parentheses around one term
        return _alternatives(t[2][0])
    if t[0] == "fun" and t[1] == "":  # a tuple: keep it whole
        return [t]
    return [t]


def _atoms_of_symbol(sym, location: Location, sign: int) -> list[Atom]:
    """The atoms of a symbolic atom's symbol, pools expanded (p(a;b) is p(a) and p(b))."""
    t = sym.ast_type
    if t == ast.ASTType.Pool:
        return [a for s in sym.arguments for a in _atoms_of_symbol(s, location, sign)]
    if t == ast.ASTType.Function:
        if sym.external:
            return []
        args = [_alternatives(_term(a)) for a in sym.arguments]
        return [Atom(sym.name, tuple(combo), location, sign) for combo in itertools.product(*args)]
    if t == ast.ASTType.SymbolicTerm and sym.symbol.type == sym.symbol.type.Function:
        s = sym.symbol
        return [Atom(s.name, tuple(_term_of_symbol(a) for a in s.arguments), location, sign)]
    if t == ast.ASTType.UnaryOperation:  # classical negation -p(X): read as p
        return _atoms_of_symbol(sym.argument, location, sign)
    return []


def _term_of_symbol(s) -> Term:
    if s.type == s.type.Number:
        return ("num", s.number)
    if s.type == s.type.String:
        return ("str", s.string)
    if not s.arguments:
        return ("sym", s.name)
    return ("fun", s.name, tuple(_term_of_symbol(a) for a in s.arguments))


def _loc(node, file: str) -> Location:
    b = node.location.begin
    return (file, b.line, b.column)


def _symbols(t: Term, inside: bool = False):
    """(constant name, inside arithmetic) for every constant of a term."""
    kind = t[0]
    if kind == "sym":
        yield t[1], inside
    elif kind == "bin":
        yield from _symbols(t[2], True)
        yield from _symbols(t[3], True)
    elif kind == "un":
        yield from _symbols(t[2], True)
    elif kind in ("fun", "pool"):
        for a in t[-1]:
            yield from _symbols(a, inside)


def term_variables(t: Term) -> set[str]:
    """The variables of a term (``p(X+1)``'s argument: {"X"})."""
    return set(_variables(t))


def _variables(t: Term):
    kind = t[0]
    if kind == "var":
        yield t[1]
    elif kind == "bin":
        yield from _variables(t[2])
        yield from _variables(t[3])
    elif kind == "un":
        yield from _variables(t[2])
    elif kind in ("fun", "pool"):
        for a in t[-1]:
            yield from _variables(a)


class _Collector:
    def __init__(self, file: str):
        self.file = file
        self.atoms: list[Atom] = []
        self.comparisons: list[Comparison] = []
        self.terms: list[Term] = []  # aggregate element terms

    def literal(self, lit, top: bool) -> None:
        """Atoms and comparisons of a body (or head-condition) element."""
        t = lit.ast_type
        if t == ast.ASTType.Literal:
            self.atom(lit.atom, int(lit.sign), top, _loc(lit, self.file))
        elif t == ast.ASTType.ConditionalLiteral:
            self.literal(lit.literal, False)
            for c in lit.condition:
                self.literal(c, False)
        elif t == ast.ASTType.BodyAggregateElement:
            self.terms += [_term(x) for x in lit.terms]
            for c in lit.condition:
                self.literal(c, False)
        elif t == ast.ASTType.HeadAggregateElement:
            self.terms += [_term(x) for x in lit.terms]
            self.literal(lit.condition, False)

    def atom(self, atom, sign: int, top: bool, loc: Location) -> None:
        t = atom.ast_type
        if t == ast.ASTType.SymbolicAtom:
            self.atoms += _atoms_of_symbol(atom.symbol, loc, sign)
        elif t == ast.ASTType.Comparison:
            left = _term(atom.term)
            for g in atom.guards:
                right = _term(g.term)
                op = OPS[int(g.comparison)]
                if sign == 1:  # not X < Y is X >= Y
                    op = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "=": "!=", "!=": "="}[op]
                self.comparisons.append(Comparison(left, op, right, loc, top))
                left = right
        elif t in (ast.ASTType.BodyAggregate, ast.ASTType.Aggregate):
            for guard in (atom.left_guard, atom.right_guard):
                if guard is not None:
                    self.terms.append(_term(guard.term))
            for e in atom.elements:
                self.literal(e, False)
        elif t == ast.ASTType.TheoryAtom:
            for n in walk(atom):
                if n.ast_type == ast.ASTType.SymbolicAtom:
                    self.atoms += _atoms_of_symbol(n.symbol, loc, 0)


def _heads(head, c: _Collector) -> list[Atom]:
    """The head's atoms; the conditions of a conditional head (p(X) : q(X) :- ...) go to c,
    read like a body."""
    file = c.file
    t = head.ast_type
    if t == ast.ASTType.Literal:
        if head.atom.ast_type == ast.ASTType.SymbolicAtom:
            return _atoms_of_symbol(head.atom.symbol, _loc(head, file), 0)
        return []
    out: list[Atom] = []
    if t == ast.ASTType.Disjunction:
        for e in head.elements:
            lit = e.literal
            if lit.atom.ast_type == ast.ASTType.SymbolicAtom:
                out += _atoms_of_symbol(lit.atom.symbol, _loc(lit, file), 0)
            for cond in e.condition:
                c.literal(cond, False)
    elif t == ast.ASTType.Aggregate:
        for e in head.elements:
            lit = e.literal
            if lit.atom.ast_type == ast.ASTType.SymbolicAtom:
                out += _atoms_of_symbol(lit.atom.symbol, _loc(lit, file), 0)
            for cond in e.condition:
                c.literal(cond, False)
    elif t == ast.ASTType.HeadAggregate:
        for e in head.elements:
            lit = e.condition.literal
            if lit.atom.ast_type == ast.ASTType.SymbolicAtom:
                out += _atoms_of_symbol(lit.atom.symbol, _loc(lit, file), 0)
            for cond in e.condition.condition:
                c.literal(cond, False)
    return out


def _rule(stm, file: str, part: str) -> Rule:
    body = _Collector(file)
    heads = _heads(stm.head, body)
    for lit in stm.body:
        body.literal(lit, True)
    identifiers: dict[str, Location] = {}
    compared: dict[str, Location] = {}
    variables = set()
    for a in heads + body.atoms:
        for arg in a.args:
            for name, _ in _symbols(arg):
                identifiers.setdefault(name, a.location)
            variables.update(_variables(arg))
    for c in body.comparisons:
        for side in (c.left, c.right):
            for name, _ in _symbols(side):
                identifiers.setdefault(name, c.location)
                compared.setdefault(name, c.location)
            variables.update(_variables(side))
    for t in body.terms:
        for name, arithmetic in _symbols(t):
            identifiers.setdefault(name, _loc(stm, file))
        variables.update(_variables(t))
    for a in heads + body.atoms:  # constants in arithmetic inside atoms (p(X+k))
        for arg in a.args:
            for name, arithmetic in _symbols(arg):
                if arithmetic:
                    compared.setdefault(name, a.location)
    return Rule(_loc(stm, file), part, tuple(heads), tuple(body.atoms),
                tuple(body.comparisons), tuple(identifiers.items()),
                tuple(compared.items()), frozenset(variables))


def ascii_copy(text: str) -> str:
    """``text`` with every non-ASCII character replaced by one byte clingo accepts in strings
    and comments and rejects anywhere else (see the module docstring)."""
    return re.sub(r"[^\x00-\x7f]", "\x01", text)


LOCATION = re.compile(r"^<string>:(?P<line>\d+):(?P<col>\d+)(?:-\d+(?::\d+)?)?:\s*(?P<rest>.*)$", re.S)


def syntax_problems(text: str, file: str, advice: str) -> list[Problem]:
    """clingo's syntax errors in ``text``, located in ``file`` (parsed in its ASCII copy, so
    a message can never abort the process)."""
    messages: list[str] = []
    try:
        ast.parse_string(ascii_copy(text), lambda stm: None, logger=lambda code, msg: messages.append(msg),
                         message_limit=1000)
    except RuntimeError:
        out = []
        for msg in messages:
            line = " ".join(msg.split()).replace("\x01", "?")
            m = LOCATION.match(line)
            if m:
                out.append(Problem(file, int(m.group("line")), int(m.group("col")),
                                   f"{m.group('rest')} ({advice})"))
            else:
                out.append(Problem(file, 1, 1, f"{line} ({advice})"))
        return out or [Problem(file, 1, 1, f"syntax error ({advice})")]
    return []


GROUND_LOCATION = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+):(?P<col>\d+)(?:-\d+(?::\d+)?)?:\s*(?P<rest>.*)$", re.S)
UNSAFE = re.compile(r"(?P<file>[^\s][^\n]*?):(?P<line>\d+):(?P<col>\d+)(?:-\d+(?::\d+)?)?: note: '(?P<var>\w+)' is unsafe")


def grounding_problems(message: str, where=None) -> list[Problem]:
    """One message clingo logged while grounding, as problems at ``file:line:col``: one per
    unsafe variable ("unsafe variable X: ..."), else the message located where clingo put it.
    ``where(file, line) -> (file, line)`` maps clingo's location to the real file (the
    compiled knowledge base's programs reach clingo as one text, ``<block>``; see
    :meth:`pyasp_screen.knowledge.kb.KnowledgeBase.source_line`). Both ``check`` and loading
    report grounding errors through this function."""
    def at(file: str, line: str) -> tuple[str, int]:
        return where(file, int(line)) if where else (file, int(line))

    if "unsafe variables in" in message:
        found = [Problem(*at(m.group("file"), m.group("line")), int(m.group("col")),
                         f"unsafe variable {m.group('var')}: a rule must bind every variable "
                         "in a positive body literal (safety)") for m in UNSAFE.finditer(message)]
        if found:
            return found
    text = " ".join(message.split())
    advice = "see clingo's message" if "error" not in text else "fix the rule: clingo cannot ground it"
    m = GROUND_LOCATION.match(text)
    if m:
        return [Problem(*at(m.group("file"), m.group("line")), int(m.group("col")), f"{m.group('rest')} ({advice})")]
    return [Problem("<clingo>", 0, 0, f"{text} ({advice})")]


SYNTAX_ADVICE = ("fix the syntax: a statement ends with a period, strings use double quotes and "
                 'escape only \\" \\\\ and \\n, variables start upper-case, no characters beyond ASCII '
                 "outside strings and comments")


def parse(programs) -> Parsed:
    """Every statement of ``programs`` (resolve.ProgramFile: path, text), nothing executed.
    A program with a syntax error contributes its errors, no statements; ``#script`` and
    ``@function`` calls are refusals (confine.refused_in)."""
    out = Parsed()
    for program in programs:
        problems = syntax_problems(program.text, program.path, SYNTAX_ADVICE)
        if problems:
            out.problems += problems
            continue
        part = ["base"]

        suspect = "#script" in program.text or "@" in program.text  # neither exists without its character

        def statement(stm, file=program.path, part=part, suspect=suspect) -> None:
            if suspect:
                for p in refused_in(stm):
                    out.problems.append(Problem(file, p.line, p.column, p.message))
            t = stm.ast_type
            if t == ast.ASTType.Program:
                part[0] = stm.name
            elif t == ast.ASTType.Rule:
                out.rules.append(_rule(stm, file, part[0]))
            elif t == ast.ASTType.Defined:
                out.defined.append((f"{stm.name}/{stm.arity}", _loc(stm, file)))
            elif t in (ast.ASTType.External, ast.ASTType.Heuristic, ast.ASTType.ProjectAtom,
                       ast.ASTType.Edge, ast.ASTType.Minimize):
                pass  # read nothing from them; they cannot change holds/fails of a stratified KB

        ast.parse_string(program.text, statement)
    return out
