//! The dashboard: server-rendered HTML, plain forms, no scripts. Every value
//! shown goes through [`esc`]; every value in a link through
//! [`url_component`] first.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{self, HeaderValue};
use http::request::Parts;
use serde::Deserialize;

use super::api::{self, Changed, ListQuery};
use super::auth::{SESSION_COOKIE, forged};
use super::{Shared, encode_cursor, rfc3339};
use crate::inbox::{EventRecord, EventStatus, Selection};

/// `text` with HTML's special characters replaced by references, safe in
/// element content and in quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// `text` percent-encoded for a query component (everything but RFC 3986's
/// unreserved characters).
pub(crate) fn url_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;color:#222}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}\
td.error{font-family:monospace;white-space:pre-wrap;word-break:break-all;color:#a00}\
nav a,nav span{margin-right:1rem}.count{font-weight:bold}.notice{background:#eef;padding:.5rem}\
form.inline{display:inline}header{display:flex;justify-content:space-between;align-items:center}";

/// A complete page, with the headers every dashboard page carries.
fn page(shared: &Shared, status: StatusCode, title: &str, refresh: bool, body: &str) -> Response {
    let base = &shared.base;
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"2\">"
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{title} · webhooks admin</title><style>{STYLE}</style></head><body>\
         <header><h1><a href=\"{base}/\">Webhooks</a> · {title}</h1></header>{body}</body></html>",
        title = esc(title),
        base = esc(base),
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn bad_request(shared: &Shared, message: &str) -> Response {
    page(
        shared,
        StatusCode::BAD_REQUEST,
        "bad request",
        false,
        &format!("<p class=\"notice\">{}</p>", esc(message)),
    )
}

fn unavailable(shared: &Shared, failure: &crate::inbox::StoreError) -> Response {
    page(
        shared,
        StatusCode::SERVICE_UNAVAILABLE,
        "store unavailable",
        false,
        &format!("<p class=\"notice\">{}</p>", esc(&failure.to_string())),
    )
}

/// 303 to `location` (a path under the dashboard's base).
fn see_other(shared: &Shared, location: &str) -> Response {
    let location = format!("{}{location}", shared.base);
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn event_path(namespace: &str, id: &str) -> String {
    format!(
        "/dashboard/event?namespace={}&id={}",
        url_component(namespace),
        url_component(id)
    )
}

/// A button that posts `(namespace, id)` to `action`.
fn button(shared: &Shared, action: &str, label: &str, record: &EventRecord) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{base}/dashboard/{action}\">\
         <input type=\"hidden\" name=\"namespace\" value=\"{namespace}\">\
         <input type=\"hidden\" name=\"id\" value=\"{id}\">\
         <button type=\"submit\" name=\"action\" value=\"{action}\">{label}</button></form>",
        base = esc(&shared.base),
        namespace = esc(&record.key.namespace),
        id = esc(&record.key.event_id),
    )
}

fn actions(shared: &Shared, record: &EventRecord) -> String {
    match record.status {
        EventStatus::Dead => button(shared, "requeue", "Requeue", record),
        EventStatus::Succeeded => button(shared, "replay", "Replay", record),
        _ => String::new(),
    }
}

/// The counts by status, each a link to its listing.
async fn counts_nav(shared: &Shared) -> String {
    let counts = match shared.inbox.store().counts().await {
        Ok(counts) => counts,
        Err(failure) => {
            return format!(
                "<nav><span>counts unavailable: {}</span></nav>",
                esc(&failure.to_string())
            );
        }
    };
    let mut nav = String::from("<nav id=\"counts\">");
    for (status, count) in [
        ("pending", counts.pending),
        ("processing", counts.processing),
        ("succeeded", counts.succeeded),
        ("dead", counts.dead),
    ] {
        let _ = write!(
            nav,
            "<a href=\"{base}/?status={status}\">{status} <span class=\"count\" id=\"count-{status}\">{count}</span></a>",
            base = esc(&shared.base)
        );
    }
    if let Some(oldest) = counts.oldest_pending {
        let _ = write!(nav, "<span>oldest pending: {}</span>", rfc3339(oldest));
    }
    nav.push_str("</nav>");
    nav
}

/// A fixed message for a `notice` code (never text from the link itself).
fn notice(code: Option<&str>, count: Option<u64>) -> String {
    let message = match code {
        Some("requeued") => "Requeued: the event runs again shortly.".to_owned(),
        Some("replayed") => "Replayed: the event runs again shortly.".to_owned(),
        Some("conflict") => "Nothing changed: the event is not in a state that allows it (or its payload was purged).".to_owned(),
        Some("requeued-all") => format!("Requeued {} dead events.", count.unwrap_or(0)),
        _ => return String::new(),
    };
    format!("<p class=\"notice\" id=\"notice\">{}</p>", esc(&message))
}

#[derive(Deserialize)]
pub(crate) struct HomeQuery {
    status: Option<String>,
    namespace: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
    n: Option<u64>,
}

pub(crate) async fn home(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<HomeQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request(&shared, "the query string is not valid here");
    };
    let status = query
        .status
        .filter(|status| !status.is_empty())
        .unwrap_or_else(|| "dead".to_owned());
    let listing = ListQuery {
        status: Some(status.clone()),
        namespace: query.namespace.clone(),
        limit: Some(50),
        cursor: query.cursor,
    };
    let page_of = match api::list_page(&shared, listing, 50).await {
        Ok(listed) => listed,
        Err(response) if response.status() == StatusCode::BAD_REQUEST => {
            return bad_request(
                &shared,
                "status is pending, processing, succeeded or dead, and cursor one this page gave",
            );
        }
        Err(_) => {
            return page(
                &shared,
                StatusCode::SERVICE_UNAVAILABLE,
                "store unavailable",
                false,
                "<p class=\"notice\">The inbox store did not answer.</p>",
            );
        }
    };
    let base = esc(&shared.base);
    let mut body = counts_nav(&shared).await;
    body.push_str(&notice(query.notice.as_deref(), query.n));
    let title = if status == "dead" {
        "Dead letters".to_owned()
    } else {
        format!("{} events", esc(&status))
    };
    let _ = write!(body, "<h2>{title}</h2>");
    if page_of.records.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str(
            "<table id=\"events\"><thead><tr><th>event</th><th>namespace</th><th>received</th>\
             <th>attempts</th><th>last error</th><th></th></tr></thead><tbody>",
        );
        for record in &page_of.records {
            let _ = write!(
                body,
                "<tr><td><a href=\"{base}{link}\">{id}</a></td><td>{namespace}</td><td>{received}</td>\
                 <td>{attempts}</td><td class=\"error\">{error}</td><td>{actions}</td></tr>",
                link = esc(&event_path(&record.key.namespace, &record.key.event_id)),
                id = esc(&record.key.event_id),
                namespace = esc(&record.key.namespace),
                received = rfc3339(record.received_at),
                attempts = record.attempts,
                error = esc(record.last_error.as_deref().unwrap_or("")),
                actions = actions(&shared, record),
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(next) = &page_of.next {
        let mut link = format!(
            "/?status={}&cursor={}",
            url_component(&status),
            encode_cursor(next)
        );
        if let Some(namespace) = query
            .namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
        {
            let _ = write!(link, "&namespace={}", url_component(namespace));
        }
        let _ = write!(
            body,
            "<p><a id=\"next\" href=\"{base}{}\">Older →</a></p>",
            esc(&link)
        );
    }
    if status == "dead" && !page_of.records.is_empty() {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{base}/dashboard/requeue-all\">\
             <input type=\"hidden\" name=\"namespace\" value=\"{namespace}\">\
             <button type=\"submit\">Requeue all dead events (up to {max})</button></form>",
            namespace = esc(query.namespace.as_deref().unwrap_or("")),
            max = shared.max_bulk,
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"{base}/logout\"><button type=\"submit\">Log out</button></form>"
    );
    page(&shared, StatusCode::OK, "inbox", false, &body)
}

#[derive(Deserialize)]
pub(crate) struct EventQuery {
    namespace: Option<String>,
    id: String,
    notice: Option<String>,
}

pub(crate) async fn event(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<EventQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request(&shared, "an event page needs ?id= (and ?namespace=)");
    };
    let key = shared.key(query.namespace, query.id);
    let record = match shared.inbox.store().get(&key).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return page(
                &shared,
                StatusCode::NOT_FOUND,
                "no such event",
                false,
                &format!(
                    "<p class=\"notice\">No event {} in namespace {}.</p>",
                    esc(&key.event_id),
                    esc(&key.namespace)
                ),
            );
        }
        Err(failure) => return unavailable(&shared, &failure),
    };
    let mut body = counts_nav(&shared).await;
    body.push_str(&notice(query.notice.as_deref(), None));
    let _ = write!(
        body,
        "<table id=\"event\"><tbody>\
         <tr><th>event</th><td id=\"event-id\">{id}</td></tr>\
         <tr><th>namespace</th><td>{namespace}</td></tr>\
         <tr><th>status</th><td id=\"status\">{status}</td></tr>\
         <tr><th>attempts</th><td>{attempts}</td></tr>\
         <tr><th>received</th><td>{received}</td></tr>\
         <tr><th>updated</th><td>{updated}</td></tr>\
         <tr><th>next attempt</th><td>{next}</td></tr>\
         <tr><th>last error</th><td class=\"error\" id=\"last-error\">{error}</td></tr>\
         <tr><th>traceparent</th><td>{traceparent}</td></tr>\
         <tr><th>payload</th><td>{payload}</td></tr>\
         </tbody></table><p>{actions}</p>",
        id = esc(&record.key.event_id),
        namespace = esc(&record.key.namespace),
        status = record.status.as_str(),
        attempts = record.attempts,
        received = rfc3339(record.received_at),
        updated = rfc3339(record.updated_at),
        next = record.next_attempt_at.map(rfc3339).unwrap_or_default(),
        error = esc(record.last_error.as_deref().unwrap_or("")),
        traceparent = esc(record.traceparent.as_deref().unwrap_or("")),
        payload = record.body.as_ref().map_or_else(
            || "purged".to_owned(),
            |body| format!("{} bytes", body.len())
        ),
        actions = actions(&shared, &record),
    );
    body.push_str(
        "<h2>Attempts</h2><table id=\"history\"><thead><tr><th>#</th><th>started</th><th>ended</th>\
         <th>outcome</th><th>error</th><th>replay</th></tr></thead><tbody>",
    );
    for attempt in &record.history {
        let _ = write!(
            body,
            "<tr><td>{number}</td><td>{started}</td><td>{ended}</td><td>{outcome}</td>\
             <td class=\"error\">{error}</td><td>{replay}</td></tr>",
            number = attempt.number,
            started = rfc3339(attempt.started_at),
            ended = attempt.ended_at.map(rfc3339).unwrap_or_default(),
            outcome = attempt
                .outcome
                .map_or("running", |outcome| outcome.as_str()),
            error = esc(attempt.error.as_deref().unwrap_or("")),
            replay = if attempt.replay { "yes" } else { "" },
        );
    }
    body.push_str("</tbody></table>");
    let running = matches!(
        record.status,
        EventStatus::Pending | EventStatus::Processing
    );
    page(&shared, StatusCode::OK, "event", running, &body)
}

#[derive(Deserialize)]
pub(crate) struct EventForm {
    namespace: Option<String>,
    id: String,
}

async fn change(
    shared: &Shared,
    form: Result<Form<EventForm>, FormRejection>,
    replay: bool,
) -> Response {
    let Ok(Form(form)) = form else {
        return bad_request(shared, "the form needs id (and namespace)");
    };
    let key = shared.key(form.namespace, form.id);
    let back = event_path(&key.namespace, &key.event_id);
    match api::change_one(shared, Some(key.namespace), key.event_id, replay).await {
        Ok(Changed::Done) => see_other(
            shared,
            &format!(
                "{back}&notice={}",
                if replay { "replayed" } else { "requeued" }
            ),
        ),
        Ok(Changed::Conflict) => see_other(shared, &format!("{back}&notice=conflict")),
        Ok(Changed::NotFound) => see_other(shared, &back),
        Err(failure) => unavailable(shared, &failure),
    }
}

pub(crate) async fn requeue(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<EventForm>, FormRejection>,
) -> Response {
    change(&shared, form, false).await
}

pub(crate) async fn replay(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<EventForm>, FormRejection>,
) -> Response {
    change(&shared, form, true).await
}

#[derive(Deserialize)]
pub(crate) struct BulkForm {
    namespace: Option<String>,
}

pub(crate) async fn requeue_all(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<BulkForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return bad_request(&shared, "the form is not valid");
    };
    let mut selection = Selection::new(shared.max_bulk);
    selection.namespace = form.namespace.filter(|namespace| !namespace.is_empty());
    match api::change_matching(&shared, &selection, false).await {
        Ok(count) => see_other(
            &shared,
            &format!("/?status=dead&notice=requeued-all&n={count}"),
        ),
        Err(failure) => unavailable(&shared, &failure),
    }
}

/// The login page, with `status` and an optional fixed message.
pub(crate) fn login_page(shared: &Shared, status: StatusCode, message: Option<&str>) -> Response {
    let message = message.map_or_else(String::new, |message| {
        format!("<p class=\"notice\" id=\"notice\">{}</p>", esc(message))
    });
    let body = format!(
        "{message}<form method=\"post\" action=\"{base}/login\">\
         <label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label> \
         <button type=\"submit\" id=\"login\">Log in</button></form>",
        base = esc(&shared.base),
    );
    page(shared, status, "log in", false, &body)
}

pub(crate) async fn login_form(State(shared): State<Arc<Shared>>) -> Response {
    login_page(&shared, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

fn session_cookie(
    shared: &Shared,
    value: &str,
    parts: &Parts,
    max_age: Option<u64>,
) -> Option<HeaderValue> {
    // `Secure` when the browser came over HTTPS (directly or through a proxy).
    let https = parts
        .headers
        .get(header::ORIGIN)
        .is_some_and(|origin| origin.as_bytes().starts_with(b"https://"))
        || parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto == "https");
    let path = if shared.base.is_empty() {
        "/"
    } else {
        &shared.base
    };
    let mut cookie = format!("{SESSION_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if https {
        cookie.push_str("; Secure");
    }
    if let Some(max_age) = max_age {
        let _ = write!(cookie, "; Max-Age={max_age}");
    }
    HeaderValue::from_str(&cookie).ok()
}

pub(crate) async fn login(
    State(shared): State<Arc<Shared>>,
    parts: Parts,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if forged(&parts) {
        return api::error(
            StatusCode::FORBIDDEN,
            "cross-site request refused: send it from the dashboard's own origin",
        );
    }
    let Ok(Form(form)) = form else {
        return login_page(
            &shared,
            StatusCode::BAD_REQUEST,
            Some("Type the admin token."),
        );
    };
    match shared.auth.login(&form.token) {
        Some(session) => {
            let mut response = see_other(&shared, "/");
            if let Some(cookie) = session_cookie(&shared, &session, &parts, None) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        None => login_page(
            &shared,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid here."),
        ),
    }
}

pub(crate) async fn logout(State(shared): State<Arc<Shared>>, parts: Parts) -> Response {
    let mut response = see_other(&shared, "/login");
    if let Some(cookie) = session_cookie(&shared, "", &parts, Some(0)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(url_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
