from mcp_servers.ui_audit.rules import audit_css, audit_html, contrast_ratio, parse_colour

CLEAN = """<!doctype html><html lang="en"><head><title>Dashboard</title></head><body>
<h1>Dashboard</h1><h2>Servers</h2><h3>database</h3>
<img src="x.png" alt="status">
<label for="q">Search</label><input id="q" name="q">
<label>Days <input name="days" type="number"></label>
<input type="hidden" name="csrf"><input type="submit" value="Go">
<table><tr><th scope="col">Service</th></tr><tr><td>database</td></tr></table>
<a href="/x">Open</a><button aria-label="Close">×</button></body></html>"""


def rules_of(html):
    return sorted(f.rule for f in audit_html(html, page="/p/"))


def test_it_finds_nothing_on_a_clean_page():
    assert rules_of(CLEAN) == []


def test_it_flags_missing_language_and_title():
    assert rules_of("<html><head></head><body><h1>x</h1></body></html>") == ["html-lang", "page-title"]


def test_it_flags_skipped_heading_levels_and_a_missing_h1():
    html = '<html lang="en"><title>t</title><h2>a</h2><h4>b</h4></html>'
    findings = audit_html(html, page="/p/")
    assert sorted(f.rule for f in findings) == ["heading-h1", "heading-order"]
    assert "h2 to h4" in [f for f in findings if f.rule == "heading-order"][0].message


def test_it_flags_images_without_alt_and_unlabelled_controls():
    html = '<html lang="en"><title>t</title><h1>x</h1><img src="a.png"><input name="email"><select name="s"></select></html>'
    findings = audit_html(html, page="/p/")
    assert sorted(f.rule for f in findings) == ["form-label", "form-label", "img-alt"]
    assert any("input[name=email]" in f.element for f in findings)


def test_it_flags_data_tables_without_headers():
    html = '<html lang="en"><title>t</title><h1>x</h1><table><tr><td>a</td></tr><tr><td>b</td></tr></table></html>'
    assert rules_of(html) == ["table-headers"]


def test_it_flags_unnamed_controls_and_unfocusable_click_targets():
    html = (
        '<html lang="en"><title>t</title><h1>x</h1><a href="/x"></a><button></button>'
        '<div onclick="go()">Go</div><span tabindex="3">x</span></html>'
    )
    assert rules_of(html) == ["control-name", "control-name", "focusable-control", "tabindex-positive"]


def test_it_computes_wcag_contrast_ratios():
    assert round(contrast_ratio(parse_colour("#000"), parse_colour("#fff")), 1) == 21.0
    assert round(contrast_ratio(parse_colour("#777777"), parse_colour("white")), 2) == 4.48
    assert parse_colour("rgba(0,0,0,0.5)") is None


def test_it_flags_low_contrast_rules_and_resolves_variables():
    css = """:root { --muted: #999999; }
    .ok { color: #222; background: #fff; }
    .faint { color: var(--muted); background-color: #ffffff; }
    /* .ignored { color: #eee; background: #fff; } */"""
    findings = audit_css(css, source="x.css")
    assert [f.element for f in findings] == [".faint"]
    assert "2.85:1" in findings[0].message
