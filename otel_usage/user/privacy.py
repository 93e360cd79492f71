"""The privacy policy, generated from the catalog: PRIVACY.md and the page's policy.

One function renders it, :func:`render_privacy_markdown`, so the file in the repository and the
policy on the privacy page cannot disagree. Regenerate the file with ``otel-usage privacy-md``
or ``python -m otel_usage.user.privacy``; a test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import Attribute, Catalog, Metric, load_catalog

if TYPE_CHECKING:  # argparse is imported by the command that needs it, not by the page
    import argparse

__all__ = ["LANGUAGES", "register_cli", "render_privacy_document", "render_privacy_markdown"]

LANGUAGES = ("en", "de")
GENERATED_NOTE = ("<!-- Generated from otel_usage/catalog.toml by `otel-usage privacy-md`: "
                  "do not edit by hand. -->")

_T: dict[str, dict[str, str]] = {
    "en": {
        "title": "Privacy: Printernizer's usage statistics",
        "intro": (
            "Printernizer can keep usage statistics and, only if you agree, send a small "
            "weekly summary to its developers. The summary is pseudonymous, not anonymous: it "
            "carries a random installation ID that names no one but tells the server which "
            "reports come from the same installation, for as long as it keeps them (below). "
            "This page lists everything that may leave "
            "your machine; anything not listed here never does. It is generated from the "
            "catalog (version {version}), the one list every part of the system reads."),
        "modes": "Your choice",
        "mode_off": ("**off**: nothing is recorded and nothing is sent; what was counted "
                     "while off is never saved, not even after switching to another mode."),
        "mode_local": ("**local** (the default): statistics are recorded on your machine only, "
                       "so you can look at them; nothing is sent."),
        "mode_on": ("**on**: statistics are recorded, and once a week a scrubbed summary of the "
                    "past week is sent over HTTPS."),
        "collected": "What is collected, and why",
        "collected_intro": (
            "Each report covers one calendar week (Monday to Monday, UTC) and contains only "
            "the numbers below. An attribute value outside its listed values is sent as "
            "\"{other}\"."),
        "metric": "Metric",
        "why": "What and why",
        "broken_down": "Broken down by",
        "weekly": "Weekly value",
        "nothing": "nothing",
        "sum": "summed over the week",
        "max": "the week's highest value",
        "days": "days with a record",
        "resource": "About the installation",
        "resource_intro": "Each report also names, once:",
        "attribute": "Attribute",
        "values": "Allowed values",
        "pattern": "format",
        "never": "What is never collected",
        "retention": "How long data is kept",
        "retention_server": (
            "On the server, each weekly report is kept only until its week is published: "
            "{days} days after a week ends, the server publishes the week's numbers once and "
            "never changes them{after}. Then the report is deleted, and what remains of it is "
            "the published numbers (copies in the server's backups last as long as those "
            "backups are kept). A report of a week that is already published is refused, "
            "since it could change nothing."),
        "raw_after": ", and keeps its reports {weeks} more weeks to compare it with the next",
        "published_server": (
            "Every published number comes out of one differentially private mechanism per week "
            "(OpenDP): the true count or sum plus random noise, drawn once and stored, so each "
            "number is off from the truth by its noise, which hides what any single "
            "installation added. Each is published with its 95 % margin. One week's "
            "publication costs each installation a privacy loss of at most ε = {epsilon} at "
            "δ = {delta}, and a year of weekly publications, composed, at most ε = {yearly} at "
            "the same δ: whoever reads every published number of a year may learn about one "
            "installation at most what a single release with that ε allows, which is a weak "
            "bound, stated plainly. Numbers already published stay as they are when an "
            "installation is erased: they are noisy counts and sums over every installation "
            "that reported in their week, not "
            "records of any one, and once its week is published nothing of its report is left "
            "to erase."),
        "installation_server": (
            "Of your installation the server keeps only its ID and a hash of its credential, to "
            "check that later reports and an erasure come from it, and the week its last "
            "report arrived in. Once it has sent nothing for {silent} days, these are "
            "deleted too, and a report after that registers it anew."),
        "tombstone_server": (
            "An erased installation is remembered as a hash of its ID for {tombstone} days, "
            "so that a report sent before the erasure cannot bring it back: such a report may "
            "wait in the public gateway's queue while the server is unreachable, but it is "
            "accepted only until {days} days after its week ends, at most {late} days after "
            "the erasure."),
        "address_server": (
            "Your IP address is seen only by the public gateway (and the load balancer in "
            "front of it), which never stores it. To "
            "limit how many new installations one address can register per day, the gateway "
            "passes the server a pseudonym of the address instead: a hash under a random key "
            "that only the gateway holds, in memory, and replaces at least once a day, so the "
            "pseudonym cannot be traced back to the address and links requests for one day at "
            "most. It travels with your report through the gateway's queue until delivered; "
            "the server keeps it in memory for that limit only and never stores or logs it."),
        "retention_outbox": (
            "A report that could not be delivered for {weeks} weeks is dropped unsent."),
        "retention_local": (
            "On your machine, statistics are kept as one row per day and counter until you "
            "delete them."),
        "public": "The public statistics, and your place in them",
        "public_text": (
            "Every published week is public, for everyone: the server that receives the "
            "reports shows it under `{path}` at the same address, as a page and as JSON. The "
            "privacy page and `otel-usage compare` set your own numbers of the newest published "
            "week your machine has statistics of beside it (printers, jobs, features, "
            "deployment mode, version), computed on your machine. For that, Printernizer "
            "fetches two files from `{path}`: the list of published weeks and one week's "
            "numbers, over HTTPS checked as reports are. In mode \"on\" it does so by itself "
            "when you open the privacy page or run the command, at most once per published "
            "week (a week is published {days} days after it ends; while one is due but not "
            "there yet, at most once a day). In mode \"local\" it does so only when you press "
            "the button that names the address, or run `otel-usage compare --fetch`. In mode "
            "\"off\", or with DO_NOT_TRACK set, never. Nothing about you goes with the request: "
            "no installation ID, no credential, no cookie, no version; the load balancer in "
            "front of the server and the server itself see your IP address, as with any "
            "visit, and the server neither logs nor stores it. Your browser never contacts "
            "that server. The two files are kept on your machine (in the export, deleted with "
            "everything else) until newer ones replace them."),
        "sending": "When reports are sent",
        "sending_text": (
            "Only in mode \"on\", once a week, at a time drawn at random for your installation. "
            "Only weeks that began after you opted in are sent, and only if everything in them "
            "was recorded while statistics were shared (a week in which Printernizer ran in "
            "another mode, say one set by the environment, is never sent). You agree to one "
            "version of this list: its metrics, breakdowns, values and installation details. "
            "What a newer version adds is left out (a new value is sent as \"other\") until "
            "you agree to that version: the privacy page shows what is new with one button to "
            "agree, as does `otel-usage consent`, and you stay in mode \"on\"; it applies from "
            "the next week on. A value above a metric's largest plausible value is sent as that "
            "value or left out, a negative one never; the preview shows each. You can see the "
            "next report, exactly as it will be sent, and every past upload on the privacy "
            "page."),
        "opt_out": "How to opt out",
        "opt_out_page": ("Choose \"off\" or \"local\" on the privacy page in Printernizer's "
                         "settings, or"),
        "opt_out_cli": "run `otel-usage mode off` (or `otel-usage mode local`), or",
        "opt_out_env": ("set the environment variable `DO_NOT_TRACK=1` (or "
                        "`OTEL_USAGE_MODE=off`): it overrides your stored choice for the "
                        "process it is set for, and never changes it. (A process started with "
                        "`OTEL_USAGE_MODE=on` shares the weeks that begin after its first such "
                        "start; a start without it, while your stored choice is not \"on\", "
                        "opts out.)"),
        "erasure": "How erasure works",
        "erasure_server": (
            "When you leave mode \"on\", reports not yet sent are deleted, and every report "
            "whose sending began counts as received: your installation asks the server it went "
            "to, with the credential it carried, to erase everything stored under its "
            "installation ID. The request is repeated until the server confirms it, and each "
            "attempt is shown in the history. Once confirmed, that ID and credential are never "
            "used again and are wiped from the database file."),
        "erasure_published": (
            "An erasure deletes what the server still holds of your installation: its reports "
            "of weeks not yet published, its ID and its credential's hash. It cannot take your "
            "installation out of numbers already published: its reports of those weeks were "
            "deleted when they were published, so nothing of them is left to erase, and the "
            "published numbers stay as they are."),
        "erasure_refused": (
            "An installation erased on the server (also when the maintainers erase it on your "
            "request) stays erased: the server refuses its later reports, and your "
            "installation then starts over with a new installation ID and credential, never "
            "using the old ones again. Reports pass the public gateway, which accepts a report "
            "once it has queued it: the first report after the erasure is refused by the "
            "server behind the gateway, which remembers that (a hash of the credential, in "
            "memory, until the gateway restarts); the next report is refused by the gateway "
            "itself, and that is when your installation learns it was erased. Refused reports "
            "are not stored."),
        "erasure_local": (
            "\"Delete all statistics\" on the privacy page (or `otel-usage delete --yes`) "
            "deletes every statistic stored on your machine, including the installation ID and "
            "what was counted but not yet saved; your choice of mode is kept, and you are told "
            "so. Every report whose sending began gets an erasure request as above."),
        "erasure_export": (
            "\"Export my data\" (or `otel-usage export`) downloads everything stored on your "
            "machine as JSON, so you can check it first; the command writes the file readable "
            "by you only."),
    },
    "de": {
        "title": "Datenschutz: die Nutzungsstatistik von Printernizer",
        "intro": (
            "Printernizer kann eine Nutzungsstatistik führen und, nur wenn Sie zustimmen, "
            "einmal pro Woche eine kleine Zusammenfassung an seine Entwickler senden. Die "
            "Zusammenfassung ist pseudonym, nicht anonym: Sie trägt eine zufällige "
            "Installations-ID, die niemanden nennt, dem Server aber sagt, welche Berichte von "
            "derselben Installation stammen, solange er sie aufbewahrt (unten). Diese Seite "
            "nennt alles, was Ihr Gerät verlassen kann; was hier nicht steht, verlässt es nie. "
            "Sie wird aus dem Katalog (Version {version}) erzeugt, der einen Liste, die jeder "
            "Teil des Systems liest."),
        "modes": "Ihre Wahl",
        "mode_off": ("**aus**: nichts wird aufgezeichnet, nichts wird gesendet; was im Modus "
                     "„aus“ gezählt wurde, wird nie gespeichert, auch nicht nach einem "
                     "Wechsel in einen anderen Modus."),
        "mode_local": ("**lokal** (die Voreinstellung): die Statistik wird nur auf Ihrem Gerät "
                       "aufgezeichnet, damit Sie sie ansehen können; nichts wird gesendet."),
        "mode_on": ("**an**: die Statistik wird aufgezeichnet, und einmal pro Woche wird eine "
                    "bereinigte Zusammenfassung der vergangenen Woche über HTTPS gesendet."),
        "collected": "Was erhoben wird, und warum",
        "collected_intro": (
            "Jeder Bericht umfasst eine Kalenderwoche (Montag bis Montag, UTC) und enthält nur "
            "die folgenden Zahlen. Ein Attributwert außerhalb der genannten Werte wird als "
            "\"{other}\" gesendet."),
        "metric": "Messwert",
        "why": "Was und warum",
        "broken_down": "Aufgeteilt nach",
        "weekly": "Wochenwert",
        "nothing": "nichts",
        "sum": "Summe der Woche",
        "max": "höchster Wert der Woche",
        "days": "Tage mit einem Eintrag",
        "resource": "Über die Installation",
        "resource_intro": "Jeder Bericht nennt außerdem, einmal:",
        "attribute": "Attribut",
        "values": "Erlaubte Werte",
        "pattern": "Format",
        "never": "Was nie erhoben wird",
        "retention": "Wie lange Daten aufbewahrt werden",
        "retention_server": (
            "Auf dem Server wird jeder Wochenbericht nur aufbewahrt, bis seine Woche "
            "veröffentlicht ist: {days} Tage nach dem Ende einer Woche veröffentlicht der "
            "Server ihre Zahlen einmal und ändert sie danach nie{after}. Dann wird der Bericht "
            "gelöscht, und von ihm bleiben nur die veröffentlichten Zahlen (Kopien in den "
            "Sicherungen des Servers bestehen, solange diese Sicherungen aufbewahrt werden). "
            "Ein Bericht über eine bereits veröffentlichte Woche wird abgewiesen, da er nichts "
            "mehr ändern könnte."),
        "raw_after": (", und behält ihre Berichte noch {weeks} Wochen, um sie mit der nächsten "
                      "zu vergleichen"),
        "published_server": (
            "Jede veröffentlichte Zahl stammt aus einem differentiell privaten Mechanismus pro "
            "Woche (OpenDP): die wahre Anzahl oder Summe plus Zufallsrauschen, einmal gezogen "
            "und gespeichert; jede Zahl weicht daher um ihr Rauschen von der Wahrheit ab, das "
            "verbirgt, was eine einzelne Installation beigetragen hat. Jede wird mit ihrer "
            "95-%-Fehlerspanne veröffentlicht. Die Veröffentlichung einer Woche kostet jede "
            "Installation einen Privatsphäreverlust von höchstens ε = {epsilon} bei "
            "δ = {delta}, ein Jahr wöchentlicher Veröffentlichungen zusammen höchstens "
            "ε = {yearly} beim selben δ: Wer jede veröffentlichte Zahl eines Jahres liest, kann "
            "über eine Installation höchstens so viel erfahren, wie eine einzelne "
            "Veröffentlichung mit diesem ε erlaubt; eine schwache Schranke, offen gesagt. "
            "Bereits veröffentlichte Zahlen bleiben, wie sie sind, wenn eine Installation "
            "gelöscht wird: Es sind verrauschte Anzahlen und Summen über jede Installation, "
            "die in ihrer Woche berichtet hat, keine"
            " Aufzeichnungen einer einzelnen, und ist ihre Woche veröffentlicht, ist von ihrem "
            "Bericht nichts mehr zu löschen."),
        "installation_server": (
            "Von Ihrer Installation behält der Server nur ihre ID und einen Hash ihres "
            "Zugangsschlüssels, um zu prüfen, dass spätere Berichte und eine Löschung von ihr "
            "kommen, und die Woche, in der ihr letzter Bericht eintraf. Hat "
            "sie {silent} Tage lang nichts gesendet, wird auch das gelöscht, und ein Bericht "
            "danach meldet sie neu an."),
        "tombstone_server": (
            "Eine gelöschte Installation bleibt {tombstone} Tage lang als Hash ihrer ID "
            "vermerkt, damit ein vor der Löschung gesendeter Bericht sie nicht zurückbringt: "
            "Ein solcher Bericht kann in der Warteschlange des öffentlichen Gateways warten, "
            "solange der Server nicht erreichbar ist, wird aber nur bis {days} Tage nach dem "
            "Ende seiner Woche angenommen, also höchstens {late} Tage nach der Löschung."),
        "address_server": (
            "Ihre IP-Adresse sieht nur das öffentliche Gateway (und der Lastverteiler davor), "
            "das sie nie speichert. Um zu "
            "begrenzen, wie viele neue Installationen eine Adresse pro Tag anmelden kann, gibt "
            "das Gateway dem Server stattdessen ein Pseudonym der Adresse weiter: einen Hash "
            "mit einem zufälligen Schlüssel, den nur das Gateway im Arbeitsspeicher hält und "
            "mindestens einmal täglich ersetzt; so lässt sich das Pseudonym nicht auf die "
            "Adresse zurückführen und verknüpft Anfragen höchstens einen Tag lang. Es reist mit "
            "Ihrem Bericht durch die Warteschlange des Gateways, bis er zugestellt ist; der "
            "Server hält es nur für diese Grenze im Arbeitsspeicher und speichert oder "
            "protokolliert es nie."),
        "retention_outbox": (
            "Ein Bericht, der {weeks} Wochen lang nicht zugestellt werden konnte, wird "
            "ungesendet verworfen."),
        "retention_local": (
            "Auf Ihrem Gerät wird die Statistik als eine Zeile pro Tag und Zähler aufbewahrt, "
            "bis Sie sie löschen."),
        "public": "Die öffentliche Statistik, und Ihr Platz darin",
        "public_text": (
            "Jede veröffentlichte Woche ist öffentlich, für alle: Der Server, der die Berichte "
            "empfängt, zeigt sie unter derselben Adresse unter `{path}`, als Seite und als "
            "JSON. Die Datenschutzseite und `otel-usage compare` stellen Ihre eigenen Zahlen "
            "der neuesten veröffentlichten Woche, von der Ihr Gerät eine Statistik hat, daneben "
            "(Drucker, Druckaufträge, Funktionen, Betriebsart, Version), berechnet auf Ihrem "
            "Gerät. Dazu ruft Printernizer zwei Dateien von `{path}` ab: die Liste der "
            "veröffentlichten Wochen und die Zahlen einer Woche, über HTTPS, geprüft wie bei "
            "Berichten. Im Modus „an“ geschieht das von selbst, wenn Sie die "
            "Datenschutzseite öffnen oder den Befehl ausführen, höchstens einmal je "
            "veröffentlichter Woche (eine Woche wird {days} Tage nach ihrem Ende "
            "veröffentlicht; ist eine fällig, aber noch nicht da, höchstens einmal am Tag). Im "
            "Modus „lokal“ nur, wenn Sie die Schaltfläche drücken, die die Adresse nennt, "
            "oder `otel-usage compare --fetch` ausführen. Im Modus „aus“ oder mit gesetztem "
            "DO_NOT_TRACK nie. Mit der Anfrage geht nichts über Sie mit: keine "
            "Installations-ID, keine Zugangsdaten, kein Cookie, keine Version; der "
            "Lastverteiler vor dem Server und der Server selbst sehen Ihre IP-Adresse, wie bei "
            "jedem Besuch, und der Server protokolliert und speichert sie nicht. Ihr Browser "
            "verbindet sich nie mit diesem Server. Die beiden Dateien bleiben auf Ihrem Gerät "
            "(im Export enthalten, mit allem anderen gelöscht), bis neuere sie ersetzen."),
        "sending": "Wann Berichte gesendet werden",
        "sending_text": (
            "Nur im Modus „an“, einmal pro Woche, zu einer für Ihre Installation zufällig "
            "gewählten Zeit. Gesendet werden nur Wochen, die nach Ihrer Zustimmung begannen, "
            "und nur, wenn alles darin aufgezeichnet wurde, während die Statistik geteilt "
            "wurde (eine Woche, in der Printernizer in einem anderen Modus lief, etwa einem von "
            "der Umgebung gesetzten, wird nie gesendet). Sie stimmen einer Version dieser Liste "
            "zu: ihren Messwerten, Aufteilungen, Werten und Angaben zur Installation. Was eine "
            "neuere Version hinzufügt, bleibt weg (ein neuer Wert wird als „other“ gesendet), "
            "bis Sie dieser Version zustimmen: die Datenschutzseite zeigt das Neue mit einer "
            "Schaltfläche zum Zustimmen, ebenso `otel-usage consent`, und Sie bleiben im Modus "
            "„an“; es gilt ab der nächsten Woche. Ein Wert über dem größten plausiblen Wert "
            "eines Messwerts wird als dieser Wert gesendet oder weggelassen, ein negativer nie; "
            "die Vorschau zeigt jeden. Den nächsten Bericht, genau so wie er gesendet wird, und "
            "jede bisherige Übertragung sehen Sie auf der Datenschutzseite."),
        "opt_out": "Wie Sie widersprechen",
        "opt_out_page": ("Wählen Sie „aus“ oder „lokal“ auf der Datenschutzseite in den "
                         "Einstellungen von Printernizer, oder"),
        "opt_out_cli": "führen Sie `otel-usage mode off` (oder `otel-usage mode local`) aus, oder",
        "opt_out_env": ("setzen Sie die Umgebungsvariable `DO_NOT_TRACK=1` (oder "
                        "`OTEL_USAGE_MODE=off`): sie hat für den Prozess, für den sie gesetzt "
                        "ist, Vorrang vor Ihrer gespeicherten Wahl und ändert sie nie. (Ein "
                        "mit `OTEL_USAGE_MODE=on` gestarteter Prozess teilt die Wochen, die "
                        "nach seinem ersten solchen Start beginnen; ein Start ohne sie, "
                        "während Ihre gespeicherte Wahl nicht „an“ ist, widerspricht.)"),
        "erasure": "Wie gelöscht wird",
        "erasure_server": (
            "Wenn Sie den Modus „an“ verlassen, werden noch nicht gesendete Berichte gelöscht, "
            "und jeder Bericht, dessen Versand begann, gilt als empfangen: Ihre Installation "
            "bittet den Server, an den er ging, mit dem Zugangsschlüssel, den er trug, alles zu "
            "löschen, was unter ihrer Installations-ID gespeichert ist. Die Anfrage wird "
            "wiederholt, bis der Server sie bestätigt, und jeder Versuch steht im Verlauf. Nach "
            "der Bestätigung werden diese ID und dieser Schlüssel nie wieder verwendet und aus "
            "der Datenbankdatei getilgt."),
        "erasure_published": (
            "Eine Löschung entfernt, was der Server von Ihrer Installation noch hat: ihre "
            "Berichte über noch nicht veröffentlichte Wochen, ihre ID und den Hash ihres "
            "Zugangsschlüssels. Aus bereits veröffentlichten Zahlen kann sie Ihre Installation "
            "nicht herausnehmen: Ihre Berichte über diese Wochen wurden bei deren "
            "Veröffentlichung gelöscht, es ist also nichts mehr davon zu löschen, und die "
            "veröffentlichten Zahlen bleiben, wie sie sind."),
        "erasure_refused": (
            "Eine auf dem Server gelöschte Installation (auch wenn die Betreuer sie auf Ihre "
            "Anfrage löschen) bleibt gelöscht: Der Server weist ihre späteren Berichte ab, und "
            "Ihre Installation beginnt dann neu mit einer neuen Installations-ID und einem "
            "neuen Zugangsschlüssel und verwendet die alten nie wieder. Berichte gehen über das "
            "öffentliche Gateway, das einen Bericht annimmt, sobald er in seiner Warteschlange "
            "liegt: Den ersten Bericht nach der Löschung weist der Server hinter dem Gateway "
            "ab, und das Gateway merkt es sich (einen Hash des Zugangsschlüssels, im Speicher, "
            "bis zu seinem Neustart); den nächsten Bericht weist das Gateway selbst ab, und "
            "dann erfährt Ihre Installation, dass sie gelöscht wurde. Abgewiesene Berichte "
            "werden nicht gespeichert."),
        "erasure_local": (
            "\"Alle Statistiken löschen\" auf der Datenschutzseite (oder "
            "`otel-usage delete --yes`) löscht jede auf Ihrem Gerät gespeicherte Statistik, "
            "auch die Installations-ID und was gezählt, aber noch nicht gespeichert wurde; "
            "Ihre Wahl des Modus bleibt erhalten, und das wird Ihnen gesagt. Jeder Bericht, "
            "dessen Versand begann, erhält eine Löschanfrage wie oben."),
        "erasure_export": (
            "\"Meine Daten exportieren\" (oder `otel-usage export`) lädt alles, was auf Ihrem "
            "Gerät gespeichert ist, als JSON herunter, damit Sie es vorher prüfen können; der "
            "Befehl schreibt die Datei nur für Sie lesbar."),
    },
}


def render_privacy_markdown(catalog: Catalog, language: str = "en") -> str:
    """The privacy policy in `language` ("en" or "de") as Markdown, from the catalog alone."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}: choose one of en, de")
    t = _T[language]
    policy = catalog.policy
    privacy = policy.privacy
    blocks = [
        f"# {t['title']}",
        t["intro"].format(version=catalog.version),
        f"## {t['modes']}",
        _bullets([t["mode_off"], t["mode_local"], t["mode_on"]]),
        f"## {t['collected']}",
        t["collected_intro"].format(other=policy.other_value),
        _metric_table(catalog, t, language),
        f"### {t['resource']}",
        t["resource_intro"],
        _resource_table(catalog, t, language),
        f"## {t['never']}",
        _bullets([n.get(language) for n in catalog.never]),
        f"## {t['retention']}",
        _bullets([*_server_windows(catalog, t),
                  t["published_server"].format(epsilon=f"{privacy.weekly_epsilon:g}",
                                               delta=_power(privacy.delta),
                                               yearly=f"{privacy.yearly_epsilon:g}"),
                  t["address_server"],
                  t["retention_outbox"].format(weeks=policy.outbox_max_age_weeks),
                  t["retention_local"]]),
        f"## {t['sending']}",
        t["sending_text"],
        f"## {t['public']}",
        t["public_text"].format(path=catalog.public.path, days=policy.publish_after_days),
        f"## {t['opt_out']}",
        _bullets([t["opt_out_page"], t["opt_out_cli"], t["opt_out_env"]]),
        f"## {t['erasure']}",
        _bullets([t["erasure_server"], t["erasure_published"], t["erasure_refused"],
                  t["erasure_local"], t["erasure_export"]]),
    ]
    return "\n\n".join(blocks) + "\n"


def _server_windows(catalog: Catalog, t: dict[str, str]) -> list[str]:
    """What the server keeps and for how long, from the catalog's `[policy]` windows: raw
    reports, an installation's credential, an erasure's record."""
    policy = catalog.policy
    kept = policy.raw_weeks_after_publication
    after = t["raw_after"].format(weeks=kept) if kept else ""
    return [t["retention_server"].format(days=policy.publish_after_days, after=after),
            t["installation_server"].format(silent=policy.installation_silent_days),
            t["tombstone_server"].format(tombstone=policy.tombstone_days,
                                         days=policy.publish_after_days,
                                         late=7 + policy.publish_after_days)]


def render_privacy_document(catalog: Catalog) -> str:
    """PRIVACY.md: the policy in English, then in German, under a generated-file note."""
    parts = [render_privacy_markdown(catalog, language) for language in LANGUAGES]
    return GENERATED_NOTE + "\n\n" + "\n---\n\n".join(parts)


def _power(value: float) -> str:
    """A small probability as a power of ten ("1e-7")."""
    mantissa, _, exponent = f"{value:.0e}".partition("e")
    return f"{mantissa}e{int(exponent)}"


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _metric_table(catalog: Catalog, t: dict[str, str], language: str) -> str:
    rows = [[f"`{m.name}`", m.text.get(language), _attributes(m, t), t[m.weekly]]
            for m in catalog.metrics.values()]
    return _table([t["metric"], t["why"], t["broken_down"], t["weekly"]], rows)


def _attributes(metric: Metric, t: dict[str, str]) -> str:
    if not metric.attributes:
        return t["nothing"]
    return "; ".join(f"`{key}`: {_values(spec, t)}" for key, spec in metric.attributes.items())


def _values(spec: Attribute, t: dict[str, str]) -> str:
    if spec.values is not None:
        return ", ".join(spec.values)
    assert spec.pattern is not None
    return f"{t['pattern']} `{spec.pattern.pattern}`"


def _resource_table(catalog: Catalog, t: dict[str, str], language: str) -> str:
    rows = [[f"`{key}`", spec.text.get(language) if spec.text else "", _values(spec, t)]
            for key, spec in catalog.resource.items()]
    return _table([t["attribute"], t["why"], t["values"]], rows)


# Regenerating PRIVACY.md.

DEFAULT_OUTPUT = Path("PRIVACY.md")


def write_privacy_document(output: Path, catalog: Catalog | None = None) -> bool:
    """Write PRIVACY.md; True when its content changed."""
    text = render_privacy_document(catalog or load_catalog())
    if output.exists() and output.read_text(encoding="utf-8") == text:
        return False
    output.write_text(text, encoding="utf-8")
    return True


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the file to write (default: ./PRIVACY.md)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when the file is stale")


def _run(args: argparse.Namespace) -> int:
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != render_privacy_document(load_catalog()):
            print(f"{args.output} is stale: run `otel-usage privacy-md`", file=sys.stderr)
            return 1
        return 0
    changed = write_privacy_document(args.output)
    print(f"{args.output} {'written' if changed else 'is up to date'}", file=sys.stderr)
    return 0


def register_cli(sub: Any) -> None:
    """Add ``otel-usage privacy-md`` to the command's subcommands (:mod:`otel_usage.cli`)."""
    parser = sub.add_parser("privacy-md", help="regenerate PRIVACY.md from the catalog")
    _add_arguments(parser)
    parser.set_defaults(run=lambda usage, args: _run(args))


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m otel_usage.user.privacy",
                                     description="Regenerate PRIVACY.md from the catalog.")
    _add_arguments(parser)
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
