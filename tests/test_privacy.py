"""PRIVACY.md and the page's policy: generated from the catalog, never stale, in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    policy = load_catalog().policy
    text = render_privacy_markdown(load_catalog(), "en")
    assert [line for line in text.splitlines() if "months" in line or "weeks is" in line] == [
        f"- On the server, reports are kept for {policy.retention_months} months, then deleted.",
        f"- The server publishes a week's numbers once, {policy.publish_after_days} days after "
        "the week ends, and never changes them. Every published number comes out of one "
        "differentially private mechanism per week (OpenDP): the true count or sum plus random "
        "noise, drawn once and stored, so each number is off from the truth by its noise, "
        "which hides what any single installation added. Each is published with its 95 % "
        "margin. One week's publication costs each installation a privacy loss of at most "
        f"ε = {policy.privacy.weekly_epsilon:g} at δ = 1e-7, and a year of weekly "
        f"publications, composed, at most ε = {policy.privacy.yearly_epsilon:g} at the same δ: "
        "whoever reads every published number of a year may learn about one installation at "
        "most what a single release with that ε allows, which is a weak bound, stated plainly. "
        f"An erased installation is remembered (a hash of its ID, for {policy.retention_months} "
        "months) so that a late or repeated report cannot bring it back; numbers already "
        "published stay as they are: they are noisy counts and sums of many installations, "
        "not records of any one.",
        f"- A report that could not be delivered for {policy.outbox_max_age_weeks} weeks is "
        "dropped unsent.",
    ]


def test_headings_in_both_languages() -> None:
    headings = {lang: [line for line in render_privacy_markdown(load_catalog(), lang).splitlines()
                       if line.startswith("#")] for lang in ("en", "de")}
    assert headings == {
        "en": ["# Privacy: Printernizer's usage statistics", "## Your choice",
               "## What is collected, and why", "### About the installation",
               "## What is never collected", "## How long data is kept",
               "## When reports are sent", "## How to opt out", "## How erasure works"],
        "de": ["# Datenschutz: die Nutzungsstatistik von Printernizer", "## Ihre Wahl",
               "## Was erhoben wird, und warum", "### Über die Installation",
               "## Was nie erhoben wird", "## Wie lange Daten aufbewahrt werden",
               "## Wann Berichte gesendet werden", "## Wie Sie widersprechen",
               "## Wie gelöscht wird"],
    }


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
