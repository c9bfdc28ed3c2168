"""A ceremony transcript as a PDF for wet signatures, through Qt's ``QPdfWriter``.

The page shows what the JSON transcript holds (``app.ceremony.transcript``): the ceremony, the
script's SHA-256 with its PGP words, the participants, the checkpoints, every step with its
instruction, parameters, outputs (hex identifiers also as PGP words) and sign-offs, a line per
step for the administrator's and the witnesses' initials, and — on the last page — a signature
line per participant and the transcript's SHA-256 (the one the audit chain records).

``app/`` never imports Qt: the CLI runs ``python -m ui.transcript_pdf --out FILE`` with
``{"document": …, "sha256": …, "recorded": bool}`` on standard input (offscreen); the GUI calls
``render_pdf`` directly. The file is written beside the target and linked into place, never
over an existing file.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMarginsF
from PySide6.QtGui import QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from app.ceremony.words import grouped, spoken
from app.domain.fingerprints import pgp_words

CSS = """
body { font-family: 'DejaVu Sans', sans-serif; font-size: 10pt; color: #000; }
h1 { font-size: 18pt; margin-bottom: 2pt; }
h2 { font-size: 13pt; margin-top: 14pt; border-bottom: 1px solid #444; }
h3 { font-size: 11pt; margin-top: 10pt; }
.hash { font-family: 'DejaVu Sans Mono', monospace; font-size: 13pt; font-weight: bold; }
.words td { font-size: 9pt; white-space: nowrap; }
.mono { font-family: 'DejaVu Sans Mono', monospace; }
.small { font-size: 8pt; color: #333; }
.bad { color: #a00000; font-weight: bold; }
td, th { padding: 3pt 6pt; vertical-align: top; }
th { text-align: left; background: #e8e8e8; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _hash_block(hex_text: str) -> str:
    words = pgp_words(bytes.fromhex(hex_text))
    groups = grouped(hex_text).split(":")
    lines = [":".join(groups[i : i + 8]) for i in range(0, len(groups), 8)]
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(w)}&nbsp;&nbsp;</td>" for w in words[i : i + 8]) + "</tr>"
        for i in range(0, len(words), 8)
    )
    return (
        "<p class='hash'>" + "<br/>".join(_e(line) for line in lines) + "</p>"
        f"<table class='words' cellspacing='0' cellpadding='3'>{rows}</table>"
    )


def _value(value: str) -> str:
    words = spoken(value)
    shown = f"<span class='mono'>{_e(grouped(value))}</span>"
    if words:
        shown += f"<br/><span class='small'>{_e(' '.join(words))}</span>"
    return shown


def transcript_html(doc: dict[str, Any], sha256: str, recorded: bool) -> str:
    c = doc["ceremony"]
    parts = [f"<html><head><style>{CSS}</style></head><body>"]
    parts.append(f"<h1>Key ceremony: {_e(c['title'])}</h1>")
    state = _e(c["state"]).upper()
    reason = f" — {_e(c['reason'])}" if c.get("reason") else ""
    parts.append(
        "<table>"
        f"<tr><td>Ceremony</td><td class='mono'>{_e(c['id'])}</td></tr>"
        f"<tr><td>Script</td><td>{_e(c['name'])}</td></tr>"
        f"<tr><td>Outcome</td><td><b>{state}</b>{reason}</td></tr>"
        f"<tr><td>Profile</td><td>{_e(c['profile'])}</td></tr>"
        f"<tr><td>Token</td><td>{_e(c['token']['label'])} "
        f"(serial <span class='mono'>{_e(c['token']['serial'])}</span>)</td></tr>"
        f"<tr><td>Administrator</td><td>{_e(c['administrator'])}</td></tr>"
        f"<tr><td>Workstation</td><td class='mono'>{_e(c['workstation'])}</td></tr>"
        f"<tr><td>Begun / started / ended (UTC)</td><td>{_e(c['created_at'])} / "
        f"{_e(c['started_at'] or '-')} / {_e(c['ended_at'] or '-')}</td></tr>"
        "</table>"
    )
    parts.append("<h2>Script SHA-256 (compare with the reviewed paper copy)</h2>")
    parts.append(_hash_block(doc["script"]["sha256"]))
    parts.append("<h2>Participants</h2><table border='1' cellspacing='0'>")
    parts.append(
        "<tr><th>Role</th><th>Name</th><th>Kind</th><th>Organisation</th>"
        "<th>Registered (UTC)</th></tr>"
    )
    for p in doc["participants"]:
        parts.append(
            f"<tr><td>{_e(p['role'])}</td><td>{_e(p['name'])}</td><td>{_e(p['kind'])}</td>"
            f"<td>{_e(p['organisation'] or '-')}</td><td>{_e(p['registered_at'])}</td></tr>"
        )
    parts.append("</table>")
    checkpoints = doc["checkpoints"]
    parts.append("<h2>Audit checkpoints</h2><table>")
    for label in ("before", "after"):
        point = checkpoints.get(label)
        if point:
            parts.append(
                f"<tr><td>{label}</td><td>entry {_e(point['seq'])} at {_e(point['time'])}<br/>"
                f"<span class='mono small'>{_e(point['head'])}</span></td></tr>"
            )
        else:
            parts.append(f"<tr><td>{label}</td><td>none</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Steps</h2>")
    for s in doc["steps"]:
        parts.append(
            f"<h3>Step {s['position'] + 1}: {_e(s['title'])} "
            f"<span class='small'>[{_e(s['id'])}, {_e(s['type'])}]</span></h3>"
        )
        parts.append(f"<p><i>{_e(s['instruction'])}</i></p>")
        status = _e(s["state"])
        if s["state"] == "failed":
            status = f"<span class='bad'>FAILED: {_e(s['reason'])}</span>"
        parts.append("<table>")
        parts.append(f"<tr><td>State</td><td>{status}</td></tr>")
        if s.get("performed_at"):
            parts.append(
                f"<tr><td>Done</td><td>{_e(s['performed_by'])} at {_e(s['performed_at'])}</td></tr>"
            )
        for name, value in s["params"].items():
            shown = ", ".join(value) if isinstance(value, list) else value
            parts.append(f"<tr><td>{_e(name)}</td><td>{_e(shown)}</td></tr>")
        for name, value in s["expect"].items():
            parts.append(f"<tr><td>expected {_e(name)}</td><td>{_e(value)}</td></tr>")
        for name, value in s["outputs"].items():
            parts.append(f"<tr><td><b>{_e(name)}</b></td><td>{_value(str(value))}</td></tr>")
        for signed in s["signoffs"]:
            parts.append(
                f"<tr><td>signed off</td><td>{_e(signed['name'])} ({_e(signed['role'])}, "
                f"{_e(signed['kind'])}), initials {_e(signed['initials'])}, "
                f"{_e(signed['at'])}</td></tr>"
            )
        parts.append("</table>")
        parts.append(
            "<table width='100%' cellspacing='0'><tr>"
            "<td>Administrator initials:<br/><br/>____________</td>"
            + "".join(
                "<td>Witness initials:<br/><br/>____________</td>" for _ in range(s["quorum"])
            )
            + "</tr></table>"
        )
    # The last page: signatures and the transcript's hash.
    parts.append("<h2 style='page-break-before: always'>Signatures</h2>")
    parts.append(
        "<p>By signing, each participant confirms that this transcript records the ceremony "
        "they attended and that the hashes below were read aloud and compared.</p>"
    )
    parts.append("<table cellspacing='0' width='100%'>")
    for p in doc["participants"]:
        parts.append(
            f"<tr><td width='30%'><br/><b>{_e(p['name'])}</b><br/><span class='small'>"
            f"{_e(p['role'])}{', ' + _e(p['organisation']) if p['organisation'] else ''}"
            "</span></td><td width='45%'><br/><br/>Signature: ______________________</td>"
            "<td><br/><br/>Date: ____________</td></tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Transcript SHA-256</h2>")
    parts.append(
        "<p>SHA-256 of the JSON transcript ("
        + (
            "recorded in the audit chain when the ceremony ended"
            if recorded
            else "<span class='bad'>NOT recorded: the ceremony has not ended</span>"
        )
        + "); <span class='mono'>keystead ceremony verify</span> checks a copy against it.</p>"
    )
    parts.append(_hash_block(sha256))
    parts.append("</body></html>")
    return "".join(parts)


def render_pdf(doc: dict[str, Any], sha256: str, recorded: bool, target: Path) -> None:
    """Write the transcript PDF to ``target`` (a new file). Needs a Qt GUI application (one
    is made offscreen when there is none)."""
    if QGuiApplication.instance() is None:
        _keep.append(QGuiApplication(["keystead-transcript"]))
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    writer = QPdfWriter(str(temporary))
    writer.setTitle(f"Key ceremony transcript {doc['ceremony']['id']}")
    writer.setCreator("Keystead")
    writer.setResolution(300)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(15, 15, 15, 15),
            QPageLayout.Unit.Millimeter,
        )
    )
    text = QTextDocument()
    text.setHtml(transcript_html(doc, sha256, recorded))
    text.print_(writer)
    del writer  # finishes the file
    try:
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.link(temporary, target)  # never over an existing file
    finally:
        temporary.unlink(missing_ok=True)


_keep: list[QGuiApplication] = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.transcript_pdf")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        payload = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        render_pdf(payload["document"], payload["sha256"], bool(payload["recorded"]), args.out)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"transcript PDF: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
