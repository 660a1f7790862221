"""Rich renderings of a ``operations.verify.VerifyReport``: a summary, the first differences, a verdict."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from handlers.render import substitutes, value
from operations.verify import Difference, VerifyReport


def report_renderables(report: VerifyReport) -> list[RenderableType]:
    found = report.differences
    what = "a sample of " if report.sampled else ""
    target = f"about {found.target_rows}" if report.sampled else str(found.target_rows)
    lines: list[RenderableType] = [
        Text(f"route {report.route.name}: {what}{report.items} DynamoDB item(s) of {report.route.source} make "
             f"{found.source_rows} row(s)" + (f" ({report.refused} refused by the transform)" if report.refused else "")
             + f"; {report.route.qualified_table} holds {target} live row(s)"),
        Text(f"missing in the target: {found.missing}; extra in the target: {found.extra}; "
             f"different: {found.different}"),
    ]
    if report.note:
        lines.append(Text(f"note: {report.note}", style="yellow"))
    for kind, counts in (("defaults", report.defaults), ("fallbacks", report.fallbacks)):
        if counts:  # the target can match and still hold only fallbacks: a misspelled from (issue 12)
            lines.append(Text(f"{kind} applied: {substitutes(counts)}", style="yellow"))
    if found.first:
        lines.append(difference_table(found.first))
    if report.drift:
        lines.append(Text("drift: the target does not match its DynamoDB table", style="red"))
    else:
        lines.append(Text("no drift in the sample" if report.sampled else "no drift: the target matches its "
                          "DynamoDB table", style="green"))
    return lines


def difference_table(differences: list[Difference]) -> Table:
    table = Table(title=Text("first differences"), title_justify="left")
    for header in ("kind", "key", "column", "DynamoDB (as cast)", "target"):
        table.add_column(Text(header), overflow="fold")
    for difference in differences:
        key = Text(", ".join(f"{name}={part}" for name, part in difference.key.items()))
        if difference.kind == "cannot transform":
            table.add_row(Text(difference.kind), key, Text(""), Text(str(difference.source.get("error"))), Text(""))
        elif not difference.columns:
            table.add_row(Text(difference.kind), key, Text(""), Text(""), Text(""))
        for column in difference.columns:
            table.add_row(Text(difference.kind), key, Text(column), value(difference.source[column]),
                          value(difference.target[column]))
    return table
