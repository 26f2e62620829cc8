"""The pictures and the page of a predict run: a fakeness timeline per video and one HTML page.

The timeline (two_branch.txt Fig. 1's heatmap bar): sampled frames across (time in seconds),
one band per detector, each cell coloured by P(fake) (0 green, 1 red; grey where the detector
has no score for that frame: no face). Video/utterance-level detectors (DADA, the fusion) fill
their whole band with their one score. matplotlib Agg, PNG without timestamps (same scores,
same bytes).

The page is self-contained: the timelines and face thumbnails are inline base64 PNGs, the
style is inline, nothing is fetched. Video sections are streamed to a temporary file while the
run goes on (bounded memory for any number of videos) and the page is renamed into place at
the end.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
import numpy as np

CMAP = "RdYlGn_r"


def bands(report: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(labels, times, values)``: one row per detector (and fusion), one column per sampled
    frame; NaN where there is no score."""
    frames = list(report.get("frames_sampled") or [])
    fps = float((report.get("video") or {}).get("fps") or 0.0)
    if not frames:
        frames = [0]
    times = np.asarray([f / fps if fps > 0 else float(i) for i, f in enumerate(frames)], dtype=float)
    col = {f: i for i, f in enumerate(frames)}
    labels, rows = [], []
    for name, e in sorted((report.get("detectors") or {}).items()):
        row = np.full(len(frames), np.nan)
        if e.get("status") == "scored":
            fs = e.get("frame_scores") or []
            if fs:
                for s in fs:
                    if s["frame_index"] in col and s["score"] is not None:
                        row[col[s["frame_index"]]] = s["score"]
            elif e.get("video_score") is not None:
                row[:] = e["video_score"]
        labels.append(name)
        rows.append(row)
    for name, e in sorted((report.get("fusion") or {}).items()):
        if e.get("score") is not None:
            labels.append(f"fusion:{name}")
            rows.append(np.full(len(frames), float(e["score"])))
    values = np.vstack(rows) if rows else np.full((1, len(frames)), np.nan)
    return labels or ["(no detector)"], times, values


def timeline_png(report: dict, path: str | Path) -> Path:
    """Write the fakeness timeline of one video report to ``path`` (atomically)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from ..store import atomic_path  # noqa: PLC0415

    labels, times, values = bands(report)
    n = len(times)
    # cell edges halfway between sampled frames
    if n > 1:
        mids = (times[:-1] + times[1:]) / 2
        edges = np.concatenate([[times[0] - (mids[0] - times[0])], mids, [times[-1] + (times[-1] - mids[-1])]])
    else:
        edges = np.array([times[0] - 0.5, times[0] + 0.5])
    edges = np.maximum(edges, 0.0) if edges[0] < 0 and times[0] >= 0 else edges
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad="#bdbdbd")
    height = 0.45 * len(labels) + 1.1
    fig, ax = plt.subplots(figsize=(8, height), dpi=100)
    # fixed margins (inches): tight_layout costs more than drawing the picture
    fig.subplots_adjust(left=1.45 / 8, right=1 - 0.35 / 8, bottom=0.55 / height, top=1 - 0.35 / height)
    mesh = ax.pcolormesh(edges, np.arange(len(labels) + 1), np.ma.masked_invalid(values), cmap=cmap,
                         vmin=0.0, vmax=1.0, shading="flat")
    ax.set_yticks(np.arange(len(labels)) + 0.5)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time (s) of the sampled frames", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(str(report.get("video_id", "")), fontsize=9)
    cb = fig.colorbar(mesh, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("P(fake)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:2em;border-top:1px solid #ccc;padding-top:1em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.2em .6em;font-size:.9em}
.fake{background:#f8d0cc} .real{background:#d3f0d3} .none{color:#777}
.thumbs{display:flex;flex-wrap:wrap;gap:.4em} figure{margin:0;font-size:.7em;text-align:center}
.fail{color:#a00} .timeline{max-width:100%} .transcript{font-style:italic}
"""


class HtmlPage:
    """One page for the run; ``add_video`` streams a section to disk, ``close`` renames it."""

    def __init__(self, path: str | Path, run_info: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.part")
        self._fh = self._tmp.open("w", encoding="utf-8")
        self._toc: list[tuple[str, str, str]] = []
        self.run_info = run_info
        self._n = 0

    def add_video(self, report: dict, timeline: Path | None, thumbs: list[tuple[int, bytes, dict]]) -> None:
        self._n += 1
        anchor = f"v{self._n}"
        esc = html.escape
        vid = str(report.get("video_id", ""))
        verdicts = []
        w = self._fh.write
        w(f'<section id="{anchor}"><h2>{esc(vid)}</h2>\n')
        w(f"<p>{esc(str(report.get('path', '')))}")
        v = report.get("video")
        if v:
            w(f" &middot; {v['width']}x{v['height']}, {v['fps']} fps, {v['duration_s']} s, "
              f"{'audio' if v['has_audio'] else 'no audio'} &middot; faces found in "
              f"{report.get('faces_found', 0)} of {len(report.get('frames_sampled') or [])} sampled frames")
        w("</p>\n")
        if report.get("status") == "failed":
            reasons = "; ".join(f["reason"] for f in report.get("failures") or []) or "not scored"
            w(f'<p class="fail">not scored: {esc(reasons)}</p></section>\n')
            self._toc.append((anchor, vid, "failed"))
            return
        w("<table><tr><th>detector</th><th>P(fake)</th><th>threshold</th><th>verdict</th></tr>\n")
        for name, e in sorted((report.get("detectors") or {}).items()):
            if e.get("status") == "scored":
                verdicts.append(f"{name}: {e['verdict']}")
                w(f'<tr class="{e["verdict"]}"><td>{esc(name)}</td><td>{e["video_score"]:.3f}</td>'
                  f'<td>{e["threshold"]:.3f}</td><td>{e["verdict"]}</td></tr>\n')
            else:
                w(f'<tr class="none"><td>{esc(name)}</td><td colspan="3">{esc(e.get("status", ""))}: '
                  f'{esc(str(e.get("reason", "")))}</td></tr>\n')
        for name, e in sorted((report.get("fusion") or {}).items()):
            if e.get("score") is not None:
                w(f'<tr class="{e["verdict"]}"><td>fusion {esc(name)}</td><td>{e["score"]:.3f}</td>'
                  f'<td>{e["threshold"]:.3f}</td><td>{e["verdict"]}</td></tr>\n')
            else:
                w(f'<tr class="none"><td>fusion {esc(name)}</td><td colspan="3">{esc(str(e.get("reason", "")))}'
                  "</td></tr>\n")
        w("</table>\n")
        audio = report.get("audio") or {}
        tr = audio.get("transcript")
        if tr is not None:
            w(f'<p>transcript: <span class="transcript">{esc(tr.get("text") or "(empty)")}</span></p>\n')
        if timeline is not None and Path(timeline).is_file():
            w(f'<img class="timeline" alt="fakeness timeline of {esc(vid)}" '
              f'src="data:image/png;base64,{_b64(Path(timeline).read_bytes())}">\n')
        if thumbs:
            w('<div class="thumbs">')
            for fi, png, scores in thumbs:
                cap = ", ".join(f"{esc(k)} {s:.2f}" for k, s in sorted(scores.items()) if s is not None)
                w(f'<figure><img alt="face of frame {fi}" width="72" height="72" '
                  f'src="data:image/png;base64,{_b64(png)}"><figcaption>frame {fi}<br>{cap}</figcaption></figure>')
            w("</div>\n")
        w("</section>\n")
        self._toc.append((anchor, vid, ", ".join(verdicts)))

    def close(self) -> Path:
        self._fh.close()
        esc = html.escape
        info = self.run_info
        head = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                "<title>dfdetect predict</title>", f"<style>{STYLE}</style></head><body>",
                "<h1>dfdetect predict</h1>",
                f"<p>{self._n} videos; detectors: {esc(', '.join(sorted(info['detectors'])))}</p>"]
        if info.get("skipped_detectors"):
            head.append("<p>skipped detectors:</p><ul>" + "".join(
                f"<li>{esc(k)}: {esc(v)}</li>" for k, v in sorted(info["skipped_detectors"].items())) + "</ul>")
        for name, f in sorted((info.get("fusion") or {}).items()):
            head.append(f"<p>fusion {esc(name)}: {esc(f.get('summary', ''))}</p>")
        head.append("<ul>" + "".join(f'<li><a href="#{a}">{esc(v)}</a> {esc(s)}</li>' for a, v, s in self._toc)
                    + "</ul>")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as out, self._tmp.open(encoding="utf-8") as body:
            out.write("\n".join(head) + "\n")
            for line in body:
                out.write(line)
            out.write("</body></html>\n")
        os.replace(tmp, self.path)
        self._tmp.unlink()
        return self.path

    def __del__(self) -> None:  # an interrupted run leaves no half page behind
        try:
            if not self._fh.closed:
                self._fh.close()
            if self._tmp.exists():
                self._tmp.unlink()
        except Exception:  # noqa: BLE001
            pass

