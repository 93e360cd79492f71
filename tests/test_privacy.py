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
        f"- On the server, reports are kept for {policy.retention_months} months, then deleted. "
        f"Dashboards show only groups of at least {policy.k_anonymity} installations.",
        f"- The server publishes a week's numbers once, {policy.publish_after_days} days after "
        "the week ends, and never changes them. An installation counts in them only once its "
        f"reports have arrived in {policy.established_weeks} different weeks, and no published "
        f"number lets a group of fewer than {policy.k_anonymity} installations be worked out "
        "by subtraction. An erased installation is remembered (a hash of its ID, for "
        f"{policy.retention_months} months) so that a late or repeated report cannot bring it "
        "back; numbers already published stay as they are, since they describe no single "
        "installation.",
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
