"""``justask report``: one static HTML page of the last run's results, every family's tables (the
ones ``justask results`` prints), plots and GIFs, with the images embedded, so the file opens from
disk, mails or uploads as it is, with no server.

The tables are the families' own rich tables, rendered by a recording console and exported as
HTML, so the page and the terminal never disagree.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from justask.families import get_family
from justask.paths import family_paths

IMAGES = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml"}
TABLE_WIDTH = 160  # columns of the recording console: wide enough that no table wraps a cell
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
nav a { margin-right: 1rem; }
section { border-top: 1px solid #ddd; margin-top: 2rem; }
pre.tables { background: #fafafa; border: 1px solid #eee; padding: 0.8rem; overflow-x: auto; font-size: 12px;
             line-height: 1.25; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; max-width: 640px; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; } .missing { color: #a33; }
"""


def family_tables_html(name: str, metrics: dict) -> str:
    """The family's results tables (``justask results NAME``) as an HTML ``<pre>`` with inline styles."""
    console = Console(record=True, width=TABLE_WIDTH, file=io.StringIO(), color_system="truecolor")
    get_family(name).print_results(metrics, console)
    return console.export_html(inline_styles=True, code_format='<pre class="tables">{code}</pre>')


def figures(folder: Path) -> list[Path]:
    """The plots and GIFs an evaluate stage left in ``folder`` (and its subfolders), in path order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in IMAGES and p.is_file())


def _figure_html(path: Path, root: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    label = html.escape(str(path.relative_to(root)))
    return (f'<figure><img alt="{label}" src="data:{IMAGES[path.suffix]};base64,{data}">'
            f"<figcaption>{label}</figcaption></figure>")


def build_page(root: Path, names: list[str], profile: str) -> str:
    """The whole page for families ``names`` (those params.yaml configures), from ``root``'s
    ``metrics/<name>.json`` and ``artifacts/<name>/evaluate/``."""
    sections = []
    for name in names:
        paths = family_paths(name, root)
        path = paths.metrics
        body = [f'<section id="{name}"><h2>{html.escape(name)}</h2>']
        if not path.exists():
            body.append(f'<p class="missing">no {path.relative_to(root)} yet: run <code>dvc repro '
                        f"evaluate@{name}</code> first.</p>")
        else:
            body.append(family_tables_html(name, json.loads(path.read_text())))
            shown = figures(paths.evaluate)
            body.append('<div class="figures">' + "".join(_figure_html(p, root) for p in shown) + "</div>")
        sections.append("\n".join(body) + "</section>")
    nav = " ".join(f'<a href="#{n}">{html.escape(n)}</a>' for n in names)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>justask results</title>'
            f"<style>{STYLE}</style></head><body><h1>justask results</h1>"
            f'<p class="meta">profile {html.escape(profile)}; page written {stamp} from metrics/ and '
            f"artifacts/ of the last run (<code>justask report</code>)</p><nav>{nav}</nav>\n"
            + "\n".join(sections) + "\n</body></html>\n")
