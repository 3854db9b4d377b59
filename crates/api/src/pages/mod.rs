//! Server-rendered web pages (maud): the storefront demo on the storefront listener and the
//! admin dashboard on the admin listener. No JavaScript: every page reads without it, and
//! every action is a plain HTML form. Charts are inline SVG drawn here ([`svg`]).
//!
//! Every page answer carries a Content-Security-Policy that allows no script, no outside
//! resource and no framing, so a title injected through the catalog can do nothing even if it
//! slipped past maud's escaping.

pub(crate) mod dashboard;
pub(crate) mod shop;
pub(crate) mod svg;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The style sheet of every page: a dark, poster-row storefront and a plain dashboard, both
/// one column on a phone.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f6f7f9;color:#1b1f24}
body.shop{background:#141414;color:#eee}
a{color:inherit}
header.bar{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;padding:.8rem 1.2rem;background:#1f2933;color:#fff}
body.shop header.bar{background:#000}
header.bar .brand{font-weight:700;font-size:1.2rem;letter-spacing:.02em;text-decoration:none;color:#e50914}
header.bar nav{display:flex;flex-wrap:wrap;gap:1rem}
header.bar nav a{text-decoration:none;opacity:.85}
header.bar nav a:hover{opacity:1;text-decoration:underline}
header.bar form{margin-left:auto;display:flex;gap:.4rem;align-items:center}
main{padding:1rem 1.2rem 3rem;max-width:1200px;margin:0 auto}
h1{font-size:1.5rem;margin:.4rem 0 1rem}
h2{font-size:1.15rem;margin:1.6rem 0 .6rem}
input,select,button{font:inherit}
input[type=text],input[type=password],input[type=number],input:not([type]),select{padding:.4rem .5rem;border:1px solid #9aa5b1;border-radius:4px;min-width:0}
button{padding:.4rem .8rem;border:0;border-radius:4px;background:#2563eb;color:#fff;cursor:pointer}
button.secondary{background:#52606d}
.notice{padding:.6rem .9rem;border-radius:4px;background:#e3f2e6;color:#14532d;margin:.5rem 0}
.error{padding:.6rem .9rem;border-radius:4px;background:#fde8e8;color:#8a1c1c;margin:.5rem 0}
.error p{margin:0}
pre.rule{margin:.4rem 0 0;font:13px/1.3 ui-monospace,monospace;white-space:pre;overflow-x:auto}
textarea{font:13px/1.4 ui-monospace,monospace;padding:.4rem .5rem;border:1px solid #9aa5b1;border-radius:4px;width:100%}
fieldset{border:1px solid #cbd2d9;border-radius:4px;display:grid;gap:.5rem}
body.shop .notice{background:#1d3b2a;color:#c9f2d6}
.muted{opacity:.7;font-size:.9em}
.row{margin:0 0 1.4rem}
.row h2{margin:.2rem 0 .5rem}
.cards{list-style:none;margin:0;padding:0 0 .4rem;display:grid;grid-auto-flow:column;grid-auto-columns:minmax(150px,180px);gap:.7rem;overflow-x:auto}
.cards{scrollbar-color:#555 transparent;scrollbar-width:thin}
.cards form{margin:0;height:100%}
.card{display:flex;flex-direction:column;justify-content:space-between;gap:.3rem;width:100%;height:100%;min-height:120px;text-align:left;padding:.7rem;border-radius:6px;background:linear-gradient(160deg,#2d2d2d,#1c1c1c);color:#eee;border:1px solid #333}
.card:hover,.card:focus{border-color:#e50914;outline:none}
.card .title{font-weight:600;overflow-wrap:anywhere}
.card .meta{font-size:.85em;color:#aaa}
.card .price{color:#fff}
.detail{display:grid;gap:.3rem;margin-bottom:1rem}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.8rem;margin:.5rem 0 1rem}
.kpi{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0001}
.kpi .label{font-size:.85em;color:#52606d}
.kpi .value{font-size:1.45rem;font-weight:700}
.panel{background:#fff;border-radius:6px;padding:.8rem 1rem;box-shadow:0 1px 2px #0001;margin-bottom:1rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.93em}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e4e7eb;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
form.inline{display:inline;margin:0}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}
.form{display:grid;gap:.6rem;max-width:520px}
.form label{display:grid;gap:.2rem}
.form .check{display:flex;gap:.4rem;align-items:center}
svg.chart{width:100%;max-width:760px;height:auto;display:block}
svg.chart text{font:11px system-ui,sans-serif;fill:#52606d}
@media (max-width:600px){main{padding:.8rem .7rem 2rem}header.bar form{margin-left:0;width:100%}header.bar form input{flex:1}}
"#;

/// The policy of every page: no script at all, styles only inline, images only inline SVG or
/// data, forms only to this origin, never framed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page: `class` picks the look (`shop` or `admin`), `nav` is the header's content.
pub(crate) fn layout(title: &str, class: &str, nav: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Marquee" }
                style { (PreEscaped(STYLE)) }
            }
            body class=(class) {
                header.bar { (nav) }
                main { (body) }
            }
        }
    }
}

/// The storefront demo's policy: [`CSP`], plus this server's tracker script and its beacons.
const SHOP_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                        script-src 'self'; connect-src 'self'; \
                        form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML answer with the page security headers.
pub(crate) fn page(status: StatusCode, markup: Markup) -> Response {
    with_policy(status, markup, CSP)
}

/// A storefront demo page: [`page`], allowing the tracker (`/sdk/marquee.js`) to run.
pub(crate) fn shop_page(status: StatusCode, markup: Markup) -> Response {
    with_policy(status, markup, SHOP_CSP)
}

fn with_policy(status: StatusCode, markup: Markup, policy: &'static str) -> Response {
    let mut response = (status, axum::response::Html(markup.into_string())).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `303 See Other` to `location` (after a form post), with extra headers.
pub(crate) fn see_other(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Whether the request came over HTTPS (directly or through a proxy that says so), so that
/// cookies get the `Secure` attribute.
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`; `max_age` 0 deletes it.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// Whether a form post comes from this site: browsers send `Origin` on posts; when they do,
/// its host must be the `Host` the request was sent to (the SameSite=Strict cookies already
/// keep other sites' posts unauthenticated; this also covers the cookie-less forms).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Percent-encodes everything but unreserved characters (for URLs and cookie values).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`encode`]; `None` for a malformed escape or bytes that are not UTF-8.
pub(crate) fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An amount in minor units as `1,234.56 GBP` (two decimals; currencies without minor units
/// such as KRW and JPY are shown whole).
pub(crate) fn money(minor: i64, currency: Option<&str>) -> String {
    let whole_units = matches!(currency, Some("KRW" | "JPY" | "ISK" | "VND" | "CLP"));
    let (int, frac) = if whole_units {
        (minor.unsigned_abs(), None)
    } else {
        (minor.unsigned_abs() / 100, Some(minor.unsigned_abs() % 100))
    };
    let digits = int.to_string();
    let mut grouped = String::new();
    for (n, c) in digits.chars().enumerate() {
        if n > 0 && (digits.len() - n) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if minor < 0 { "-" } else { "" };
    let frac = frac.map(|f| format!(".{f:02}")).unwrap_or_default();
    match currency {
        Some(c) => format!("{sign}{grouped}{frac} {c}"),
        None => format!("{sign}{grouped}{frac}"),
    }
}

/// A page saying what went wrong, in the look of `class`.
pub(crate) fn error_page(status: StatusCode, class: &str, nav: Markup, message: &str) -> Response {
    page(
        status,
        layout(
            status.canonical_reason().unwrap_or("Error"),
            class,
            nav,
            html! {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                p.error { (message) }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_money_reads_well() {
        for s in ["a b", "x/y?z=1&w", "é✓", "plain-id_1.2~"] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s));
        }
        assert_eq!(encode("a b;c"), "a%20b%3Bc");
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%4"), None);
        assert_eq!(money(123_456_789, Some("GBP")), "1,234,567.89 GBP");
        assert_eq!(money(-5, Some("EUR")), "-0.05 EUR");
        assert_eq!(money(15_000, Some("KRW")), "15,000 KRW");
        assert_eq!(money(100, None), "1.00");
    }

    #[test]
    fn cookies_and_origins_are_read_strictly() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; mq=xyz; b=2"));
        assert_eq!(cookie(&h, "mq"), Some("xyz"));
        assert_eq!(cookie(&h, "m"), None);
        h.insert(header::HOST, HeaderValue::from_static("shop.example:8081"));
        assert!(same_origin(&h), "no Origin: a same-site navigation");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://shop.example:8081"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        let c = set_cookie("mq_admin", "t", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
    }
}
