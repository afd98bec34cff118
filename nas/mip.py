"""Puzzle's architecture search as a grouped-knapsack MIP (METHODS §2.6), solved by HiGHS.

Why HiGHS (`highspy`): an actively maintained open-source branch-and-cut MIP solver
shipped as a self-contained pip wheel (no external CBC binary talking through files as
with PuLP, no unmaintained bindings as with python-mip); the model is passed as sparse
arrays in one call, so an 80-layer x 54-variant problem builds and solves in well under a
second, and a diversity cut is just one more row.

x[i, j] = 1 picks candidate j for layer i. Minimise the summed block score (KL from the
replace-1-block scoring) subject to: one candidate per layer, and every constraint
`lower <= offset + sum_ij cost[i][j] x[i, j] <= upper` (memory, latency, params, ...;
throughput becomes a latency bound because the batch size is fixed per solve).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import highspy
import numpy as np


@dataclass(frozen=True)
class Constraint:
    name: str
    costs: list[list[float]]  # per layer, per candidate
    upper: float = math.inf
    lower: float = -math.inf
    offset: float = 0.0  # the part outside the searched layers (embeddings, LM head, step overhead)


@dataclass
class MIPProblem:
    scores: list[list[float]]  # per layer, per candidate; minimised
    constraints: list[Constraint] = field(default_factory=list)
    time_limit_s: float = 60.0
    mip_rel_gap: float = 1e-6


@dataclass
class MIPSolution:
    choice: list[int]  # candidate index per layer
    objective: float
    totals: dict[str, float]  # each constraint's value including its offset
    seconds: float
    optimal: bool = True  # False: the time limit stopped HiGHS with this feasible, unproven incumbent
    gap: float = 0.0  # HiGHS's relative MIP gap of the returned choice


class InfeasibleBudget(ValueError):
    """No architecture meets the budget (proven); the message names the binding constraint(s)."""


class SolverTimeLimit(RuntimeError):
    """The time limit ran out before HiGHS found any architecture within the budget. This
    proves nothing about feasibility, so it is never reported as an infeasible budget."""


@dataclass
class _Outcome:
    choice: list[int] | None  # None: proven infeasible
    optimal: bool = True
    gap: float = 0.0


def _new_highs() -> highspy.Highs:
    """HiGHS prints its banner to stdout when the first instance is made; send it to stderr
    so stdout stays machine-readable (`reforge nas search --json`)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    return h


def _evaluate(problem: MIPProblem, choice: list[int]) -> tuple[float, dict[str, float]]:
    obj = sum(problem.scores[i][j] for i, j in enumerate(choice))
    totals = {c.name: c.offset + sum(c.costs[i][j] for i, j in enumerate(choice)) for c in problem.constraints}
    return obj, totals


def _undominated(objective: list[list[float]], constraints: list[Constraint]) -> list[list[int]]:
    """Per layer, the candidates no other candidate beats on the objective and on every
    (upper-bounded) cost. Dropping the rest leaves the optimum unchanged and shrinks the
    branch-and-bound tree a lot on real libraries, where cost and quality loss trade off."""
    keep = []
    for i, row in enumerate(objective):
        vecs = [(row[j], *[c.costs[i][j] for c in constraints]) for j in range(len(row))]
        keep.append([j for j, v in enumerate(vecs)
                     if not any(w != v and all(a <= b for a, b in zip(w, v)) for w in vecs)
                     and vecs.index(v) == j])  # of exact duplicates keep the first
    return keep


def _solve(problem: MIPProblem, constraints: list[Constraint], objective: list[list[float]],
           exclude: list[list[int]], max_overlap: int) -> _Outcome:
    if exclude or any(math.isfinite(c.lower) for c in constraints):
        cand = [list(range(len(row))) for row in objective]  # diversity or lower bounds need every option
    else:
        cand = _undominated(objective, constraints)
    out = _solve_subset(problem, constraints, objective, exclude, max_overlap, cand)
    if out.choice is not None:
        out.choice = [cand[i][j] for i, j in enumerate(out.choice)]
    return out


def _solve_subset(problem: MIPProblem, constraints: list[Constraint], objective: list[list[float]],
                  exclude: list[list[int]], max_overlap: int, cand: list[list[int]]) -> _Outcome:
    objective = [[row[j] for j in cand[i]] for i, row in enumerate(objective)]
    constraints = [Constraint(c.name, [[r[j] for j in cand[i]] for i, r in enumerate(c.costs)], c.upper, c.lower,
                              c.offset) for c in constraints]
    sizes = [len(s) for s in objective]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n = int(starts[-1])
    layer_of = np.repeat(np.arange(len(sizes)), sizes)
    rows: list[tuple[float, float, np.ndarray, np.ndarray]] = []
    for i in range(len(sizes)):  # exactly one candidate per layer
        rows.append((1.0, 1.0, np.arange(starts[i], starts[i + 1]), np.ones(sizes[i])))
    for c in constraints:
        vals = np.concatenate([np.asarray(row, float) for row in c.costs])
        rows.append((c.lower - c.offset, c.upper - c.offset, np.arange(n), vals))
    for prev in exclude:  # diversity: at most max_overlap layers may repeat a previous choice
        idx = np.array([starts[i] + cand[i].index(j) for i, j in enumerate(prev)])
        rows.append((-math.inf, float(max_overlap), idx, np.ones(len(idx))))
    # CSR -> HiGHS row-wise matrix in one call
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(rows)
    lp.col_cost_ = np.concatenate([np.asarray(r, float) for r in objective])
    lp.col_lower_, lp.col_upper_ = np.zeros(n), np.ones(n)
    lp.row_lower_ = np.array([r[0] for r in rows], float).clip(-highspy.kHighsInf)
    lp.row_upper_ = np.array([r[1] for r in rows], float).clip(max=highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum([len(r[2]) for r in rows])]).astype(np.int32)
    lp.a_matrix_.index_ = np.concatenate([r[2] for r in rows]).astype(np.int32)
    lp.a_matrix_.value_ = np.concatenate([r[3] for r in rows]).astype(float)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, len(rows)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    h = _new_highs()
    h.setOptionValue("time_limit", float(problem.time_limit_s))
    h.setOptionValue("mip_rel_gap", float(problem.mip_rel_gap))
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    h.run()
    status, info = h.getModelStatus(), h.getInfo()
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return _Outcome(None)  # every variable is bounded in [0, 1]: "unbounded or infeasible" is infeasible
    has_incumbent = info.primal_solution_status == 2  # kSolutionStatusFeasible
    if status != highspy.HighsModelStatus.kOptimal and not has_incumbent:
        if status in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kInterrupt):
            raise SolverTimeLimit(
                f"solver time limit reached ({problem.time_limit_s:g} s) before any architecture within the "
                f"budget was found; the budget may still be feasible: raise the time limit")
        raise RuntimeError(f"HiGHS stopped with status {h.modelStatusToString(status)}")
    x = np.asarray(h.getSolution().col_value)
    choice = [int(np.argmax(x[starts[i]:starts[i + 1]])) for i in range(len(sizes))]
    optimal = status == highspy.HighsModelStatus.kOptimal
    return _Outcome(choice, optimal, 0.0 if optimal else float(info.mip_gap))


def _explain_infeasible(problem: MIPProblem) -> str:
    """Name each constraint that cannot be met given the others, with its smallest feasible bound."""
    parts = []
    for k, c in enumerate(problem.constraints):
        others = problem.constraints[:k] + problem.constraints[k + 1:]
        for sense, bound in ((1.0, c.upper), (-1.0, c.lower)):
            if not math.isfinite(bound):
                continue
            try:
                choice = _solve(problem, others, [[sense * v for v in row] for row in c.costs], [], 0).choice
            except SolverTimeLimit:
                continue
            if choice is None:
                continue
            best = c.offset + sum(c.costs[i][j] for i, j in enumerate(choice))
            if (sense > 0 and best > bound) or (sense < 0 and best < bound):
                word = "upper" if sense > 0 else "lower"
                parts.append(f"constraint '{c.name}' is binding: {word} bound {bound:.6g}, smallest feasible "
                             f"{'budget' if sense > 0 else 'requirement'} is {best:.6g}")
    if not parts:
        parts.append("the constraints are jointly infeasible (each alone can be met); relax several of: "
                     + ", ".join(c.name for c in problem.constraints))
    return "infeasible budget: " + "; ".join(parts)


def solve(problem: MIPProblem, num_solutions: int = 1, diversity: float = 0.8) -> list[MIPSolution]:
    """The best architecture, then (num_solutions > 1) the next best ones that each share at
    most `diversity` x L layer choices with every earlier solution.

    Raises InfeasibleBudget only when HiGHS proves infeasibility, SolverTimeLimit when the
    limit ran out with nothing found; a limit reached with an incumbent returns it with
    `optimal=False` and its gap."""
    out: list[MIPSolution] = []
    max_overlap = int(math.floor(diversity * len(problem.scores)))
    for _ in range(num_solutions):
        t0 = time.perf_counter()
        res = _solve(problem, problem.constraints, problem.scores, [s.choice for s in out], max_overlap)
        if res.choice is None:
            if not out:
                raise InfeasibleBudget(_explain_infeasible(problem))
            break  # no further distinct solution within the budget
        obj, totals = _evaluate(problem, res.choice)
        out.append(MIPSolution(res.choice, obj, totals, time.perf_counter() - t0, res.optimal, res.gap))
    return out
