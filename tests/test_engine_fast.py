"""The fast engine (the knowledge base specialised to its static facts, pyasp_screen.engine.engine)
gives exactly the results of the reference engine (the programs as written,
pyasp_screen.engine.reference) on many generated patients of every bundled knowledge base,
in batches of every size; and the specialiser itself keeps answer sets on small programs
built to exercise each of its steps.

The completion-semantics oracle (test_semantics.py, test_explain.py) checks the fast engine
against brute force independently.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import clingo
import pytest
from clingo import ast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import SLOTS, as_findings
from pyasp_screen.engine.engine import VOCABULARY_ARITY, Engine, specialised
from pyasp_screen.engine.reference import ReferenceEngine
from pyasp_screen.findings.derive import derive
from pyasp_screen.inputs.files import load_file
from pyasp_screen.inputs.record import RecordError, RecordInvalid, parse_record
from pyasp_screen.knowledge import specialise as spec
from pyasp_screen.knowledge.kb import load_kb
from pyasp_screen.knowledge.specialise import Specialised, Unsupported, specialise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from cohort import synthetic_cohort  # noqa: E402

AUTHORED = ROOT / "tests" / "data" / "authored" / "nct07432334"  # the authored fixture
KBS = ["ct1190b", "ct1190b-amendment1", "nct07193667", str(AUTHORED)]


def kb_dir(name: str) -> Path:
    return Path(name) if Path(name).is_absolute() else ROOT / "kb" / name


def outcome(r):
    return (r.patient, r.statuses, r.verdicts, r.overall, sorted(r.contradictions))


def findings_of(kb, records):
    out = []
    for rec in records:
        try:
            out.append(derive(parse_record(rec, "cohort").record, kb))
        except RecordInvalid:
            pass
    return out


@pytest.mark.parametrize("name", KBS)
def test_specialised_for_every_bundled_kb(name):
    """Every bundled knowledge base compiles (no fallback to the programs as written)."""
    s = specialised(load_kb(name))
    assert isinstance(s, Specialised), s
    assert s.unfolded > 0 and s.origins  # something was compiled


@pytest.mark.parametrize("name", KBS)
@pytest.mark.parametrize("p_missing", [0.0, 0.15, 0.6])
def test_fast_equals_reference_on_a_synthetic_cohort(name, p_missing):
    kb = load_kb(name)
    fs = findings_of(kb, synthetic_cohort(250, seed=7 + int(100 * p_missing), p_missing=p_missing))
    assert len(fs) > 200
    fast, ref = Engine(kb), ReferenceEngine(kb)
    want = [outcome(r) for r in ref.screen(fs)]
    for size in (37, len(fs)):
        got = [outcome(r) for i in range(0, len(fs), size) for r in fast.screen(fs[i:i + size])]
        assert got == want, f"batch size {size}"
    assert [outcome(fast.screen([f])[0]) for f in fs[:25]] == want[:25]  # batches of one
    # not a vacuous comparison: the cohort reaches several verdicts and statuses
    assert len(Counter(w[3] for w in want)) >= 2
    assert {s for w in want for s in w[1].values()} == {"met", "not_met", "unknown"}


@pytest.mark.parametrize("name", KBS)
def test_fast_equals_reference_on_the_example_patients(name):
    kb = load_kb(name)
    fs = []
    for path in sorted((kb_dir(name) / "cases").glob("*.yaml")):
        if path.name.endswith(".expected.yaml"):
            continue
        for item in load_file(path):
            if not isinstance(item, RecordError):
                try:
                    fs.append(derive(item.record, kb))
                except RecordInvalid:
                    pass
    assert fs
    ids = Counter(f.patient for f in fs)
    fs = [f for f in fs if ids[f.patient] == 1]  # a batch needs unique IDs
    assert [outcome(r) for r in Engine(kb).screen(fs)] == [outcome(r) for r in ReferenceEngine(kb).screen(fs)]


@st.composite
def small_records(draw):
    slots = sorted(SLOTS)
    unknown = draw(st.sets(st.sampled_from(slots), max_size=8))
    return {s: None if s in unknown else draw(st.integers(0, len(SLOTS[s]) - 1)) for s in slots}


KB = load_kb("ct1190b")
FAST, REF = Engine(KB), ReferenceEngine(KB)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(small_records(), min_size=1, max_size=12))
def test_fast_equals_reference_on_hand_made_findings(records):
    """Findings written as program text (the oracle's records), in batches."""
    batch = [as_findings(a, f"p{i}") for i, a in enumerate(records)]
    assert [outcome(r) for r in FAST.screen(batch)] == [outcome(r) for r in REF.screen(batch)]


def test_facts_outside_the_vocabulary_take_the_programs_as_written():
    """A hand-made fact the specialised program was not compiled for (here a static predicate
    given as a patient's fact) is screened with the knowledge base as written."""
    base = as_findings({s: 0 for s in SLOTS}, "q")
    extra = base.findings + [type(base.findings[0])('window(anc,1000)', "x", "x")]
    odd = type(base)(base.patient, extra)
    assert [outcome(r) for r in FAST.screen([odd])] == [outcome(r) for r in REF.screen([odd])]


# ---------------------------------------------------------------------------------------
# The specialiser on small programs

def answer(program: str, facts: str, s: Specialised | None = None) -> set[str]:
    """The one answer set's atoms (split ones read back as the original atoms)."""
    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], program + "\n" + facts)
    ctl.ground([("base", [])])
    out: set[str] = set()

    def on_model(m):
        for sym in m.symbols(atoms=True):
            if s is not None:
                name, args = s.original(sym)
                sym = clingo.Function(name, args)
            out.add(str(sym))

    assert ctl.solve(on_model=on_model).satisfiable
    return out


PROGRAM = """
#const lim = 5.
limit(x, 3). limit(y, 7). limit(z, lim).
group(g1, x). group(g1, y). group(g2, z).
blocked(y).
small(N) :- limit(N, T), T < 6.
above(P, N) :- val(P, N, V), limit(N, T), V > T, not blocked(N).
all_above(P, G) :- person(P), group(G, _), above(P, N) : group(G, N).
some_above(P, G) :- group(G, N), above(P, N).
none(P, G) :- person(P), group(G, _), not some_above(P, G).
total(P, S) :- person(P), S = #sum { V, N : val(P, N, V), small(N) }.
older(P, N) :- val(P, N, V), val(P, N, W), W < V.
flag(P, c) :- above(P, x).
flag(P, d) :- above(P, z), not flag(P, c).
odd(P) :- flag(P, e).
"""


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["x", "y", "z", "w"]), st.integers(0, 9)),
                max_size=12))
def test_specialised_program_has_the_same_answer_set(vals):
    """Unfolding (static joins, negative static literals, #const names, conditional literals
    over static conditions), splitting (flag/2 on its constant, an atom of a constant no rule
    derives) and aggregates left as written: the same atoms as the program as written."""
    facts = "".join(f"person({p}). val({p},{n},{v})." for p, n, v in vals)
    s = specialise(PROGRAM, [], [("person", 1), ("val", 3)])
    assert s.unfolded and s.origins
    dynamic = {"above", "all_above", "some_above", "none", "total", "older", "flag", "odd", "person", "val"}
    want = {a for a in answer(PROGRAM, facts) if a.split("(")[0] in dynamic}
    got = {a for a in answer(s.text, facts, s) if a.split("(")[0] in dynamic}
    assert got == want


def test_parameters_are_compiled_in():
    """-c values reach the static part: the specialised program is for those values."""
    for value, expected in (("5", True), ("9", False)):
        s = specialise(PROGRAM, ["-c", f"lim={value}"], [("person", 1), ("val", 3)])
        atoms = answer(s.text, "person(1). val(1,z,7).", s)
        assert ("above(1,z)" in atoms) is expected


UNREAD = PROGRAM + """
conflict(P, N) :- above(P, N), older(P, N).
lonely(P, N) :- conflict(P, N), not flag(P, c), not some_above(P, g2).
chain(P, N) :- lonely(P, N).
chain(P, N) :- chain(P, N), val(P, N, 0).
n_conflicts(P, C) :- person(P), C = #count { N : conflict(P, N) }.
"""


def rule_heads(s: Specialised) -> set[str]:
    return {line.split("(")[0].rstrip("0123456789_") for line in s.text.splitlines() if ":-" in line}


def test_an_unread_aggregate_that_feeds_its_value_back_is_kept():
    """An aggregate's value is a new term: a rule that feeds it back to itself (n(P,S)
    from n(P,X), positive recursion, which stratification allows) could make terms without
    end (here it stops at 40), so such a rule is never dropped, read or not."""
    program = """
n(P, 0) :- person(P).
n(P, S) :- n(P, X), X < 40, S = #sum { X + 1, a : person(P); X + 2, b : person(P) }.
shown(P) :- person(P).
"""
    s = specialise(program, [], [("person", 1)], needed=[("shown", 1)])
    assert "n" in rule_heads(s), s.text
    want = {a for a in answer(program, "person(1).")}
    assert {a for a in answer(s.text, "person(1).", s)} == want
    # the same rule without its recursion is dropped
    flat = program.replace("n(P, S) :- n(P, X),", "m(P, S) :- n(P, X),")
    s = specialise(flat, [], [("person", 1)], needed=[("shown", 1)])
    assert not rule_heads(s) & {"n", "m"}, s.text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["x", "y", "z", "w"]), st.integers(0, 9)),
                max_size=12))
def test_rules_nothing_reads_are_dropped_and_what_is_read_is_unchanged(vals):
    """With ``needed``, plain Datalog rules whose atoms nothing needed reads (conflict,
    lonely, chain: positive, negated and recursive) are gone, and so are rules with
    aggregates (total, and n_conflicts over a dropped predicate); the needed atoms are those
    of the program as written."""
    facts = "".join(f"person({p}). val({p},{n},{v})." for p, n, v in vals)
    s = specialise(UNREAD, [], [("person", 1), ("val", 3)], needed=[("all_above", 2), ("none", 2)])
    heads = rule_heads(s)
    assert not heads & {"conflict", "lonely", "chain", "flag", "odd", "older", "total", "n_conflicts"}, heads
    assert {"all_above", "none", "above", "some_above"} <= heads
    want = {a for a in answer(UNREAD, facts) if a.split("(")[0] in ("all_above", "none")}
    got = {a for a in answer(s.text, facts, s) if a.split("(")[0] in ("all_above", "none")}
    assert got == want


@pytest.mark.parametrize("extra, kept", [
    # grounds without end: kept, with what it reads, so grounding stops as written
    ("q(P,0) :- person(P). q(P,X+1) :- q(P,X).", {"q"}),
    # the same through arithmetic in a body atom (clingo solves X+1 = 5 for X): kept
    ("cd(P,X) :- val(P,_,X). cd(P,X) :- cd(P,X+1).", {"cd"}),
    # a new term by assignment: kept
    ("next(P,Y) :- val(P,_,X), Y = X+1.", {"next"}),
    # an aggregate whose value the rule feeds back (positive recursion), or a script
    # call: kept (an aggregate that is not fed back is dropped, above)
    ("cnt(P,0) :- person(P). cnt(P,N) :- cnt(P,M), M < 9, N = #sum { M+1 : person(P) }.", {"cnt"}),
    ("sz(P,N) :- person(P), N = #count { V : val(P,_,V), V = 1..3 }.", {"sz"}),
    ("ext(P) :- person(P), @f(P) = 1.", {"ext"}),
    # an odd loop nothing reads decides whether there is an answer set: every rule kept
    ("bad(P) :- person(P), not bad(P).", {"bad", "conflict", "lonely", "chain"}),
])
def test_unread_rules_that_could_change_the_answer_or_not_end_are_kept(extra, kept):
    s = specialise(UNREAD + extra, [], [("person", 1), ("val", 3)], needed=[("all_above", 2)])
    assert kept <= rule_heads(s)


def answer_sets(program: str, facts: str, keep: set[str], s: Specialised | None = None,
                args: tuple[str, ...] = ()) -> set[frozenset]:
    """Every answer set's atoms of the ``keep`` predicates (split ones read back)."""
    ctl = clingo.Control(["--warn=none", "0", *args])
    ctl.add("base", [], program + "\n" + facts)
    ctl.ground([("base", [])])
    out: set[frozenset] = set()

    def on_model(m):
        atoms = set()
        for sym in m.symbols(atoms=True):
            name, args = s.original(sym) if s is not None else (sym.name, sym.arguments)
            if name in keep:
                atoms.add(str(clingo.Function(name, args)))
        out.add(frozenset(atoms))

    ctl.solve(on_model=on_model)
    return out


@pytest.mark.parametrize("program", [
    # a head of more than one atom decides its read atoms by its unread ones (a tester's
    # report: each of these lost b's rule, and the answer sets of a changed)
    "a(P) ; b(P) :- person(P). b(P) :- person(P).",
    "1 { a(P) ; b(P) } 1 :- person(P). b(P) :- person(P).",
    "a(P) : b(P) :- person(P). b(P) :- person(P).",
    "{ a(P) : b(P) } :- person(P). b(P) :- person(P).",
    "#count { 1 : a(P) : b(P) } >= 0 :- person(P). b(P) :- person(P).",
    "a(P) ; b(P) :- person(P). b(P) :- c(P). c(P) :- person(P), not d(P).",
    # unread atoms a kept body reads through a condition
    "a(P) :- person(P), b(Q) : person(Q). b(P) :- person(P).",
    # an #external's condition on roots only
    "#external e(X) : person(X). [true]\na(X) :- person(X), e(X). b(X) :- person(X), not e(X).",
])
def test_what_decides_a_read_atom_is_kept(program):
    facts = "person(1). person(2)."
    s = specialise(program, [], [("person", 1)], needed=[("a", 1)])
    assert answer_sets(s.text, facts, {"a"}, s) == answer_sets(program, facts, {"a"})


@pytest.mark.parametrize("program", [
    # testers' reports: the drop lost u's rule and with it every e(X); a split renamed
    # b(X,"x") to b_1(X) under the condition; and clingo reads such a condition where
    # the statement stands, while the program written anew puts every #external first
    "#external e(X) : u(X). [true]\nu(X) :- person(X). a(X) :- person(X), e(X).",
    "#external e(X) : u(X). [free]\nu(X) :- person(X). a(X) :- person(X), e(X).",
    '#external e(X) : b(X,"x"). [true]\nb(X,"x") :- person(X). a(X) :- person(X), e(X).',
    "e(P,y) ; a(P,x) :- person(P); not e(P,x).\n#external e(P,X) : a(P,X).\n"
    "#external e(P,x) : a(P,x). [true]",
    # a #const in another part is global in clingo (the split read k as a constant)
    "#program foo. #const k=z.\n#program base.\na(P,k) :- person(P). b(P) :- a(P,z).",
])
def test_externals_on_derived_atoms_and_other_parts_constants_are_not_specialised(program):
    """The engine screens such a knowledge base as written (specialised() is a reason)."""
    with pytest.raises(Unsupported):
        specialise(program, [], [("person", 1)], needed=[("a", 1)])


@pytest.mark.parametrize("program, roots, needed, facts", [
    # a needed predicate with static facts keeps them, read by a rule or not
    ("s(1). a(P) :- person(P). b(P) :- person(P), s(P).", [("person", 1)], [("a", 1), ("s", 1)],
     "person(1)."),
    # a split predicate's new name is no root's: flag(P,c) must not become flag_1/1
    ("flag(P,c) :- person(P). out(P) :- flag(P,c).", [("person", 1), ("flag_1", 1)], [("flag", 2)],
     "person(1). flag_1(5)."),
])
def test_needed_static_facts_and_split_names(program, roots, needed, facts):
    keep = {n for n, _ in needed}
    s = specialise(program, [], roots, needed=needed)
    assert answer_sets(s.text, facts, keep, s) == answer_sets(program, facts, keep)


# Random programs for the property below: derived a/2 ... f/2 over the roots person/1
# and val/2, static st/1 and sd/1, a #const k, every body literal sign, comparisons,
# choices, disjunctions, constraints, aggregates, conditional literals and #external
# statements on roots. Every rule is safe: P is bound by person(P), X by st, sd or val.
_DERIVED = ["a", "b", "c", "d", "f"]


@st.composite
def _rules(draw) -> str:
    body, bound = ["person(P)"], False
    binder = draw(st.sampled_from(["", "", "st(X)", "sd(X)", "val(P,X)"]))
    if binder:
        body.append(binder)
        bound = True
    args = ["x", "y", "k", '"x"'] + (["X", "X"] if bound else [])
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        sign = draw(st.sampled_from(["", "", "", "not ", "not not "]))
        body.append(f"{sign}{draw(st.sampled_from(_DERIVED))}(P,{draw(st.sampled_from(args))})")
    if bound and draw(st.booleans()):
        body.append(draw(st.sampled_from(["X != x", "X < y", "X != k"])))
    extra = draw(st.sampled_from(["", "", "", "count", "condition"]))
    if extra == "count":
        body.append(f"#count {{ Y : {draw(st.sampled_from(_DERIVED))}(P,Y) }} = 0")
    elif extra == "condition":
        body.append(f"{draw(st.sampled_from(_DERIVED))}(P,Z) : st(Z)")
    head = f"{draw(st.sampled_from(_DERIVED))}(P,{draw(st.sampled_from(args))})"
    form = draw(st.sampled_from(["plain"] * 4 + ["choice", "disjunction", "disjunction", "constraint"]))
    if form == "choice":
        head = "{ " + head + " }"
    elif form == "disjunction":
        head += f" ; {draw(st.sampled_from(_DERIVED))}(P,{draw(st.sampled_from(args))})"
    elif form == "constraint":
        head = ""
    return f"{head} :- {'; '.join(body)}."


@st.composite
def _programs(draw) -> tuple[str, list, tuple]:
    lines = ["#const k=z. st(x). st(y). st(k). sd(X) :- st(X), X != y."]
    lines += draw(st.lists(_rules(), min_size=2, max_size=7))
    for _ in range(draw(st.integers(0, 1))):
        cond = draw(st.sampled_from(["person(P)", "val(P,X)"]))
        arg = "X" if "X" in cond else draw(st.sampled_from(["x", "k"]))
        lines.append(f"#external e(P,{arg}) : {cond}.{draw(st.sampled_from(['', ' [true]']))}")
        lines.append(f"{draw(st.sampled_from(_DERIVED))}(P,x) :- person(P), e(P,{arg}).")
    needed = [(draw(st.sampled_from(_DERIVED)), 2)]
    return "\n".join(lines), needed, draw(st.sampled_from([(), ("-c", "k=x")]))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs(), st.lists(st.tuples(st.integers(1, 2), st.sampled_from(["x", "y", "k", "z"])),
                             max_size=3))
def test_specialised_random_programs_have_the_same_answers(generated, vals):
    """Random programs (testers' harnesses made a property): every answer set restricted
    to the needed predicates, and whether there is one, as clingo gives for the program as
    written. A program specialise refuses (Unsupported) is screened as written."""
    program, needed, args = generated
    facts = "person(1). person(2). " + " ".join(f"val({p},{v})." for p, v in vals)
    try:
        s = specialise(program, list(args), [("person", 1), ("val", 2)], needed=needed)
    except Unsupported:
        return
    keep = {n for n, _ in needed}
    assert answer_sets(s.text, facts, keep, s, args) == answer_sets(program, facts, keep, args=args), \
        s.text


def test_both_engines_ignore_what_a_knowledge_base_shows_of_its_own(tmp_path):
    """An author's ``#show zz/1.`` (for clingo on the command line) changes no result of
    either engine; the reference engine read such an atom as a status row and stopped."""
    for name in ("ct1190b", "lib"):
        shutil.copytree(ROOT / "kb" / name, tmp_path / name)
    with open(tmp_path / "ct1190b" / "common.lp", "a") as fh:
        fh.write("\nzz(P) :- patient(P).\n#show zz/1.\n")
    kb = load_kb(str(tmp_path / "ct1190b"))
    paths = [p for p in sorted((ROOT / "kb/ct1190b/cases").glob("*.yaml"))
             if not p.name.endswith(".expected.yaml")][:20]
    cases = [derive(next(iter(load_file(p))).record, KB) for p in paths]
    assert len(cases) == 20
    fast, ref = Engine(kb).screen(cases), ReferenceEngine(kb).screen(cases)
    assert [(r.statuses, r.verdicts, r.overall) for r in fast] == \
        [(r.statuses, r.verdicts, r.overall) for r in ref] == \
        [(r.statuses, r.verdicts, r.overall) for r in FAST.screen(cases)]


def test_the_engine_drops_what_screening_never_reads():
    """CT1190B's contradiction/1 rules (core.lp's contradiction/2, split) are not in the
    engine's program; contradictions are read from holds and fails (test_fast_equals_*)."""
    assert "contradiction" not in rule_heads(FAST.specialised)
    assert FAST.specialised.rules_out < specialise(KB.program_text(), KB.clingo_args(),
                                                   list(VOCABULARY_ARITY.items())).rules_out


def test_screening_imports_no_graph_library():
    """Compiling and screening a patient, as a screening worker does, leaves networkx
    unimported (0.3 s and 17 MiB a process): only explanation graphs need it."""
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from pyasp_screen.engine.engine import Engine\n"
            "from pyasp_screen.findings.derive import derive\n"
            "from pyasp_screen.inputs.files import load_file\n"
            "from pyasp_screen.knowledge.kb import load_kb\n"
            "kb = load_kb(sys.argv[1])\n"
            "loaded = next(iter(load_file(Path(sys.argv[2]))))\n"
            "print(Engine(kb).screen([derive(loaded.record, kb)])[0].overall)\n"
            "print('networkx' in sys.modules)\n")
    case = ROOT / "kb/ct1190b/cases/sle-eligible.yaml"
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "kb/ct1190b"), str(case)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["eligible", "False"]


@pytest.mark.parametrize("text", [
    "{ a }. b(P) :- p(P), a.",                    # a choice in the static part
    "a :- not b. b :- not a. c(P) :- p(P), a.",   # a static part with two answer sets
    "q(P) :- p(P). #minimize { 1,P : q(P) }.",    # optimisation
    "-a. b(P) :- p(P), -a.",                      # classical negation
])
def test_unsupported_programs_are_refused(text):
    with pytest.raises(Unsupported):
        specialise(text, [], [("p", 1)])


@pytest.mark.parametrize("name", KBS)
def test_the_tree_prints_every_rule_back(name):
    """The specialiser's tuples print every rule of the bundled knowledge bases as clingo
    reads it (parsed again, the same rule)."""
    statements = []
    ast.parse_string(load_kb(name).program_text(), statements.append)
    n = 0
    for stm in statements:
        if stm.ast_type != ast.ASTType.Rule:
            continue
        for rule in stm.unpool():
            again = []
            ast.parse_string(spec._text(spec._tree(rule)), again.append)
            assert str(again[-1]) == str(rule)
            n += 1
    assert n > 50


def test_a_batch_of_many_patients_keeps_positions():
    """Results come back in input order whatever the order of the model's atoms."""
    fs = findings_of(KB, synthetic_cohort(120, seed=3))
    random.Random(5).shuffle(fs)
    got = FAST.screen(fs)
    assert [r.patient for r in got] == [f.patient for f in fs]
    assert [outcome(r) for r in got] == [outcome(r) for r in REF.screen(fs)]


def test_vocabulary_arity_is_the_fact_vocabulary():
    assert VOCABULARY_ARITY["quantity"] == 5 and VOCABULARY_ARITY["patient"] == 1


def test_a_specialised_program_survives_pickling():
    """clingo Symbols pickle as process-local handles: the split constants travel as text."""
    import pickle

    s = specialised(KB)
    again = pickle.loads(pickle.dumps(s))
    assert again.text == s.text
    assert {k: (n, a, [str(v) for _, v in f]) for k, (n, a, f) in again.origins.items()} == \
        {k: (n, a, [str(v) for _, v in f]) for k, (n, a, f) in s.origins.items()}


@pytest.mark.parametrize("statement", [
    "{ x(P) : b(P) } :- t(P).",                    # a condition in a choice head
    "x(P) : b(P) :- t(P).",                        # in a conditional head
    "#count { 1,P : x(P) : b(P) } = 1 :- t(P).",   # in a head aggregate
    "x(P) : b(P); y(P) :- t(P).",                  # in a disjunction
    "#external x(P) : b(P). [true]\ny(P) :- x(P).",  # an #external's condition
    "{ c(P) } :- person(P).\n:~ b(P), not c(P). [1,P]",  # a weak constraint
])
def test_what_another_part_mentions_anywhere_is_kept(statement):
    """A predicate another part mentions anywhere (a head's condition, an #external, a weak
    constraint) keeps its base rules: every answer set (and optimum) is the same."""
    program = f"b(P) :- person(P).\nt(P) :- person(P).\n#program status.\n{statement}\n#program base.\n"
    spec = specialise(program, [], [("person", 1)], split=False, unfold=False, needed=[("t", 1)])
    assert "b" in rule_heads(spec), spec.text

    def models(text: str) -> set[frozenset]:
        ctl = clingo.Control(["--warn=none", "0", "--opt-mode=optN"])
        ctl.add("base", [], text + "\nperson(1).")
        ctl.ground([("base", []), ("status", [])])
        out: set[frozenset] = set()
        ctl.solve(on_model=lambda m: out.add(frozenset(str(a) for a in m.symbols(atoms=True)
                                                      if a.name in ("t", "x", "y", "c")))
                  if m.optimality_proven or not m.cost else None)
        return out

    assert models(spec.text) == models(program)


def test_what_another_program_part_reads_is_kept():
    """Without split, another part (core.lp's ``status``) is kept as written, so the rules
    it reads stay however little the caller needs."""
    program = """
sick(P) :- person(P), val(P, x, V), V > 3.
tall(P) :- person(P), val(P, y, V), V > 5.
#program status.
status(P, sick) :- sick(P).
#program base.
"""
    kept = specialise(program, [], [("person", 1), ("val", 3)], split=False, unfold=False, needed=[("tall", 1)])
    assert {"sick", "tall"} <= rule_heads(kept) and "#program status." in kept.text
    ctl = clingo.Control(["--warn=none"])
    ctl.add("base", [], kept.text + "person(1). val(1,x,4).")
    ctl.ground([("base", []), ("status", [])])
    atoms: set[str] = set()
    ctl.solve(on_model=lambda m: atoms.update(str(a) for a in m.symbols(atoms=True)))
    assert "status(1,sick)" in atoms


def test_conditional_literals_and_equalities_between_constants_are_dropped_when_unread():
    """A rule with a conditional literal in its body (core.lp's all_of, eligible) or an
    equality of a parameter with a constant makes no term, so it goes when nothing reads it;
    positive recursion through a conditional literal is stratified (a conjunction of its
    instances), and a negated one in a cycle keeps every rule."""
    program = """
#const mode = strict.
part(g, x). part(g, y).
ok(P, N) :- val(P, N, V), V > 2.
ok(P, G) :- part(G, _), person(P), ok(P, N) : part(G, N).
strict(P) :- person(P), mode = strict, not ok(P, g).
shown(P) :- val(P, z, _).
"""
    s = specialise(program, [], [("person", 1), ("val", 3)], needed=[("shown", 1)])
    assert not rule_heads(s) & {"ok", "strict"}, s.text
    looped = program + "odd(P) :- person(P), not odd(P) : part(g, P).\n"
    s = specialise(looped, [], [("person", 1), ("val", 3)], needed=[("shown", 1)])
    assert {"ok", "strict", "odd"} <= rule_heads(s), s.text
