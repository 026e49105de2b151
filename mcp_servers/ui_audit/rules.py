"""Accessibility and usability checks on rendered HTML, after WCAG 2.2 success criteria.

Each finding names the rule, the element (a short selector and snippet) and what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, Tag

NATIVELY_FOCUSABLE = {"a", "button", "input", "select", "textarea", "summary", "details"}
LABELLED_INPUT_TYPES_EXEMPT = {"hidden", "submit", "button", "reset", "image"}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # "error" | "warning"
    page: str
    element: str
    message: str


def describe(tag: Tag) -> str:
    """A short selector-like description plus the start of the tag's markup."""
    selector = tag.name
    if tag.get("id"):
        selector += f"#{tag['id']}"
    elif tag.get("name"):
        selector += f"[name={tag['name']}]"
    elif tag.get("class"):
        selector += "." + ".".join(tag["class"][:2])
    snippet = re.sub(r"\s+", " ", str(tag))[:120]
    return f"{selector} — {snippet}"


def _accessible_name(tag: Tag) -> str:
    for attr in ("aria-label", "title", "alt"):
        value = tag.get(attr)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if tag.get("aria-labelledby"):
        return "(labelledby)"
    text = tag.get_text(" ", strip=True)
    if text:
        return text
    for img in tag.find_all("img"):
        if img.get("alt", "").strip():
            return img["alt"].strip()
    if (
        tag.name == "input"
        and tag.get("value", "").strip()
        and tag.get("type") in {"submit", "button", "reset"}
    ):
        return tag["value"].strip()
    return ""


def audit_html(html: str, *, page: str) -> list[Finding]:
    soup = BeautifulSoup(html, "html.parser")
    findings: list[Finding] = []

    def add(rule: str, severity: str, element: str, message: str) -> None:
        findings.append(Finding(rule=rule, severity=severity, page=page, element=element, message=message))

    html_tag = soup.find("html")
    if not isinstance(html_tag, Tag) or not (html_tag.get("lang") or "").strip():
        add("html-lang", "error", "html", 'The page has no lang attribute: set <html lang="…"> (WCAG 3.1.1).')
    title = soup.find("title")
    if not isinstance(title, Tag) or not title.get_text(strip=True):
        add(
            "page-title",
            "error",
            "head > title",
            "The page has no title: give it a descriptive <title> (WCAG 2.4.2).",
        )

    previous = 0
    headings = soup.find_all(re.compile(r"^h[1-6]$"))
    if headings and not soup.find("h1"):
        add(
            "heading-h1",
            "warning",
            "body",
            "The page has headings but no <h1>; start the outline with one (WCAG 1.3.1).",
        )
    for heading in headings:
        level = int(heading.name[1])
        if previous and level > previous + 1:
            add(
                "heading-order",
                "warning",
                describe(heading),
                f"Heading jumps from h{previous} to h{level}; do not skip levels (WCAG 1.3.1).",
            )
        previous = level

    for img in soup.find_all("img"):
        if img.get("alt") is None:
            add(
                "img-alt",
                "error",
                describe(img),
                'Image without alt text: add alt="…" (or alt="" if decorative) (WCAG 1.1.1).',
            )

    labelled_ids = {label.get("for") for label in soup.find_all("label") if label.get("for")}
    for control in soup.find_all(["input", "select", "textarea"]):
        if control.name == "input" and (control.get("type") or "text").lower() in LABELLED_INPUT_TYPES_EXEMPT:
            continue
        has_label = (
            (control.get("id") and control["id"] in labelled_ids)
            or control.find_parent("label") is not None
            or (control.get("aria-label") or "").strip()
            or control.get("aria-labelledby")
            or (control.get("title") or "").strip()
        )
        if not has_label:
            add(
                "form-label",
                "error",
                describe(control),
                "Form control without a label: add <label for> or aria-label (WCAG 1.3.1, 4.1.2).",
            )

    for table in soup.find_all("table"):
        rows = table.find_all("tr")
        if len(rows) > 1 and not table.find("th") and table.get("role") != "presentation":
            add(
                "table-headers",
                "error",
                describe(table),
                "Data table without header cells: mark headers with <th> (WCAG 1.3.1).",
            )
        for th in table.find_all("th"):
            if (
                not th.get_text(strip=True)
                and not (th.get("aria-label") or "").strip()
                and not th.find("input")
            ):
                add(
                    "table-header-empty",
                    "warning",
                    describe(th),
                    "Empty table header cell: give it text or an aria-label.",
                )

    for control in soup.find_all(["a", "button"]):
        if control.name == "a" and not control.get("href") and not control.get("role"):
            continue  # an anchor target, not a control
        if not _accessible_name(control):
            add(
                "control-name",
                "error",
                describe(control),
                "Link or button without an accessible name: add text or aria-label (WCAG 4.1.2).",
            )
    for element in soup.find_all(attrs={"onclick": True}):
        if element.name not in NATIVELY_FOCUSABLE and element.get("tabindex") is None:
            add(
                "focusable-control",
                "error",
                describe(element),
                'Clickable element is not keyboard-focusable: use a <button> or add tabindex="0" and a role (WCAG 2.1.1).',
            )
    for element in soup.find_all(attrs={"tabindex": True}):
        try:
            if int(element["tabindex"]) > 0:
                add(
                    "tabindex-positive",
                    "warning",
                    describe(element),
                    "Positive tabindex changes the natural focus order; use 0 or -1 (WCAG 2.4.3).",
                )
        except ValueError:
            add(
                "tabindex-invalid",
                "warning",
                describe(element),
                f"tabindex={element['tabindex']!r} is not a number.",
            )
    return findings


# --- colour contrast (WCAG 1.4.3) ---
NAMED_COLOURS = {
    "white": "#ffffff",
    "black": "#000000",
    "red": "#ff0000",
    "green": "#008000",
    "blue": "#0000ff",
    "gray": "#808080",
    "grey": "#808080",
    "silver": "#c0c0c0",
    "yellow": "#ffff00",
    "orange": "#ffa500",
    "transparent": None,
}
_RULE = re.compile(r"(?P<selector>[^{}]+)\{(?P<body>[^{}]*)\}")
_DECL = re.compile(r"(?P<prop>[-a-z]+)\s*:\s*(?P<value>[^;]+)")


def parse_colour(value: str, variables: dict[str, str] | None = None) -> tuple[float, float, float] | None:
    value = value.strip().lower().replace("!important", "").strip()
    var = re.fullmatch(r"var\((--[-\w]+)(?:\s*,\s*([^)]+))?\)", value)
    if var:
        resolved = (variables or {}).get(var.group(1)) or var.group(2)
        return parse_colour(resolved, variables) if resolved else None
    value = NAMED_COLOURS.get(value, value) or ""
    match = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]
    match = re.fullmatch(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*([\d.]+)\s*)?\)", value)
    if match:
        if match.group(4) is not None and float(match.group(4)) < 1:
            return None  # translucent: the result depends on what is underneath
        return tuple(int(match.group(i)) / 255 for i in (1, 2, 3))  # type: ignore[return-value]
    return None


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def audit_css(css: str, *, source: str, minimum: float = 4.5) -> list[Finding]:
    """Rules that set both a text colour and a background colour must reach `minimum`:1."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    variables: dict[str, str] = {}
    rules = []
    for match in _RULE.finditer(css):
        declarations = {
            d.group("prop"): d.group("value").strip() for d in _DECL.finditer(match.group("body"))
        }
        for prop, value in declarations.items():
            if prop.startswith("--"):
                variables[prop] = value
        rules.append((" ".join(match.group("selector").split()), declarations))
    findings = []
    for selector, declarations in rules:
        fg_raw = declarations.get("color")
        bg_raw = declarations.get("background-color") or declarations.get("background")
        if not fg_raw or not bg_raw:
            continue
        fg = parse_colour(fg_raw, variables)
        bg = parse_colour(bg_raw.split()[0], variables)
        if fg is None or bg is None:
            continue
        ratio = contrast_ratio(fg, bg)
        if ratio < minimum:
            findings.append(
                Finding(
                    rule="colour-contrast",
                    severity="error",
                    page=source,
                    element=selector,
                    message=f"Text {fg_raw} on {bg_raw} has contrast {ratio:.2f}:1, below {minimum}:1 (WCAG 1.4.3).",
                )
            )
    return findings
