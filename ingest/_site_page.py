"""The public statistics' pages: the published weeks as HTML, in English and German.

`pages` turns the site's JSON (index.json and the week documents, in the format of the
catalog's `public.schema.json`) into static files: `index.html`, `de/index.html` and one
stylesheet. Every chart is inline SVG rendered here, so the page needs no JavaScript, no
font and no request beyond its own stylesheet (its host's policy allows only `'self'`), and
prints as it shows. Each chart is a `<figure>` whose SVG is an image with a title, and whose
numbers stand again in a table: the text alternative, and the figures to copy.

Every number is published, differentially private: the true count plus noise, so each bar
carries its 95 % interval (whisker), and a count below its margin is shown as "under the
margin" rather than as a number (display only: hiding is post-processing and costs no
privacy); a negative count counts as 0. Labels come from the catalog where it has them (its
texts of resource attributes and metrics); values are shown as published. Every value from the
JSON is escaped: the pages never trust the documents they render.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from otel_usage.catalog import Catalog

__all__ = ["ICON", "LANGUAGES", "STYLESHEET", "pages"]

LANGUAGES = ("en", "de")
STYLESHEET = "style.css"
# The site's own icon, so that a browser asks the site for it rather than the origin's root.
ICON = "icon.svg"
_ICON_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
             '<rect x="1" y="9" width="3" height="6" rx="1" fill="#1d64c8"/>'
             '<rect x="6.5" y="5" width="3" height="10" rx="1" fill="#1d64c8"/>'
             '<rect x="12" y="1" width="3" height="14" rx="1" fill="#1d64c8"/></svg>\n')
TOP_COUNTRIES = 10
_CSS = Path(__file__).with_name("_site_page.css")
# The SVG's own coordinates: it scales to the figure's width (viewBox, width 100 %).
_WIDTH = 340
_BAR_WIDTH = 230
_ROW = 40
_SERIES_CLASSES = 8
# Typography: the en dash of ranges (3 to 5) and of "no number", the minus and times signs.
_DASH, _MINUS, _TIMES = "\u2013", "\u2212", "\u00d7"

_TEXT: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Printernizer usage statistics",
        "language": "Language",
        "intro": "What the installations that share usage statistics looked like, week by "
                 "week. Every number below is published once a week's reporting window has "
                 "ended, with noise added so that it says little about any single installation "
                 "(the privacy budget below says how little).",
        "week": "Week {week} (from {start}), published on {published}.",
        "updated": "Last updated {generated}, under catalog version {version}.",
        "nothing": "No week has been published yet.",
        "active.title": "Active installations",
        "active.desc": "Installations that sent a report in the week, over the published weeks, "
                       "with the band that holds the true number with 95 % probability.",
        "modes.title": "Deployment modes",
        "versions.title": "Printernizer versions over the weeks",
        "printers.title": "Printer types",
        "printers.desc": "Installations with at least one printer of the type.",
        "fleet.title": "Fleet sizes",
        "fleet.desc": "Installations by how many printers they have set up.",
        "features.title": "Feature adoption",
        "features.desc": "Installations that have the feature switched on.",
        "errors.title": "Error categories",
        "errors.desc": "Installations that met an error of the category in the week.",
        "os.title": "Operating systems",
        "arch.title": "Processor architectures",
        "python.title": "Python versions",
        "countries.title": "Countries (top {n})",
        "platforms": "Platforms",
        "runs": "How Printernizer runs",
        "week.column": "Week",
        "usage": "Printers and features",
        "installations": "Installations",
        "count": "Installations",
        "value": "Value",
        "interval": "95 % interval",
        "share": "Share",
        "table": "The numbers as a table",
        "under": "under {margin}",
        "none_published": "Nothing was published for this chart in this week.",
        "chart.bars": "{title}, week {week}: {values}.",
        "chart.lines": "{title}, weeks {first} to {last}: {values}.",
        "privacy.title": "Privacy and what the noise means",
        "privacy.budget": "This week's privacy budget per installation",
        "privacy.epsilon": "ε (this week)",
        "privacy.delta": "δ",
        "privacy.yearly": "ε over a year of weeks",
        "privacy.noise": "Each number is the true count plus random noise, drawn once when the "
                         "week was published. The whisker and the “±” show the margin: the true "
                         "count lies within it with 95 % probability, so a number may be off by "
                         "about that much.",
        "privacy.small": "A count smaller than its margin could be mostly noise: it is shown as "
                         "“under” its margin, without a bar. Noise can even push a count below "
                         "zero; it then counts as 0. The published numbers themselves are in the "
                         "JSON files below, unchanged.",
        "privacy.loss": "ε and δ bound what one installation's report of one week can change in "
                        "everything published for that week: the smaller, the less anyone can "
                        "learn about a single installation.",
        "data.title": "The data",
        "data.intro": "The same numbers as JSON (format {format}, described in the catalog's "
                      "public schema), and the catalog they were computed under:",
        "data.index": "index.json: every published week",
        "data.week": "this week's file",
        "data.all": "All published weeks",
        "data.catalog": "catalog.toml: what may be sent, and the privacy policy",
        "first_and_last": "from {first} to {last}",
        "legend": "Legend",
    },
    "de": {
        "title": "Printernizer-Nutzungsstatistik",
        "language": "Sprache",
        "intro": "So sahen die Installationen aus, die Nutzungsstatistik teilen, Woche für "
                 "Woche. Jede Zahl hier wird veröffentlicht, wenn die Meldefrist einer Woche "
                 "abgelaufen ist, mit hinzugefügtem Rauschen, sodass sie über eine einzelne "
                 "Installation wenig verrät (wie wenig, sagt das Datenschutzbudget unten).",
        "week": "Woche {week} (ab {start}), veröffentlicht am {published}.",
        "updated": "Zuletzt aktualisiert am {generated}, unter Katalogversion {version}.",
        "nothing": "Es wurde noch keine Woche veröffentlicht.",
        "active.title": "Aktive Installationen",
        "active.desc": "Installationen, die in der Woche einen Bericht gesendet haben, über die "
                       "veröffentlichten Wochen, mit dem Band, in dem die wahre Zahl mit 95 % "
                       "Wahrscheinlichkeit liegt.",
        "modes.title": "Betriebsarten",
        "versions.title": "Printernizer-Versionen über die Wochen",
        "printers.title": "Druckertypen",
        "printers.desc": "Installationen mit mindestens einem Drucker des Typs.",
        "fleet.title": "Größe des Druckerparks",
        "fleet.desc": "Installationen nach der Zahl ihrer eingerichteten Drucker.",
        "features.title": "Genutzte Funktionen",
        "features.desc": "Installationen, bei denen die Funktion eingeschaltet ist.",
        "errors.title": "Fehlerkategorien",
        "errors.desc": "Installationen, bei denen in der Woche ein Fehler der Kategorie auftrat.",
        "os.title": "Betriebssysteme",
        "arch.title": "Prozessorarchitekturen",
        "python.title": "Python-Versionen",
        "countries.title": "Länder (die {n} häufigsten)",
        "platforms": "Plattformen",
        "runs": "Wie Printernizer läuft",
        "week.column": "Woche",
        "usage": "Drucker und Funktionen",
        "installations": "Installationen",
        "count": "Anzahl",
        "value": "Wert",
        "interval": "95-%-Intervall",
        "share": "Anteil",
        "table": "Die Zahlen als Tabelle",
        "under": "unter {margin}",
        "none_published": "Für dieses Diagramm wurde in dieser Woche nichts veröffentlicht.",
        "chart.bars": "{title}, Woche {week}: {values}.",
        "chart.lines": "{title}, Wochen {first} bis {last}: {values}.",
        "privacy.title": "Datenschutz und was das Rauschen bedeutet",
        "privacy.budget": "Das Datenschutzbudget dieser Woche je Installation",
        "privacy.epsilon": "ε (diese Woche)",
        "privacy.delta": "δ",
        "privacy.yearly": "ε über ein Jahr von Wochen",
        "privacy.noise": "Jede Zahl ist die wahre Anzahl plus zufälliges Rauschen, einmal gezogen, "
                         "als die Woche veröffentlicht wurde. Der Fehlerbalken und das „±“ zeigen "
                         "die Spanne: Die wahre Anzahl liegt mit 95 % Wahrscheinlichkeit darin, "
                         "eine Zahl kann also um etwa so viel danebenliegen.",
        "privacy.small": "Eine Anzahl, die kleiner als ihre Spanne ist, könnte größtenteils "
                         "Rauschen sein: Sie wird als „unter“ ihrer Spanne gezeigt, ohne Balken. "
                         "Rauschen kann eine Anzahl sogar unter null drücken; sie zählt dann als "
                         "0. Die veröffentlichten Zahlen selbst stehen unverändert in den "
                         "JSON-Dateien unten.",
        "privacy.loss": "ε und δ begrenzen, was der Bericht einer Installation für eine Woche an "
                        "allem ändern kann, was für diese Woche veröffentlicht wird: Je kleiner, "
                        "desto weniger lässt sich über eine einzelne Installation erfahren.",
        "data.title": "Die Daten",
        "data.intro": "Dieselben Zahlen als JSON (Format {format}, beschrieben im öffentlichen "
                      "Schema des Katalogs) und der Katalog, unter dem sie berechnet wurden:",
        "data.index": "index.json: alle veröffentlichten Wochen",
        "data.week": "die Datei dieser Woche",
        "data.all": "Alle veröffentlichten Wochen",
        "data.catalog": "catalog.toml: was gesendet werden darf, und die Datenschutzregeln",
        "first_and_last": "vom {first} bis {last}",
        "legend": "Legende",
    },
}
_LANGUAGE_NAMES = {"en": "English", "de": "Deutsch"}


@dataclass(frozen=True)
class Count:
    """One published count: the value it belongs to, the count and its 95 % margin."""

    label: str
    count: int
    margin: float

    @property
    def shown(self) -> bool:
        """Whether the count stands above its margin (else it is shown as under it)."""
        return self.count >= self.margin and self.count > 0

    @property
    def low(self) -> int:
        """The interval's lower end, rounded down (and never below 0)."""
        return max(0, math.floor(self.count - self.margin))

    @property
    def high(self) -> int:
        """The interval's upper end, rounded up (and never below 0)."""
        return max(0, math.ceil(self.count + self.margin))

    @property
    def shown_margin(self) -> int:
        """The margin as the page states it: rounded up, so the interval is never narrower."""
        return math.ceil(self.margin)


@dataclass(frozen=True)
class Series:
    """A line over the weeks: one count per week (None where the week has none)."""

    label: str
    points: tuple[Count | None, ...]


def pages(index: Mapping[str, Any], weeks: Mapping[str, Mapping[str, Any]],
          catalog: Catalog) -> dict[str, bytes]:
    """The site's pages, stylesheet and icon by relative path: `index.html` (English),
    `de/index.html` (German), `style.css` and `icon.svg`; `index` is index.json, `weeks`
    maps an ISO week to its week document."""
    out = {STYLESHEET: _CSS.read_bytes(), ICON: _ICON_SVG.encode()}
    for language in LANGUAGES:
        root = "" if language == "en" else "../"
        path = "index.html" if language == "en" else f"{language}/index.html"
        out[path] = _Page(index, weeks, catalog, language, root).render().encode()
    return out


class _Page:
    """One language's page: the latest published week in `weeks`, and the weeks before it."""

    def __init__(self, index: Mapping[str, Any], weeks: Mapping[str, Mapping[str, Any]],
                 catalog: Catalog, language: str, root: str) -> None:
        self.index, self.catalog, self.language, self.root = index, catalog, language, root
        self.weeks = [weeks[name] for name in sorted(weeks)]
        self.latest = self.weeks[-1] if self.weeks else None
        self.text = _TEXT[language]

    def t(self, key: str, **values: Any) -> str:
        """The text `key` in the page's language, escaped, with escaped `values` put in."""
        return escape(self.text[key]).format(**{k: escape(str(v)) for k, v in values.items()})

    def number(self, value: float) -> str:
        """A whole number with the language's thousands separator."""
        plain = f"{int(value):,}"
        return plain.replace(",", ".") if self.language == "de" else plain

    def decimal(self, value: float) -> str:
        """ε and δ as people read them: one decimal (the mechanism's 1.99998 is 2.0), two
        digits below 0.1, a power of ten for a small δ."""
        if 0 < value < 0.001:
            mantissa, exponent = f"{value:.0e}".split("e")
            return f"{mantissa} {_TIMES} 10<sup>{_MINUS}{-int(exponent)}</sup>"
        text = f"{value:.1f}" if value >= 0.1 else f"{value:.2g}"
        return text.replace(".", ",") if self.language == "de" else text

    def render(self) -> str:
        nothing = f'<p id="nothing">{self.t("nothing")}</p>'
        body = self.body() if self.latest is not None else nothing
        return (f'<!doctype html>\n<html lang="{self.language}">\n<head>\n'
                '<meta charset="utf-8">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f'<title>{self.t("title")}</title>\n'
                f'<link rel="stylesheet" href="{self.root}{STYLESHEET}">\n'
                f'<link rel="icon" href="{self.root}{ICON}" type="image/svg+xml">\n'
                f'{self.alternates()}</head>\n<body>\n'
                f'<header class="top"><h1>{self.t("title")}</h1>{self.languages()}</header>\n'
                f'<main>\n{body}\n</main>\n</body>\n</html>\n')

    def alternates(self) -> str:
        return "".join(f'<link rel="alternate" hreflang="{lang}" href="{self.href(lang)}">\n'
                       for lang in LANGUAGES)

    def href(self, language: str) -> str:
        return f"{self.root}index.html" if language == "en" else f"{self.root}{language}/index.html"

    def languages(self) -> str:
        current = ' aria-current="page"'
        links = "".join(
            f'<li><a href="{self.href(lang)}" hreflang="{lang}" lang="{lang}"'
            f'{current if lang == self.language else ""}>'
            f"{_LANGUAGE_NAMES[lang]}</a></li>" for lang in LANGUAGES)
        return f'<nav class="languages" aria-label="{self.t("language")}"><ul>{links}</ul></nav>'

    def body(self) -> str:
        week = self.latest
        assert week is not None
        sections = [self.summary(week),
                    self.section("runs", "runs",
                                 [self.resource_chart(week, "printernizer.deployment.mode",
                                                      "modes"), self.versions()]),
                    self.section("usage", "usage", self.usage(week)),
                    self.section("platforms", "platforms", self.platforms(week)),
                    self.privacy(week), self.data(week)]
        return "\n".join(sections)

    def summary(self, week: Mapping[str, Any]) -> str:
        active = week["active_installations"]
        heading = self.t("week", week=week["week"], start=week["week_start"],
                         published=week["published_on"])
        updated = self.t("updated", generated=self.index["generated_on"],
                         version=self.index["catalog_version"])
        figure = self.shown(Count("", active["installations"], active["margin"]))
        return (f'<section class="card" aria-labelledby="summary-title">'
                f'<h2 id="summary-title">{heading}</h2>'
                f'<p class="big"><span class="figure">{figure}</span> '
                f'{self.t("installations")}</p>'
                f'<p>{self.t("intro")}</p>'
                f'<p class="hint">{updated}</p>'
                f'<div class="figures">{self.active()}</div></section>')

    def section(self, key: str, title: str, figures: Sequence[str]) -> str:
        return (f'<section class="card" id="{key}" aria-labelledby="{key}-heading">'
                f'<h2 id="{key}-heading">{self.t(title)}</h2>'
                f'<div class="figures">{"".join(figures)}</div></section>')

    # --- the charts of the latest week

    def resource_chart(self, week: Mapping[str, Any], key: str, chart: str,
                       top: int | None = None) -> str:
        rows = [Count(r["value"], r["installations"], r["margin"])
                for r in week["resource_attributes"] if r["attribute"] == key]
        if top is not None:
            rows = sorted(rows, key=lambda c: -c.count)[:top]
        attribute = self.catalog.resource.get(key)
        description = attribute.text.get(self.language) if attribute and attribute.text else ""
        return self.bars(chart, self.t(f"{chart}.title", n=top or ""), escape(description),
                         rows, week)

    def metric_chart(self, week: Mapping[str, Any], metric: str, key: str, chart: str) -> str:
        rows = [Count(r["value"], r["installations"], r["margin"])
                for r in week["metrics"] if r["metric"] == metric and r["attribute"] == key]
        return self.bars(chart, self.t(f"{chart}.title"), self.t(f"{chart}.desc"), rows, week)

    def fleet(self, week: Mapping[str, Any]) -> str:
        rows = [Count(_bucket(r["bucket_min"], r["bucket_max"]), r["installations"], r["margin"])
                for r in sorted(week["distributions"], key=lambda r: int(r["bucket_min"]))
                if r["metric"] == "printernizer.printers"]
        return self.bars("fleet", self.t("fleet.title"), self.t("fleet.desc"), rows, week)

    def usage(self, week: Mapping[str, Any]) -> list[str]:
        return [self.metric_chart(week, "printernizer.printers", "printer.type", "printers"),
                self.fleet(week),
                self.metric_chart(week, "printernizer.features.enabled", "feature.name",
                                  "features"),
                self.metric_chart(week, "printernizer.errors", "error.category", "errors")]

    def platforms(self, week: Mapping[str, Any]) -> list[str]:
        return [self.resource_chart(week, "os.type", "os"),
                self.resource_chart(week, "host.arch", "arch"),
                self.resource_chart(week, "process.runtime.version", "python"),
                self.resource_chart(week, "geo.country.iso_code", "countries", TOP_COUNTRIES)]

    def shown(self, count: Count) -> str:
        """A count as the page shows it: the number and its margin, or "under" the margin."""
        margin = self.number(count.shown_margin)
        if not count.shown:
            return self.t("under", margin=margin)
        return f"{self.number(count.count)} ± {margin}"

    def share(self, count: Count, week: Mapping[str, Any]) -> str:
        active = week["active_installations"]["installations"]
        if not count.shown or active <= 0:
            return _DASH
        percent = f"{100 * count.count / active:.0f}"
        return f"{percent} %" if self.language == "de" else f"{percent}%"

    def bars(self, chart: str, title: str, description: str, rows: Sequence[Count],
             week: Mapping[str, Any]) -> str:
        """A horizontal bar chart of the week: a bar and its whisker per row, the number as
        text beside it, and the same in a table."""
        if not rows:
            return (f'<figure id="{chart}" class="chart"><figcaption>{title}</figcaption>'
                    f'<p class="hint">{self.t("none_published")}</p></figure>')
        scale = _BAR_WIDTH / max(1.0, max(c.high for c in rows))
        summary = self.t("chart.bars", title=title, week=week["week"],
                         values="; ".join(f"{c.label} {self.shown(c)}" for c in rows))
        svg = "".join(self.bar(i, c, scale) for i, c in enumerate(rows))
        head = [self.t("value"), self.t("count"), self.t("interval"), self.t("share")]
        table = [[escape(c.label), self.shown(c), self.interval(c), self.share(c, week)]
                 for c in rows]
        return self.figure(chart, title, description, summary,
                           _svg(chart, len(rows) * _ROW + 4, svg), head, table)

    def bar(self, row: int, count: Count, scale: float) -> str:
        top = row * _ROW
        mid = top + 27
        low, high = f"{count.low * scale:.1f}", f"{count.high * scale:.1f}"
        whisker = (f'<g class="whisker"><line x1="{low}" y1="{mid}" x2="{high}" y2="{mid}"/>'
                   f'<line x1="{low}" y1="{mid - 5}" x2="{low}" y2="{mid + 5}"/>'
                   f'<line x1="{high}" y1="{mid - 5}" x2="{high}" y2="{mid + 5}"/></g>')
        bar = (f'<rect class="bar" x="0" y="{mid - 7}" width="{count.count * scale:.1f}" '
               f'height="14" data-count="{count.count}"/>' if count.shown else "")
        label = f'<text class="label" x="0" y="{top + 13}">{escape(count.label)}</text>'
        value = (f'<text class="value" x="{_WIDTH}" y="{mid + 5}" text-anchor="end">'
                 f"{self.shown(count)}</text>")
        return f'<g class="row">{label}{bar}{whisker}{value}</g>'

    def interval(self, count: Count) -> str:
        return f"{self.number(count.low)}{_DASH}{self.number(count.high)}"

    def figure(self, chart: str, title: str, description: str, summary: str, svg: str,
               head: Sequence[str], rows: Iterable[Sequence[str]], legend: str = "") -> str:
        """A chart as a figure: caption, the SVG as an image named by its title, the table."""
        header = "".join(f'<th scope="col">{h}</th>' for h in head)
        body = "".join("<tr>" + f'<th scope="row">{row[0]}</th>'
                       + "".join(f'<td class="num">{cell}</td>' for cell in row[1:]) + "</tr>"
                       for row in rows)
        hint = f'<span class="hint">{description}</span>' if description else ""
        named = svg.replace("<title/>", f'<title id="{chart}-title">{summary}</title>')
        return (f'<figure id="{chart}" class="chart">'
                f'<figcaption id="{chart}-caption"><strong>{title}</strong>{hint}</figcaption>'
                f"{named}"
                f"{legend}"
                f'<details><summary>{self.t("table")}</summary>'
                f'<div class="table-scroll" role="region" tabindex="0" '
                f'aria-labelledby="{chart}-caption"><table><caption>{title}</caption>'
                f"<thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>"
                f"</details></figure>")

    # --- the charts over the weeks

    def active(self) -> str:
        points = tuple(Count(r["week"], r["installations"], r["margin"])
                       for r in self.index["active_installations"])
        labels = [p.label for p in points]
        series = [Series(self.text["installations"], points)]
        return self.lines("active", self.t("active.title"), self.t("active.desc"), labels,
                          series, band=True)

    def versions(self) -> str:
        key = "service.version"
        labels = [w["week"] for w in self.weeks]
        values: dict[str, dict[str, Count]] = {}
        for week in self.weeks:
            for row in week["resource_attributes"]:
                if row["attribute"] == key:
                    values.setdefault(row["value"], {})[week["week"]] = Count(
                        row["value"], row["installations"], row["margin"])
        series = [Series(value, tuple(by_week.get(w) for w in labels))
                  for value, by_week in values.items()]
        attribute = self.catalog.resource[key]
        description = escape(attribute.text.get(self.language)) if attribute.text else ""
        return self.lines("versions", self.t("versions.title"), description, labels, series,
                          band=False)

    def lines(self, chart: str, title: str, description: str, labels: Sequence[str],
              series: Sequence[Series], *, band: bool) -> str:
        """Lines over the weeks (with the 95 % band for a single line), and the table: a row
        per week, a column per line."""
        if not labels:
            return self.bars(chart, title, description, [], {"week": ""})
        plot = _LinePlot(labels, series)
        svg = plot.svg(band, self.number)
        summary = self.t("chart.lines", title=title, first=labels[0], last=labels[-1],
                         values="; ".join(f"{s.label}: " + ", ".join(map(self.maybe, s.points))
                                          for s in series))
        legend = "" if band else self.legend(series)
        head = [self.t("week.column"), *(escape(s.label) for s in series)]
        table = [[escape(week), *(self.maybe(s.points[i]) for s in series)]
                 for i, week in enumerate(labels)]
        return self.figure(chart, title, description, summary,
                           _svg(chart, plot.height, svg), head, table, legend)

    def maybe(self, count: Count | None) -> str:
        """A count as shown, or a dash for a week without one."""
        return _DASH if count is None else self.shown(count)

    def legend(self, series: Sequence[Series]) -> str:
        items = "".join(f'<li><span class="swatch s{i % _SERIES_CLASSES}" aria-hidden="true">'
                        f"</span>{escape(s.label)}</li>" for i, s in enumerate(series))
        return f'<ul class="legend" aria-label="{self.t("legend")}">{items}</ul>'

    # --- the week's privacy, and the data

    def privacy(self, week: Mapping[str, Any]) -> str:
        privacy = week["privacy"]
        facts = "".join(
            f"<dt>{self.t(key)}</dt><dd>{self.decimal(float(privacy[field]))}</dd>"
            for key, field in (("privacy.epsilon", "epsilon"), ("privacy.delta", "delta"),
                               ("privacy.yearly", "yearly_epsilon")))
        return (f'<section class="card" id="privacy" aria-labelledby="privacy-heading">'
                f'<h2 id="privacy-heading">{self.t("privacy.title")}</h2>'
                f'<p>{self.t("privacy.noise")}</p><p>{self.t("privacy.small")}</p>'
                f'<h3>{self.t("privacy.budget")}</h3><dl class="facts">{facts}</dl>'
                f'<p>{self.t("privacy.loss")}</p></section>')

    def data(self, week: Mapping[str, Any]) -> str:
        entries = {e["week"]: e for e in self.index["weeks"]}
        this = entries.get(week["week"])
        links = [f'<li><a href="{self.root}index.json">{self.t("data.index")}</a></li>']
        if this is not None:
            links.append(f'<li><a href="{self.root}{escape(this["file"])}">'
                         f'{self.t("data.week")} ({escape(this["week"])})</a></li>')
        links.append(f'<li><a href="{self.root}catalog.toml">{self.t("data.catalog")}</a></li>')
        every = "".join(f'<li><a href="{self.root}{escape(e["file"])}">{escape(e["week"])}</a> '
                        f'<span class="hint">({escape(e["published_on"])})</span></li>'
                        for e in reversed(self.index["weeks"]))
        return (f'<section class="card" id="data" aria-labelledby="data-heading">'
                f'<h2 id="data-heading">{self.t("data.title")}</h2>'
                f'<p>{self.t("data.intro", format=self.index["format"])}</p>'
                f'<ul class="plain">{"".join(links)}</ul>'
                f'<details><summary>{self.t("data.all")}</summary>'
                f'<ul class="plain weeks">{every}</ul></details></section>')


class _LinePlot:
    """The geometry of a chart over the weeks: x per week, y per count, from 0 to the top."""

    left, right, top, bottom = 44, 8, 10, 26
    height = 190

    def __init__(self, labels: Sequence[str], series: Sequence[Series]) -> None:
        self.labels, self.series = labels, series
        highest = max((p.high for s in series for p in s.points if p), default=1.0)
        self.top_value = _nice(max(1.0, highest))

    def x(self, i: int) -> float:
        span = _WIDTH - self.left - self.right
        return self.left + (span * i / (len(self.labels) - 1) if len(self.labels) > 1 else span / 2)

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        return self.top + span * (1 - max(0.0, value) / self.top_value)

    def svg(self, band: bool, number: Any) -> str:
        return (self.axes(number)
                + "".join(self.one(i, s, band) for i, s in enumerate(self.series)))

    def axes(self, number: Any) -> str:
        grid = "".join(
            f'<line class="grid" x1="{self.left}" x2="{_WIDTH - self.right}" '
            f'y1="{self.y(v):.1f}" y2="{self.y(v):.1f}"/>'
            f'<text class="tick" x="{self.left - 4}" y="{self.y(v) + 4:.1f}" text-anchor="end">'
            f"{number(v)}</text>" for v in (0, self.top_value / 2, self.top_value))
        first, last = self.labels[0], self.labels[-1]
        anchor = "start" if len(self.labels) > 1 else "middle"
        ticks = (f'<text class="tick" x="{self.x(0):.1f}" y="{self.height - 6}" '
                 f'text-anchor="{anchor}">{escape(first)}</text>')
        if len(self.labels) > 1:
            ticks += (f'<text class="tick" x="{self.x(len(self.labels) - 1):.1f}" '
                      f'y="{self.height - 6}" text-anchor="end">{escape(last)}</text>')
        return grid + ticks

    def one(self, number: int, series: Series, band: bool) -> str:
        known = [(i, p) for i, p in enumerate(series.points) if p is not None]
        css = f"s{number % _SERIES_CLASSES}"
        line = " ".join(f"{self.x(i):.1f},{self.y(p.count):.1f}" for i, p in known)
        out = ""
        if band:
            upper = [f"{self.x(i):.1f},{self.y(p.high):.1f}" for i, p in known]
            lower = [f"{self.x(i):.1f},{self.y(p.low):.1f}" for i, p in reversed(known)]
            out += f'<polygon class="band" points="{" ".join(upper + lower)}"/>'
        out += (f'<polyline class="line {css}" points="{line}" '
                f'data-counts="{" ".join(str(p.count) for _, p in known)}"/>')
        out += "".join(f'<circle class="point {css}" cx="{self.x(i):.1f}" '
                       f'cy="{self.y(p.count):.1f}" r="3"/>' for i, p in known)
        return f'<g class="series">{out}</g>'


def _svg(chart: str, height: int, content: str) -> str:
    """The SVG element: scales to its figure's width, an image named by its `<title>`."""
    return (f'<svg class="plot" viewBox="0 0 {_WIDTH} {height}" role="img" '
            f'aria-labelledby="{chart}-title" preserveAspectRatio="xMinYMin meet">'
            f"<title/>{content}</svg>")


def _bucket(low: int, high: int | None) -> str:
    """A distribution's bucket as people read it: "1", "3-5", "1001+"."""
    if high is None:
        return f"{low}+"
    return str(low) if high == low else f"{low}{_DASH}{high}"


def _nice(value: float) -> float:
    """The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at or
    above `value`: the top of a chart's axis."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
                if step * power >= value)
