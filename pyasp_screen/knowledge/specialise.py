"""A knowledge base's rules specialised to its static facts: a compile step for screening.

A knowledge base mixes two kinds of predicate. *Static* ones follow from the programs alone:
criterion/3, all_of/2, any_of/2, check/4, window/2, drug classes, score tables. *Dynamic*
ones depend on a patient: the fact vocabulary (docs/vocabulary.md) and everything derived
from it. A grounder re-derives the static atoms for every program it grounds, and re-joins
every rule with them for every patient.

:func:`specialise` grounds the static part once (clingo) and writes the program anew:

1. every static atom becomes a fact;
2. a rule that reads dynamic predicates is instantiated for every binding of its positive
   static literals that satisfies them (with the negative static literals and comparisons
   over the same variables): ``holds(P,C) :- check(C,N,ge,T), current(P,N,Lo,_), Lo >= 2*T``
   becomes one rule per ``ge`` check, ``holds(P,"SLE-IN-7b.anc") :- current(P,anc,Lo,_),
   Lo >= (2*1000)``; a conditional literal whose condition is static becomes the conjunction
   of its instances: ``holds(P,S) : all_of("SLE-IN-1",S)`` becomes
   ``holds(P,"SLE-IN-1.classification"), holds(P,"SLE-IN-1.history")``;
3. a derived predicate whose every rule head has a constant at some argument is split into
   one predicate per constant (:func:`_split`): ``holds(P,"SLE-IN-1")`` becomes
   ``holds_7(P)``. The grounder then evaluates each condition once, in dependency order,
   instead of iterating one recursive holds/fails component to its fixpoint;
4. with ``needed`` (the predicates the caller reads), rules nothing needed reads are
   dropped where that is exact (:func:`_unread_rules_dropped`): ``contradiction/1`` of
   every condition, windows of codes no criterion compares.

Steps 1 and 2 are unfolding of facts (partial evaluation: Tamaki and Sato, ICLP 1984;
Brass and Dix, J. Logic Programming 38, 1999): a static atom is true in every answer set or
in none, whatever the findings, because only static rules define static predicates and the
static part has one model whose atoms are all facts (checked; otherwise nothing is
specialised). Replacing a body literal by its truth value, and a conditional literal with a
fixed condition by its instances, keeps every answer set. Step 3 renames atoms one to one
(p(..c..) is p_k(..)) and instantiates a variable only where a positive body literal
already confines it to the constants rules derive. So for any findings F (facts of the
``dynamic_roots`` predicates) the specialised program with F has the same answer sets as
the original with F, atom for atom once split atoms are read back
(:meth:`Specialised.original`) and static atoms are added; with ``needed``, restricted to
the atoms of those predicates (step 4, :func:`_unread_rules_dropped`). tests/test_engine_fast.py
checks this against the programs as written on generated patients of every bundled
knowledge base.

The work is done on a light tree of Python tuples (:func:`_tree`, printed back by
:func:`_text`) because walking clingo's own AST objects from Python costs about 100
times more.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import clingo
from clingo import ast

from pyasp_screen.knowledge.confine import walk
from pyasp_screen.knowledge.grounding import run_bounded

# A rule is left as written when its static literals have more bindings than this: the
# instances would cost more to ground, batch after batch, than the join they save.
MAX_INSTANCES = 64
# A rule is expanded over at most this many combinations of split constants.
MAX_EXPANSION = 4096

_HELPER = "spec__"  # prefix of the helper predicates of the static grounding


class Unsupported(Exception):
    """A construct this compiler leaves alone (the caller uses the program as written)."""


@dataclass(frozen=True)
class Specialised:
    """The specialised program and what it did.

    text: clingo program text (the base part, specialised, without #show statements);
    static_atoms: static atoms written as facts; rules_in / rules_out: dynamic rules before
    and after; unfolded: rules instantiated from static bindings; origins: for each split
    predicate (name, arity), the original (name, arity, ((position, value), ...)).
    """

    text: str
    static_atoms: int
    rules_in: int
    rules_out: int
    unfolded: int
    origins: dict = field(default_factory=dict)

    def __reduce__(self):
        # clingo Symbols pickle as their handle, which means nothing in another process:
        # the values of split constants travel as text and are parsed again on arrival.
        origins = {k: (n, a, tuple((i, str(v)) for i, v in fixed)) for k, (n, a, fixed) in self.origins.items()}
        return (_restore, (self.text, self.static_atoms, self.rules_in, self.rules_out, self.unfolded, origins))

    def shown(self, signatures: Iterable[tuple[str, int]]) -> str:
        """#show statements for the atoms of these original predicates, split or not."""
        want = set(signatures)
        lines = ["#show."] + [f"#show {n}/{a}." for n, a in sorted(want)]
        lines += [f"#show {n}/{a}." for (n, a), (on, oa, _) in sorted(self.origins.items())
                  if (on, oa) in want]
        return "\n" + "\n".join(lines) + "\n"

    def original(self, sym: clingo.Symbol) -> tuple[str, list[clingo.Symbol]]:
        """The name and arguments of the original atom a (possibly split) atom stands for."""
        origin = self.origins.get((sym.name, len(sym.arguments)))
        if origin is None:
            return sym.name, list(sym.arguments)
        name, arity, fixed = origin
        fixed_at = dict(fixed)
        rest = iter(sym.arguments)
        return name, [fixed_at[i] if i in fixed_at else next(rest) for i in range(arity)]


def _restore(text, static_atoms, rules_in, rules_out, unfolded, origins) -> Specialised:
    return Specialised(text, static_atoms, rules_in, rules_out, unfolded,
                       {k: (n, a, tuple((i, clingo.parse_term(v)) for i, v in fixed))
                        for k, (n, a, fixed) in origins.items()})


# ---------------------------------------------------------------------------------------
# A light tree: clingo's AST as tuples, and back to text

A = ast.ASTType
_CMP = {ast.ComparisonOperator.GreaterThan: ">", ast.ComparisonOperator.LessThan: "<",
        ast.ComparisonOperator.LessEqual: "<=", ast.ComparisonOperator.GreaterEqual: ">=",
        ast.ComparisonOperator.NotEqual: "!=", ast.ComparisonOperator.Equal: "="}
_BIN = {ast.BinaryOperator.XOr: "^", ast.BinaryOperator.Or: "?", ast.BinaryOperator.And: "&",
        ast.BinaryOperator.Plus: "+", ast.BinaryOperator.Minus: "-",
        ast.BinaryOperator.Multiplication: "*", ast.BinaryOperator.Division: "/",
        ast.BinaryOperator.Modulo: "\\", ast.BinaryOperator.Power: "**"}
_AGG = {ast.AggregateFunction.Count: "#count", ast.AggregateFunction.Sum: "#sum",
        ast.AggregateFunction.SumPlus: "#sum+", ast.AggregateFunction.Min: "#min",
        ast.AggregateFunction.Max: "#max"}
_SIGN = {ast.Sign.NoSign: "", ast.Sign.Negation: "not ", ast.Sign.DoubleNegation: "not not "}
NO, NOT, NOTNOT = ast.Sign.NoSign, ast.Sign.Negation, ast.Sign.DoubleNegation


def _guard(g):
    return None if g is None else (ast.ComparisonOperator(g.comparison), _tree(g.term))


def _tree(node):  # noqa: C901 -- one case per node type
    """clingo AST -> tuples: ("var", name), ("sym", Symbol), ("fun", name, args, external),
    ("un", op, t), ("bin", op, l, r), ("range", l, r), ("lit", sign, atom), ("atom", term),
    ("cmp", term, guards), ("bool", value), ("cond", literal, condition),
    ("bagg", left, function, elements, right), ("agg", left, elements, right),
    ("hagg", left, function, elements, right), ("disj", elements), ("rule", head, body)."""
    t = node.ast_type
    if t == A.Variable:
        return ("var", node.name)
    if t == A.SymbolicTerm:
        return ("sym", node.symbol)
    if t == A.Function:
        return ("fun", node.name, tuple(_tree(a) for a in node.arguments), node.external)
    if t == A.UnaryOperation:
        return ("un", ast.UnaryOperator(node.operator_type), _tree(node.argument))
    if t == A.BinaryOperation:
        return ("bin", ast.BinaryOperator(node.operator_type), _tree(node.left), _tree(node.right))
    if t == A.Interval:
        return ("range", _tree(node.left), _tree(node.right))
    if t == A.Literal:
        return ("lit", ast.Sign(node.sign), _tree(node.atom))
    if t == A.SymbolicAtom:
        return ("atom", _tree(node.symbol))
    if t == A.Comparison:
        return ("cmp", _tree(node.term), tuple(_guard(g) for g in node.guards))
    if t == A.BooleanConstant:
        return ("bool", bool(node.value))
    if t == A.ConditionalLiteral:
        return ("cond", _tree(node.literal), tuple(_tree(c) for c in node.condition))
    if t == A.BodyAggregate:
        return ("bagg", _guard(node.left_guard), ast.AggregateFunction(node.function),
                tuple((tuple(_tree(x) for x in e.terms), tuple(_tree(c) for c in e.condition))
                      for e in node.elements), _guard(node.right_guard))
    if t == A.Aggregate:
        return ("agg", _guard(node.left_guard), tuple(_tree(e) for e in node.elements),
                _guard(node.right_guard))
    if t == A.HeadAggregate:
        return ("hagg", _guard(node.left_guard), ast.AggregateFunction(node.function),
                tuple((tuple(_tree(x) for x in e.terms), _tree(e.condition)) for e in node.elements),
                _guard(node.right_guard))
    if t == A.Disjunction:
        return ("disj", tuple(_tree(e) for e in node.elements))
    if t == A.Rule:
        return ("rule", _tree(node.head), tuple(_tree(b) for b in node.body))
    raise Unsupported(f"{t.name} in a rule")


def _text(n) -> str:  # noqa: C901 -- one case per node type
    """Tuples -> clingo syntax (every binary operation parenthesised, as clingo prints it)."""
    k = n[0]
    if k == "var":
        return n[1]
    if k == "sym":
        return str(n[1])
    if k == "fun":
        args = ",".join(_text(a) for a in n[2])
        name = ("@" if n[3] else "") + n[1]
        if not n[1]:  # a tuple
            return f"({args},)" if len(n[2]) == 1 else f"({args})"
        return f"{name}({args})" if n[2] else name
    if k == "un":
        op, arg = n[1], _text(n[2])
        if op == ast.UnaryOperator.Absolute:
            return f"|{arg}|"
        return ("-" if op == ast.UnaryOperator.Minus else "~") + arg
    if k == "bin":
        return f"({_text(n[2])}{_BIN[n[1]]}{_text(n[3])})"
    if k == "range":
        return f"({_text(n[1])}..{_text(n[2])})"
    if k == "lit":
        return _SIGN[n[1]] + _text(n[2])
    if k == "atom":
        return _text(n[1])
    if k == "cmp":
        return _text(n[1]) + "".join(f" {_CMP[op]} {_text(t)}" for op, t in n[2])
    if k == "bool":
        return "#true" if n[1] else "#false"
    if k == "cond":
        return _text(n[1]) + (": " + ", ".join(_text(c) for c in n[2]) if n[2] else "")
    if k in ("bagg", "hagg"):
        left, fn, elems, right = n[1], n[2], n[3], n[4]
        if k == "bagg":
            inner = "; ".join(",".join(_text(x) for x in terms) + (": " + ", ".join(_text(c) for c in cond) if cond else "")
                              for terms, cond in elems)
        else:
            inner = "; ".join(",".join(_text(x) for x in terms) + ": " + _text(cond) for terms, cond in elems)
        return _guards(left, f"{_AGG[fn]} {{ {inner} }}", right)
    if k == "agg":
        return _guards(n[1], "{ " + "; ".join(_text(e) for e in n[2]) + " }", n[3])
    if k == "disj":
        return "; ".join(_text(e) for e in n[1])
    if k == "rule":
        head, body = n[1], n[2]
        h = _text(head)
        if not body:
            return h + "."
        return f"{h} :- {'; '.join(_text(b) for b in body)}."
    raise Unsupported(k)


def _guards(left, inner: str, right) -> str:
    out = inner
    if left is not None:
        out = f"{_text(left[1])} {_CMP[left[0]]} {out}"
    if right is not None:
        out = f"{out} {_CMP[right[0]]} {_text(right[1])}"
    return out


def _children(n):
    """The subtrees of a node (for walks)."""
    k = n[0]
    if k in ("var", "sym", "bool"):
        return ()
    if k == "fun":
        return n[2]
    if k == "un":
        return (n[2],)
    if k in ("bin",):
        return (n[2], n[3])
    if k == "range":
        return (n[1], n[2])
    if k == "lit":
        return (n[2],)
    if k == "atom":
        return (n[1],)
    if k == "cmp":
        return (n[1],) + tuple(t for _, t in n[2])
    if k == "cond":
        return (n[1],) + n[2]
    if k in ("bagg", "hagg"):
        out = [g[1] for g in (n[1], n[4]) if g is not None]
        for terms, cond in n[3]:
            out += list(terms) + (list(cond) if k == "bagg" else [cond])
        return tuple(out)
    if k == "agg":
        return tuple(g[1] for g in (n[1], n[3]) if g is not None) + n[2]
    if k == "disj":
        return n[1]
    if k == "rule":
        return (n[1],) + n[2]
    raise Unsupported(k)


def _variables(n, out: set | None = None) -> set[str]:
    out = set() if out is None else out
    if n[0] == "var":
        if n[1] != "_":
            out.add(n[1])
    else:
        for c in _children(n):
            _variables(c, out)
    return out


def _has(n, *kinds) -> bool:
    return n[0] in kinds or any(_has(c, *kinds) for c in _children(n))


def _atoms(n, ctx: str, out: list) -> list:
    """(signature, ("fun", ...) node, context) of every atom below n."""
    if n[0] == "atom":
        f = n[1]
        if f[0] == "fun" and not f[3]:
            out.append(((f[1], len(f[2])), f, ctx))
        elif f[0] == "un":
            raise Unsupported("classical negation")
        return out
    for c in _children(n):
        _atoms(c, ctx, out)
    return out


def _rule_atoms(rule) -> list:
    """Atoms of a rule with their context: 'head', 'plain+' (a positive body literal),
    'plain-' (a negated one), 'nested' (in a conditional literal or an aggregate)."""
    out: list = []
    _atoms(rule[1], "head", out)
    for b in rule[2]:
        if b[0] == "lit" and b[2][0] == "atom":
            _atoms(b, "plain+" if b[1] == NO else "plain-", out)
        else:
            _atoms(b, "nested", out)
    return out


def _substitute(n, env: dict):
    """n with variables in env replaced by their symbols."""
    k = n[0]
    if k == "var":
        return ("sym", env[n[1]]) if n[1] in env else n
    if k in ("sym", "bool"):
        return n
    if k == "fun":
        return ("fun", n[1], tuple(_substitute(a, env) for a in n[2]), n[3])
    if k == "un":
        return ("un", n[1], _substitute(n[2], env))
    if k == "bin":
        return ("bin", n[1], _substitute(n[2], env), _substitute(n[3], env))
    if k == "range":
        return ("range", _substitute(n[1], env), _substitute(n[2], env))
    if k == "lit":
        return ("lit", n[1], _substitute(n[2], env))
    if k == "atom":
        return ("atom", _substitute(n[1], env))
    if k == "cmp":
        return ("cmp", _substitute(n[1], env), tuple((op, _substitute(t, env)) for op, t in n[2]))
    if k == "cond":
        return ("cond", _substitute(n[1], env), tuple(_substitute(c, env) for c in n[2]))
    g = lambda x: None if x is None else (x[0], _substitute(x[1], env))  # noqa: E731
    if k == "bagg":
        return ("bagg", g(n[1]), n[2], tuple((tuple(_substitute(x, env) for x in terms),
                                              tuple(_substitute(c, env) for c in cond))
                                             for terms, cond in n[3]), g(n[4]))
    if k == "hagg":
        return ("hagg", g(n[1]), n[2], tuple((tuple(_substitute(x, env) for x in terms),
                                              _substitute(cond, env)) for terms, cond in n[3]), g(n[4]))
    if k == "agg":
        return ("agg", g(n[1]), tuple(_substitute(e, env) for e in n[2]), g(n[3]))
    if k == "disj":
        return ("disj", tuple(_substitute(e, env) for e in n[1]))
    if k == "rule":
        return ("rule", _substitute(n[1], env), tuple(_substitute(b, env) for b in n[2]))
    raise Unsupported(k)


def _ground_symbol(t, consts: set[str]) -> clingo.Symbol | None:
    """The symbol a term stands for if it is ground, free of arithmetic and of constants
    that parameters define (their values are clingo's to substitute); else None."""
    k = t[0]
    if k == "sym":
        s = t[1]
        if s.type == clingo.SymbolType.Function and not s.arguments and s.name in consts:
            return None
        return s
    if k == "fun" and not t[3]:
        if not t[2] and t[1] in consts:
            return None
        args = [_ground_symbol(a, consts) for a in t[2]]
        if any(a is None for a in args):
            return None
        return clingo.Function(t[1], args) if t[1] else clingo.Tuple_(args)
    return None


def _bound_variables(lit) -> set[str]:
    """Variables a positive literal binds: those it holds outside arithmetic and intervals."""
    out: set[str] = set()

    def terms(n) -> None:
        if n[0] == "var":
            if n[1] != "_":
                out.add(n[1])
        elif n[0] == "fun":
            for a in n[2]:
                terms(a)

    terms(lit[2][1])
    return out


# ---------------------------------------------------------------------------------------
# Unfolding static literals

@dataclass
class _Plan:
    """How one dynamic rule is instantiated."""

    static_vars: list[str]          # bound by its positive static literals
    query: list[int]                # body positions evaluated statically
    conditions: dict                # body position -> (static globals, locals)


def _is_static_literal(b, static: set) -> bool:
    return b[0] == "lit" and b[2][0] == "atom" and b[2][1][0] == "fun" and \
        (b[2][1][1], len(b[2][1][2])) in static


def _is_comparison(b) -> bool:
    return b[0] == "lit" and b[2][0] == "cmp"


def _plan(rule, static: set) -> _Plan | None:
    body = rule[2]
    positive = [i for i, b in enumerate(body) if _is_static_literal(b, static) and b[1] == NO]
    bound: set[str] = set()
    for i in positive:
        if _has(body[i], "range"):
            return None
        bound |= _bound_variables(body[i])
    for i in positive:  # a static literal needing a variable bound elsewhere: leave the rule
        if not _variables(body[i]) <= bound:
            return None
    query = list(positive)
    for i, b in enumerate(body):
        if i not in positive and (_is_static_literal(b, static) or _is_comparison(b)) \
                and _variables(b) <= bound:
            query.append(i)
    # Variables outside conditional literals (over-approximated: all of an aggregate's).
    global_vars = _variables(rule[1])
    for b in body:
        if b[0] == "lit":
            _variables(b, global_vars)
    conditions = {}
    for i, b in enumerate(body):
        if b[0] != "cond" or not b[2]:
            continue
        cond = b[2]
        if not all(_is_static_literal(c, static) or _is_comparison(c) for c in cond):
            continue
        cvars = set()
        for c in cond:
            _variables(c, cvars)
        cbound: set[str] = set()
        for c in cond:
            if _is_static_literal(c, static) and c[1] == NO:
                cbound |= _bound_variables(c)
        outside = cvars & global_vars
        if not outside <= bound or not outside <= cbound:  # it depends on a dynamic binding
            continue
        local = sorted(cvars - global_vars)
        if not set(local) <= cbound or not _variables(b[1]) <= (global_vars | set(local)):
            continue
        conditions[i] = (sorted(outside), local)
    if not query and not conditions:
        return None
    return _Plan(sorted(bound), query, conditions)


def _instance(rule, plan: _Plan, env: dict, inst: dict, k: int, static: set,
              static_true: set, consts: set[str]):
    """The rule with ``env`` substituted, its static query dropped and its static
    conditions expanded; None if a ground static literal left in it is false."""
    body = rule[2]
    new_body = []
    for i, b in enumerate(body):
        if i in plan.query:
            continue
        if i in plan.conditions:
            outside, local = plan.conditions[i]
            want = tuple(env[v] for v in outside)
            for row in inst.get(f"{_HELPER}c{k}_{i}", []):
                if row[:len(outside)] == want:
                    new_body.append(_substitute(b[1], {**env, **dict(zip(local, row[len(outside):]))}))
            continue
        new_body.append(_substitute(b, env) if env else b)
    kept = []
    for b in new_body:  # a ground static literal: true or false now
        if _is_static_literal(b, static):
            sym = _ground_symbol(b[2][1], consts)
            if sym is not None:
                holds = str(sym) in static_true
                if b[1] == NOT:
                    holds = not holds
                if not holds:
                    return None
                continue
        kept.append(b)
    return ("rule", _substitute(rule[1], env) if env else rule[1], tuple(kept))


# ---------------------------------------------------------------------------------------
# The compiler

def specialise(program: str, clingo_args: Sequence[str],
               dynamic_roots: Iterable[tuple[str, int]], split: bool = True,
               needed: Iterable[tuple[str, int]] | None = None, unfold: bool = True,
               kb_name: str = "program") -> Specialised:
    """Specialise ``program`` to its static facts (see the module docstring).

    ``clingo_args``: the -c parameter definitions it will be grounded with (the static
    part is grounded with them, so the result holds for these parameter values only).
    ``dynamic_roots``: the predicates (name, arity) of patient facts.
    ``split``: also split derived predicates on their constant arguments (step 3).
    ``unfold``: instantiate rules for their static bindings (step 2); without it, only the
    static atoms become facts (what suits a program grounded for one patient, where a rule
    costs more to process than its join).
    ``needed``: the predicates the caller reads; rules that cannot contribute to them are
    dropped where that cannot change what the caller reads nor whether it gets an answer
    (:func:`_unread_rules_dropped`: plain Datalog rules and finite aggregates, stratified
    among themselves; constraints are kept). Without ``split``, what the other parts read
    is needed too. None keeps every rule.
    ``kb_name``: the knowledge base's name, in the error of a static part that grounds past
    the limits of every grounding (:mod:`pyasp_screen.knowledge.grounding`).
    Other program parts (``status``) are kept as written unless ``split`` (they would read
    the old names); #show statements are dropped (callers show what they read,
    :meth:`Specialised.shown`).
    Raises Unsupported for a program this compiler leaves alone (choices or other
    non-deterministic constructs in the static part, theory atoms, scripts, classical
    negation, parts with parameters), RuntimeError if clingo cannot ground the static
    part, and GroundingLimit if that grounding passes its time or memory limit.
    """
    statements: list = []
    others: dict[str, list[str]] = {}  # other program parts, kept as written
    other_reads: set = set()  # every predicate they mention (a head's condition reads too)
    part = ["base"]

    def on_statement(stm) -> None:
        if stm.ast_type == A.Program:
            if stm.parameters:
                raise Unsupported("program parts with parameters")
            part[0] = stm.name
        elif part[0] == "base":
            statements.append(stm)
        elif stm.ast_type == A.Definition:  # global in clingo, whichever part it is in
            raise Unsupported("#const outside the base part")
        elif stm.ast_type not in (A.Comment, A.ShowSignature, A.ShowTerm):
            others.setdefault(part[0], []).append(str(stm))
            other_reads.update(_mentioned(stm))

    ast.parse_string(program, on_statement)
    consts = {a.split("=", 1)[0] for a in clingo_args if "=" in a}
    keep: list[str] = []  # #const, #defined, #external
    rules: list = []
    roots = set(dynamic_roots)
    conditions: set = set()  # predicates the conditions of #external statements read
    # (roots or undefined: one that rules derive is Unsupported, below)
    for stm in statements:
        t = stm.ast_type
        if t == A.Rule:
            rules.extend(_tree(r) for r in stm.unpool())
        elif t == A.Definition:
            consts.add(stm.name)
            keep.append(str(stm))
        elif t == A.Defined:
            keep.append(str(stm))
        elif t == A.External:
            roots |= {sig for sig, _, _ in _atoms(_tree(stm.atom), "head", [])}
            conditions |= {sig for b in stm.body for sig, _, _ in _atoms(_tree(b), "nested", [])}
            keep.append(str(stm))
        elif t in (A.ShowSignature, A.ShowTerm, A.Comment):
            continue
        else:
            raise Unsupported(f"{t.name} statements")

    atoms = [_rule_atoms(r) for r in rules]
    heads = [{s for s, _, c in a if c == "head"} for a in atoms]
    bodies = [{s for s, _, c in a if c != "head"} for a in atoms]
    if conditions & set().union(*heads):
        # clingo reads such a condition where the statement stands among the rules; the
        # program written anew puts every #external first
        raise Unsupported("an #external whose condition reads what rules derive")
    dynamic = set(roots)
    changed = True
    while changed:
        changed = False
        for h, b in zip(heads, bodies):
            if (b & dynamic or h & dynamic) and not h <= dynamic:
                dynamic |= h
                changed = True
    every = set().union(*heads, *bodies) if rules else set()
    static = every - dynamic
    static_rules, dynamic_rules = [], []
    for r, h, b in zip(rules, heads, bodies):
        if (h and h <= static) or (not h and b and b <= static):
            if r[1][0] != "lit":
                raise Unsupported("a choice or disjunction in the static part")
            static_rules.append(r)
        else:
            dynamic_rules.append(r)

    plans: dict[int, _Plan] = {}
    helpers: list[str] = []
    for k, r in enumerate(dynamic_rules):
        # Choices and disjunctions are left as written, and so are rules with aggregates:
        # an aggregate copied into every instance is grounded in every copy.
        if r[1][0] != "lit" or any(b[0] == "lit" and b[2][0] == "bagg" for b in r[2]):
            continue
        p = _plan(r, static)
        if p is None:
            continue
        plans[k] = p
        body = r[2]
        if p.query:
            head = f"{_HELPER}i{k}" + (f"({','.join(p.static_vars)})" if p.static_vars else "")
            helpers.append(f"{head} :- {'; '.join(_text(body[i]) for i in p.query)}.")
        for i, (outside, local) in p.conditions.items():
            args = outside + local
            head = f"{_HELPER}c{k}_{i}" + (f"({','.join(args)})" if args else "")
            helpers.append(f"{head} :- {'; '.join(_text(c) for c in body[i][2])}.")

    ctl = clingo.Control(list(clingo_args) + ["--warn=none"])
    ctl.add("base", [], "\n".join(keep + [_text(r) for r in static_rules] + helpers))
    run_bounded(lambda: ctl.ground([("base", [])]), kb=kb_name)  # under the limits of every grounding
    facts: dict[tuple[str, int], list[str]] = {}
    inst: dict[str, list[tuple]] = {}
    static_true: set[str] = set()
    for atom in ctl.symbolic_atoms:
        sym = atom.symbol
        if not atom.is_fact:
            raise Unsupported(f"static atom {sym} is not decided by the programs alone")
        if sym.name.startswith(_HELPER):
            inst.setdefault(sym.name, []).append(tuple(sym.arguments))
        else:
            text = str(sym)
            facts.setdefault((sym.name, len(sym.arguments)), []).append(text + ".")
            static_true.add(text)
    with ctl.solve(yield_=True) as handle:
        if next(iter(handle), None) is None:
            raise Unsupported("the static part has no answer set")

    out: list = []
    unfolded = 0
    for k, r in enumerate(dynamic_rules):
        p = plans.get(k)
        bindings = (inst.get(f"{_HELPER}i{k}", []) if p.query else [()]) if p else None
        if not unfold:
            p = None
        # Unfolded: rules whose conditional literals expand, and rules whose head gets
        # constants (which the split then turns into predicates of their own). Another
        # rule would only become many rules, each grounded batch after batch, for a join
        # the grounder does about as fast.
        head_static = _variables(r[1]) & set(p.static_vars) if p else set()
        if p is None or len(bindings) > MAX_INSTANCES or not (p.conditions or head_static
                                                             or len(bindings) <= 1):
            out.append(r)
            continue
        unfolded += 1
        for values in bindings:
            rule = _instance(r, p, dict(zip(p.static_vars, values)), inst, k, static, static_true, consts)
            if rule is not None:
                out.append(rule)
    origins: dict = {}
    if split:
        out, origins = _split(out, dynamic - roots, consts, every | roots | conditions)
    if needed is not None:
        # what the other parts read is needed too, where they are kept (not split)
        wanted = set(needed) | (other_reads if not split else set())
        out = _unread_rules_dropped(out, {sig for sig in every | set(origins)
                                          if origins.get(sig, sig)[:2] in wanted})
    # the static facts still read (by a rule or the caller)
    read = {s for r in out for s, _, _ in _rule_atoms(r)} | set(map(tuple, needed or ()))
    if others and not split:
        read = set(facts)  # the other parts may read any of them
    lines = keep + [f for sig, fs in facts.items() if sig in read for f in fs] + [_text(r) for r in out]
    if not split:
        for name, stmts in others.items():
            lines += [f"#program {name}."] + stmts + ["#program base."]
    return Specialised("\n".join(lines) + "\n", sum(len(fs) for fs in facts.values()),
                       len(dynamic_rules), len(out), unfolded, origins)


def _closure(heads: list[set], bodies: list[set], start: set) -> set:
    """``start`` and every predicate a rule with a head in it reads, transitively."""
    out = set(start)
    changed = True
    while changed:
        changed = False
        for h, b in zip(heads, bodies):
            if h & out and not b <= out:
                out |= b
                changed = True
    return out


def _reachable(after: dict, start) -> set:
    """The nodes reachable from ``start`` (itself included) along ``after`` (node -> nodes)."""
    seen, todo = {start}, [start]
    while todo:
        for n in after.get(todo.pop(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def _mentioned(node) -> set:
    """The predicates (name, arity) of every atom anywhere in a clingo AST statement, heads,
    conditions and statements of every kind included."""
    out: set = set()
    for n in walk(node):
        if n.ast_type == A.SymbolicAtom:
            f = n.symbol
            while f.ast_type == A.UnaryOperation:  # classical negation
                f = f.argument
            if f.ast_type == A.Function:
                out.add((f.name, len(f.arguments)))
            elif f.ast_type == A.SymbolicTerm and f.symbol.type == clingo.SymbolType.Function:
                out.add((f.symbol.name, len(f.symbol.arguments)))
    return out


def _finite_term(t, head: bool) -> bool:
    """A term whose grounding makes no new term: a variable, or a term without variables,
    or (in a body) a term without script calls, ranges or arithmetic over variables (clingo
    solves ``q(P,X+1)`` for X, which can make a term no atom had: ``q(P,X) :- q(P,X+1).``
    counts down without end)."""
    if t[0] == "var":
        return True
    if _has(t, "range") or _calls_script(t):
        return False
    if head:
        return not _variables(t)
    return not _arithmetic_over_variables(t)


def _arithmetic_over_variables(t) -> bool:
    if t[0] in ("bin", "un"):
        return bool(_variables(t))
    return any(_arithmetic_over_variables(c) for c in _children(t))


def _calls_script(t) -> bool:
    """Whether a term calls a script function (``@f(X)``) anywhere inside."""
    return (t[0] == "fun" and t[3]) or any(_calls_script(c) for c in _children(t))


def _plain_datalog(rule) -> bool:
    """Whether a rule is plain Datalog: a head atom of variables and ground terms, a body of
    atoms (either sign) and comparisons that bind nothing (no equality with a variable).
    Such rules make no new terms,
    so their grounding over finitely many atoms is finite."""
    head, body = rule[1], rule[2]
    if head[0] != "lit" or head[1] != NO or head[2][0] != "atom" or head[2][1][0] != "fun":
        return False
    if head[2][1][3] or not all(_finite_term(a, True) for a in head[2][1][2]):
        return False
    for b in body:
        if b[0] != "lit":
            return False
        x = b[2]
        if x[0] == "atom":
            if x[1][0] != "fun" or x[1][3] or not all(_finite_term(a, False) for a in x[1][2]):
                return False
        elif x[0] == "cmp":
            # an equality may bind a variable; one between constants (a parameter's value,
            # ``ssc_progressive_definition = clinician``) binds nothing
            binds = any(g is None or g[0] == ast.ComparisonOperator.Equal for g in x[2]) and _variables(x)
            if binds or _has(x, "range") or _calls_script(x[1]) or any(_calls_script(g[1]) for g in x[2]):
                return False
        elif x[0] != "bool":
            return False
    return True


def _finite_aggregate(x) -> bool:
    """Whether a body aggregate's grounding over finitely many atoms is finite: guards,
    element terms and conditions without ranges or script calls (an assignment such as
    ``S = #sum{W,D : w(P,D,W)}`` then gives one value per instance of the rule)."""
    if x[0] != "bagg":
        return False
    guards = [g[1] for g in (x[1], x[4]) if g is not None]
    terms = [t for ts, _ in x[3] for t in ts]
    if any(_has(t, "range") or _calls_script(t) for t in guards + terms):
        return False
    for c in (c for _, cs in x[3] for c in cs):
        a = c[2] if c[0] == "lit" else None
        if a is None or a[0] not in ("atom", "cmp", "bool") or _has(a, "range") or _calls_script(a):
            return False
    return True


def _finite_conditional(b) -> bool:
    """Whether a body element is a conditional literal (``holds(P,S) : all_of(C,S)``)
    without ranges or script calls. In a body it makes no atom and no term: it is the
    conjunction of its instances."""
    return b[0] == "cond" and not _has(b, "range") and not _calls_script(b) and \
        all(c[0] == "lit" and c[2][0] in ("atom", "cmp", "bool") for c in (b[1], *b[2]))


def _droppable(rule) -> str | None:
    """"plain" for a plain Datalog rule (:func:`_plain_datalog`), "aggregate" for one that
    would be plain Datalog but for body aggregates over finite terms
    (:func:`_finite_aggregate`) and conditional literals (:func:`_finite_conditional`),
    "conditional" for one with conditional literals and no aggregate, None for any other."""
    if _plain_datalog(rule):
        return "plain"
    body = rule[2]
    aggregates = [b for b in body if b[0] == "lit" and _finite_aggregate(b[2])]
    conditionals = [b for b in body if _finite_conditional(b)]
    rest = tuple(b for b in body if b not in aggregates and b not in conditionals)
    if (aggregates or conditionals) and _plain_datalog((rule[0], rule[1], rest)):
        return "aggregate" if aggregates else "conditional"
    return None


def _body_edges(rule) -> list[tuple[tuple[str, int], bool]]:
    """(predicate, negative) of every atom a rule's body reads. Negative: under ``not``,
    in an aggregate, or in the condition of a conditional literal; the literal of a
    conditional literal has its own sign (``holds(P,S) : all_of(C,S)`` reads holds
    positively: a conjunction of its instances)."""
    out = []
    for b in rule[2]:
        if b[0] == "cond":
            lit = b[1]
            out += [(sig, lit[1] != NO) for sig, _, _ in _atoms(lit, "nested", [])]
            out += [(sig, True) for c in b[2] for sig, _, _ in _atoms(c, "nested", [])]
        elif b[0] == "lit" and b[2][0] == "atom":
            out += [(sig, b[1] != NO) for sig, _, _ in _atoms(b, "nested", [])]
        else:
            out += [(sig, True) for sig, _, _ in _atoms(b, "nested", [])]
    return out


def _unread_rules_dropped(rules: list, needed: set) -> list:
    """``rules`` without those that cannot contribute to atoms of ``needed`` predicates,
    where dropping them changes nothing a caller sees.

    A rule is dropped only if no kept rule or constraint reads its head (transitively),
    it is plain Datalog (:func:`_plain_datalog`) or plain Datalog with body aggregates and
    conditional literals over finite terms (:func:`_droppable`: ``sledai2k_lo(P,S) :- ...,
    S = #sum{...}``, ``holds(P,C) :- ..., holds(P,S) : all_of(C,S)``), the dropped rules
    are stratified among themselves (no cycle through a negated literal, an aggregate or
    a condition: :func:`_body_edges`), and no dropped rule with an aggregate is recursive (its head is not
    reached from its body through dropped rules: an aggregate's value is a new term, and a
    rule that feeds it back could make new terms without end). The dropped part is then a
    stratified program over the kept part's atoms: it has exactly one extension of every
    answer set of the kept part, and its grounding is finite. So the kept program has the
    same answer sets restricted to what the caller reads, the same coherence, and grounds
    without end exactly when the whole program does (a rule such as ``q(P,X+1) :- q(P,X)``
    is never dropped: tests/test_hardening.py).

    Kept besides: constraints, with what they read; every atom of a kept rule's head when
    that head is not one literal (a choice, a disjunction, a conditional literal:
    ``a(P) ; b(P) :- p(P).`` reads ``b`` as much as it defines it); any other rule that
    nothing reads, with everything it reads. An ``#external`` condition reads only roots
    and undefined predicates (:func:`specialise` refuses any other).

    The program is assumed to be one clingo accepts: a dropped rule's unsafe variables go
    unreported (knowledge bases are checked when loaded). A dropped rule's grounding is
    not paid: one that would only be large, not endless, no longer meets the grounding
    limits."""
    atoms = [_rule_atoms(r) for r in rules]
    heads = [{s for s, _, c in a if c == "head"} for a in atoms]
    bodies = [{s for s, _, c in a if c != "head"} for a in atoms]
    keep = set(needed)
    for h, b in zip(heads, bodies):
        if not h:  # a constraint: it reads what it reads
            keep |= b
    while True:
        keep = _closure(heads, bodies, keep)
        more = set()
        for r, h, b in zip(rules, heads, bodies):
            if h and not h & keep and _droppable(r) is None:
                more |= h | b
            elif h & keep and r[1][0] != "lit":
                # a choice, disjunction or conditional head: which of its atoms hold depends
                # on all of them (minimality, bounds, conditions), read or not
                more |= h
        if more <= keep:
            break
        keep |= more
    dropped = [k for k, h in enumerate(heads) if h and not h & keep]
    defined = set().union(*(heads[k] for k in dropped)) if dropped else set()
    edges: dict[tuple, bool] = {}  # (head, body predicate) among the dropped -> negative
    for k in dropped:
        for s, negative in _body_edges(rules[k]):
            if s in defined:
                for h in heads[k]:
                    edges[h, s] = edges.get((h, s), False) or negative
    # Stratified: no negative edge h -> s with h reachable again from s. (Plain search over
    # a handful of predicates; networkx would cost every screening command 0.3 s to import.)
    after: dict = {}
    for h, s in edges:
        after.setdefault(h, set()).add(s)
    for (h, s), negative in edges.items():
        if negative and h in _reachable(after, s):
            return rules  # not stratified: keep every rule
    for k in dropped:
        if _droppable(rules[k]) == "aggregate" and any(
                heads[k] & _reachable(after, s) for s in bodies[k] & defined):
            return rules  # an aggregate's value fed back: keep every rule
    gone = set(dropped)
    return [r for k, r in enumerate(rules) if k not in gone]


# ---------------------------------------------------------------------------------------
# Splitting derived predicates on constant arguments

def _rename(n, sig, j: int, names: dict, fresh, consts):
    """n with atoms of sig, constant c at position j, renamed names[c](args without j)."""
    k = n[0]
    if k == "atom":
        f = n[1]
        if f[0] == "fun" and not f[3] and (f[1], len(f[2])) == sig:
            c = _ground_symbol(f[2][j], consts)
            if c is None:
                raise Unsupported("internal: a split position that is not constant")
            if c not in names:  # a constant no rule derives: a predicate with no rule
                names[c] = fresh(sig[0])
            return ("atom", ("fun", names[c], f[2][:j] + f[2][j + 1:], False))
        return n
    if k in ("var", "sym", "bool", "fun", "un", "bin", "range", "cmp"):
        return n
    if k == "lit":
        return ("lit", n[1], _rename(n[2], sig, j, names, fresh, consts))
    if k == "cond":
        return ("cond", _rename(n[1], sig, j, names, fresh, consts),
                tuple(_rename(c, sig, j, names, fresh, consts) for c in n[2]))
    if k == "bagg":
        return ("bagg", n[1], n[2], tuple((terms, tuple(_rename(c, sig, j, names, fresh, consts) for c in cond))
                                          for terms, cond in n[3]), n[4])
    if k == "hagg":
        return ("hagg", n[1], n[2], tuple((terms, _rename(cond, sig, j, names, fresh, consts))
                                          for terms, cond in n[3]), n[4])
    if k == "agg":
        return ("agg", n[1], tuple(_rename(e, sig, j, names, fresh, consts) for e in n[2]), n[3])
    if k == "disj":
        return ("disj", tuple(_rename(e, sig, j, names, fresh, consts) for e in n[1]))
    if k == "rule":
        return ("rule", _rename(n[1], sig, j, names, fresh, consts),
                tuple(_rename(b, sig, j, names, fresh, consts) for b in n[2]))
    raise Unsupported(k)


def _ranged(occurrences: list, j: int) -> set[str]:
    """Variables at position j of positive body literals (of the predicate being split)."""
    return {f[2][j][1] for f, ctx in occurrences
            if ctx == "plain+" and f[2][j][0] == "var" and f[2][j][1] != "_"}


def _split_position(sig, occurrences: list, consts) -> tuple[int, list] | None:
    """The first position at which sig can be split, with its head constants, or None.

    Splittable at j: every rule head of sig is a plain literal with a constant at j, and in
    every rule each body atom of sig has at j a constant or a variable that also stands at
    j of a positive body literal of sig (its range: the head constants).
    """
    heads = [f for _, f, ctx, plain in occurrences if ctx == "head"]
    if not heads or not all(plain for _, _, ctx, plain in occurrences if ctx == "head"):
        return None
    by_rule: dict[int, list] = {}
    for k, f, ctx, _ in occurrences:
        if ctx != "head":
            by_rule.setdefault(k, []).append((f, ctx))
    for j in range(sig[1]):
        values = [_ground_symbol(f[2][j], consts) for f in heads]
        if any(v is None for v in values):
            continue
        n = len(set(values))
        ok = True
        for occ in by_rule.values():
            ranged = _ranged(occ, j)
            if n ** len(ranged) > MAX_EXPANSION or not all(
                    _ground_symbol(f[2][j], consts) is not None or (f[2][j][0] == "var" and f[2][j][1] in ranged)
                    for f, _ in occ):
                ok = False
                break
        if ok:
            return j, sorted(set(values))
    return None


def _split(rules: list, candidates: set, consts: set[str], every: set) -> tuple[list, dict]:
    """Split derived predicates on arguments that are constant in every rule head (step 3
    of the module docstring), until nothing splits (verdict(P,sle,eligible) becomes
    verdict_k(P)). An atom with a constant no rule derives becomes an atom of a predicate
    with no rule: false, as it was.

    Returns the rules and, for each new predicate, its original (name, arity, fixed values).
    """
    origins: dict[tuple[str, int], tuple[str, int, tuple]] = {}
    used = {n for n, _ in every}
    counter = [0]

    def fresh(stem: str) -> str:
        while True:
            counter[0] += 1
            name = f"{stem}_{counter[0]}"
            if name not in used:
                used.add(name)
                return name

    pending = set(candidates)
    while pending:
        occurrences: dict = {}
        for k, r in enumerate(rules):
            plain_head = r[1][0] == "lit"
            for sig, f, ctx in _rule_atoms(r):
                if sig in pending:
                    occurrences.setdefault(sig, []).append((k, f, ctx, plain_head))
        chosen = []
        for sig in sorted(pending):
            found = _split_position(sig, occurrences.get(sig, []), consts)
            if found:
                chosen.append((sig, *found))
        # What did not split now may split once others have (their rules expanded to
        # constants): every unsplit candidate is tried again while anything splits.
        pending = (pending - {c[0] for c in chosen}) if chosen else set()
        for sig, j, values in chosen:
            base = origins.pop(sig, (sig[0], sig[1], ()))
            free = [i for i in range(base[1]) if i not in dict(base[2])]
            names = {}
            for c in values:
                names[c] = fresh(base[0])
                new_sig = (names[c], sig[1] - 1)
                origins[new_sig] = (base[0], base[1], tuple(sorted(base[2] + ((free[j], c),))))
                if new_sig[1] > 1:
                    pending.add(new_sig)
            out = []
            for r in rules:
                occ = [(f, ctx) for s, f, ctx in _rule_atoms(r) if s == sig]
                if not occ:
                    out.append(r)
                    continue
                combos: list[dict] = [{}]
                for v in sorted(_ranged(occ, j)):
                    combos = [{**c, v: x} for c in combos for x in values]
                for env in combos:
                    out.append(_rename(_substitute(r, env) if env else r, sig, j, names, fresh, consts))
            rules = out
    return rules, origins
