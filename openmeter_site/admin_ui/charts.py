"""Charts drawn on the server as SVG: no JavaScript library, nothing fetched at run time."""

from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from openmeter_site.admin_ui.display import quantity_text

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 64, 28, 12  # room for the value axis, the labels below, and the top value
MAX_BAR = 48  # a few bars (the first days of a period) stay bars, not blocks


def bar_chart(
    labels: Sequence[str],
    values: Sequence[Decimal],
    *,
    title: str,
    value_text: Callable[[Decimal], str] = quantity_text,
) -> SafeString:
    """One bar per label (a window, a month), each with its value on hover; at most ~12 labels are written under
    the bars so they never overlap."""
    if not values:
        return format_html('<p class="om-chart-empty">{}: no data</p>', title)
    top = max(max(values), Decimal(0)) or Decimal(1)
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = Decimal(plot_w) / len(values)
    bar_w = min(max(int(slot * Decimal("0.8")), 1), MAX_BAR)
    label_every = max(len(labels) // 12 + (1 if len(labels) % 12 else 0), 1)
    bars, ticks = [], []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + int(slot * i + (slot - bar_w) / 2)
        h = int(Decimal(plot_h) * max(value, Decimal(0)) / top)
        bars.append((x, TOP + plot_h - h, bar_w, h, f"{label}: {value_text(value)}"))
        if i % label_every == 0:
            ticks.append((x + bar_w // 2, HEIGHT - 8, label))
    return format_html(
        '<figure class="om-chart"><svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}">'
        '<line x1="{left}" y1="{base}" x2="{w}" y2="{base}" class="om-axis"/>'
        '<text x="{tx}" y="{ty}" text-anchor="end" class="om-tick">{top}</text>'
        '<text x="{tx}" y="{base}" text-anchor="end" class="om-tick">0</text>'
        "{bars}{ticks}</svg><figcaption>{title}</figcaption></figure>",
        w=WIDTH, h=HEIGHT, left=LEFT, base=TOP + plot_h, tx=LEFT - 6, ty=TOP + 10, top=value_text(top), title=title,
        bars=format_html_join(
            "", '<rect x="{}" y="{}" width="{}" height="{}" class="om-bar"><title>{}</title></rect>', bars
        ),
        ticks=format_html_join("", '<text x="{}" y="{}" text-anchor="middle" class="om-tick">{}</text>', ticks),
    )
