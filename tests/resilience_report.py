"""A pytest plugin (registered by tests/conftest.py) that prints the fault matrix after any run that
ran its cells (tests/test_resilience_matrix.py, `make resilience`): one row per workflow and provider
call, one column per fault, each cell ok or FAIL, then how many cells ran and passed.

A cell is a test item with a `cell` parameter that has `row` (workflow, call), `column` (the fault),
`applies(column)` (whether that fault is one of its provider's), and the class attributes COLUMNS
(every fault, in order) and HEADERS (a short header for each)."""

import pytest

ROWS = pytest.StashKey[dict]()  # row -> one of its cells, in the order collected
OUTCOMES = pytest.StashKey[dict]()  # (row, column) -> "ok" | "FAIL" | "skip"
LEGEND = ("502h: HTML 502 page · body: a 200 with malformed JSON/XML · tmout: read timeout · thrtl: Route53 "
          "Throttling · prior: PriorRequestNotComplete · deny: AccessDenied · kill< / kill>: the worker killed "
          "(-9) before / after the call · '·': not a fault of this provider")


def _cell(item):
    callspec = getattr(item, "callspec", None)
    cell = callspec.params.get("cell") if callspec else None
    return cell if cell is not None and item.get_closest_marker("resilience") else None


def pytest_itemcollected(item):
    cell = _cell(item)
    if cell is not None:
        item.config.stash.setdefault(ROWS, {}).setdefault(cell.row, cell)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    cell = _cell(item)
    if cell is not None:
        outcomes = item.config.stash.setdefault(OUTCOMES, {})
        key, before = (cell.row, cell.column), outcomes.get((cell.row, cell.column))
        if report.failed:
            outcomes[key] = "FAIL"
        elif report.skipped and before is None:
            outcomes[key] = "skip"
        elif report.when == "call" and before is None:
            outcomes[key] = "ok"
    return report


def pytest_terminal_summary(terminalreporter, config):
    outcomes = config.stash.get(OUTCOMES, {})
    if not outcomes:
        return
    cells = config.stash[ROWS]
    some = next(iter(cells.values()))
    columns, headers = some.COLUMNS, some.HEADERS
    rows = [row for row in cells if any((row, column) in outcomes for column in columns)]
    name_width = max(len(workflow) for workflow, _ in rows)
    call_width = max(len(call) for _, call in rows)
    width = max(len(header) for header in headers.values()) + 1
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "fault matrix: workflow × provider call (rows), fault (columns)")
    write(f"{'workflow':<{name_width}}  {'provider call':<{call_width}} " +
          "".join(f"{headers[c]:>{width}}" for c in columns))
    for row in rows:
        marks = [outcomes.get((row, c), "" if cells[row].applies(c) else "·") for c in columns]
        write(f"{row[0]:<{name_width}}  {row[1]:<{call_width}} " + "".join(f"{m:>{width}}" for m in marks))
    write(LEGEND)
    passed = sum(1 for outcome in outcomes.values() if outcome == "ok")
    failed = sum(1 for outcome in outcomes.values() if outcome == "FAIL")
    total = f"cells run: {passed + failed}, cells passed: {passed}" + (f", cells FAILED: {failed}" if failed else "")
    terminalreporter.write_sep("=", total, red=bool(failed), green=not failed, bold=True)
