"""PRIVACY.md and the page's policy: generated from the catalog, never stale, in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest
from catalog_support import raw_catalog, to_toml

from otel_usage.catalog import load_catalog
from otel_usage.cli import main as cli_main
from otel_usage.user.privacy import main, render_privacy_document, render_privacy_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_privacy_md_is_up_to_date() -> None:
    """The committed PRIVACY.md is exactly what the catalog generates (run `otel-usage privacy-md`)."""
    committed = (ROOT / "PRIVACY.md").read_text(encoding="utf-8")
    assert committed == render_privacy_document(load_catalog()), (
        "PRIVACY.md is stale: regenerate it with `otel-usage privacy-md`")


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_metric_resource_attribute_and_never_item_is_listed(language: str) -> None:
    catalog = load_catalog()
    text = render_privacy_markdown(catalog, language)
    missing = [m.name for m in catalog.metrics.values()
               if f"| `{m.name}` | {m.text.get(language)} |" not in text]
    missing += [k for k, a in catalog.resource.items()
                if a.text is None or f"| `{k}` | {a.text.get(language)} |" not in text]
    missing += [n.get(language) for n in catalog.never if f"- {n.get(language)}\n" not in text]
    assert missing == []


def test_policy_numbers_come_from_the_catalog() -> None:
    """Every window of how long the server keeps what is stated with the catalog's number."""
    policy = load_catalog().policy
    text = render_privacy_markdown(load_catalog(), "en")
    kept = text.split("## How long data is kept\n\n")[1].split("\n\n")[0].splitlines()
    assert [line for line in kept if "days" in line or "weeks" in line or "ε" in line] == [
        f"- On the server, each weekly report is kept only until its week is published: "
        f"{policy.publish_after_days} days after a week ends, the server publishes the week's "
        "numbers once and never changes them. Then the report is deleted, and what remains of "
        "it is the published numbers (copies in the server's backups last as long as those "
        "backups are kept). A report of a week that is already published is refused, since it "
        "could change nothing.",
        "- Of your installation the server keeps only its ID and a hash of its credential, to "
        "check that later reports and an erasure come from it, and the week its last report "
        f"arrived in. Once it has sent nothing for {policy.installation_silent_days} "
        "days, these are deleted too, and a report after that registers it anew.",
        f"- An erased installation is remembered as a hash of its ID for {policy.tombstone_days} "
        "days, so that a report sent before the erasure cannot bring it back: such a report may "
        "wait in the public gateway's queue while the server is unreachable, but it is accepted "
        f"only until {policy.publish_after_days} days after its week ends, at most "
        f"{7 + policy.publish_after_days} days after the erasure.",
        "- Every published number comes out of one differentially private mechanism per week "
        "(OpenDP): the true count or sum plus random noise, drawn once and stored, so each "
        "number is off from the truth by its noise, which hides what any single installation "
        "added. Each is published with its 95 % margin. One week's publication costs each "
        f"installation a privacy loss of at most ε = {policy.privacy.weekly_epsilon:g} at "
        "δ = 1e-7, and a year of weekly publications, composed, at most "
        f"ε = {policy.privacy.yearly_epsilon:g} at the same δ: whoever reads every published "
        "number of a year may learn about one installation at most what a single release with "
        "that ε allows, which is a weak bound, stated plainly. Numbers already published stay "
        "as they are when an installation is erased: they are noisy counts and sums over every "
        "installation that reported in their week, not records of any one, and once its week is published nothing of its "
        "report is left to erase.",
        f"- A report that could not be delivered for {policy.outbox_max_age_weeks} weeks is "
        "dropped unsent.",
    ]


def test_raw_weeks_kept_after_publication_are_stated(tmp_path: Path) -> None:
    """A catalog that keeps raw weeks after publication says so, in both languages."""
    raw = raw_catalog()
    raw["policy"]["raw_weeks_after_publication"] = 1
    path = tmp_path / "catalog.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    catalog = load_catalog(path)
    assert ("publishes the week's numbers once and never changes them, and keeps its reports 1 "
            "more weeks to compare it with the next. Then") in render_privacy_markdown(catalog, "en")
    assert ("ändert sie danach nie, und behält ihre Berichte noch 1 Wochen, um sie mit der "
            "nächsten zu vergleichen. Dann") in render_privacy_markdown(catalog, "de")


@pytest.mark.parametrize("language", ["en", "de"])
def test_an_erasure_says_it_cannot_reach_published_numbers(language: str) -> None:
    text = render_privacy_markdown(load_catalog(), language)
    erasure = text.split("\n## ")[-1]
    assert {"en": "nothing of them is left to erase",
            "de": "es ist also nichts mehr davon zu löschen"}[language] in erasure


def test_headings_in_both_languages() -> None:
    headings = {lang: [line for line in render_privacy_markdown(load_catalog(), lang).splitlines()
                       if line.startswith("#")] for lang in ("en", "de")}
    assert headings == {
        "en": ["# Privacy: Printernizer's usage statistics", "## Your choice",
               "## What is collected, and why", "### About the installation",
               "## What is never collected", "## How long data is kept",
               "## When reports are sent", "## The public statistics, and your place in them",
               "## How to opt out", "## How erasure works"],
        "de": ["# Datenschutz: die Nutzungsstatistik von Printernizer", "## Ihre Wahl",
               "## Was erhoben wird, und warum", "### Über die Installation",
               "## Was nie erhoben wird", "## Wie lange Daten aufbewahrt werden",
               "## Wann Berichte gesendet werden",
               "## Die öffentliche Statistik, und Ihr Platz darin", "## Wie Sie widersprechen",
               "## Wie gelöscht wird"],
    }


def test_the_policy_says_what_the_comparison_contacts_and_when() -> None:
    """The path from the catalog's [public], the rule of each mode, and what goes with it."""
    catalog = load_catalog()
    path, days = f"`{catalog.public.path}`", catalog.policy.publish_after_days
    for language, words in (("en", (path, 'In mode "local" it does so only when you press the '
                                    "button", "no installation ID, no credential",
                                    f"{days} days after it ends")),
                            ("de", (path, "Im Modus „lokal“ nur, wenn Sie die Schaltfläche "
                                    "drücken", "keine Installations-ID, keine Zugangsdaten",
                                    f"{days} Tage nach ihrem Ende"))):
        text = render_privacy_markdown(catalog, language)
        assert [w for w in words if w not in text] == [], language


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language 'fr': choose one of en, de"):
        render_privacy_markdown(load_catalog(), "fr")


def test_module_entry_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "PRIVACY.md"
    assert main(["--check", "-o", str(output)]) == 1
    assert main(["-o", str(output)]) == 0
    assert main(["--check", "-o", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == render_privacy_document(load_catalog())
    assert capsys.readouterr().err == (
        f"{output} is stale: run `otel-usage privacy-md`\n{output} written\n")


def test_cli_command_regenerates_a_stale_file(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "PRIVACY.md"
    output.write_text("old\n", encoding="utf-8")
    code = cli_main(["--data-dir", str(data_dir), "privacy-md", "-o", str(output)])
    assert (code, capsys.readouterr().err) == (0, f"{output} written\n")
    assert output.read_text(encoding="utf-8") == render_privacy_document(load_catalog())
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_statement_calls_the_reports_pseudonymous_never_anonymous(language: str) -> None:
    """A report carries a stable random installation ID: pseudonymous, not anonymous. The
    statement says so where it introduces the reports and the ID, and calls nothing anonymous
    (the word appears only denied)."""
    text = render_privacy_markdown(load_catalog(), language)
    denied = {"en": ("not anonymous", "not anonymity"),
              "de": ("nicht anonym", "keine Anonymität")}[language]
    for phrase in denied:
        assert phrase in text
        text = text.replace(phrase, "")
    assert "anonym" not in text.lower()
    assert text.lower().count("pseudonym") >= 3  # the intro, the ID, the address
