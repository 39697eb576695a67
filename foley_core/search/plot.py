"""Scores per round as a small picture (PIL only; matplotlib is not a dependency).

Grey dots: every candidate scored in the round; blue dots: the population kept; red line: the
best score so far. Round 0 is the initial population.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 480, 270, 36


def plot_trace(trace: list[dict], title: str = "GMDS") -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    values = [s for r in trace for s in r["scores"]] + [r["best_score"] for r in trace]
    if not values:
        draw.text((MARGIN, HEIGHT // 2), "no scores", fill=(0, 0, 0))
        return image
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    rounds = max(1, len(trace) - 1)
    left, right, top, bottom = MARGIN + 14, WIDTH - MARGIN // 2, MARGIN // 2 + 10, HEIGHT - MARGIN

    def xy(round_index: float, score: float) -> tuple[float, float]:
        x = left + (right - left) * (round_index / rounds if len(trace) > 1 else 0.5)
        return x, bottom - (bottom - top) * (score - lo) / (hi - lo)

    draw.rectangle([left, top, right, bottom], outline=(160, 160, 160))
    for frac in (0.0, 0.5, 1.0):
        score = lo + frac * (hi - lo)
        _, y = xy(0, score)
        draw.line([left - 4, y, left, y], fill=(120, 120, 120))
        draw.text((2, y - 6), f"{score:.3g}", fill=(60, 60, 60))
    for r in trace:
        x, _ = xy(r["round"], lo)
        draw.text((x - 3, bottom + 6), str(r["round"]), fill=(60, 60, 60))
        for s in r["scores"]:
            cx, cy = xy(r["round"], s)
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(170, 170, 170))
        for s in r.get("population_scores", []):
            cx, cy = xy(r["round"], s)
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], outline=(40, 90, 200))
    best = [xy(r["round"], r["best_score"]) for r in trace]
    if len(best) > 1:
        draw.line(best, fill=(210, 40, 40), width=2)
    for cx, cy in best:
        draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=(210, 40, 40))
    draw.text((left, 3), f"{title}: score per round (red = best so far)", fill=(0, 0, 0))
    draw.text((right - 40, bottom + 18), "round", fill=(60, 60, 60))
    return image
