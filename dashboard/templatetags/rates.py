from django import template

register = template.Library()


@register.filter
def percent(rate) -> str:
    """0.0523 -> "5.2 %", 0.0008 -> "0.08 %"; no rate (no mail to judge by) -> "–"."""
    if rate is None or rate == "":
        return "–"
    value = float(rate) * 100
    return f"{value:.1f} %" if value >= 1 or value == 0 else f"{value:.2f} %"
