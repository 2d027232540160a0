//! Routes, authentication and security headers.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /healthz` | none | `ok` if the store answers, else 503 |
//! | `GET /style.css` | none | the page's only stylesheet |
//! | `GET /login`, `POST /login` | none | the sign-in form; sets the session cookie |
//! | `POST /logout` | none | clears the cookie |
//! | `GET /` | token or cookie | charts and tables |
//! | `GET /report.csv`, `/report.json` | token or cookie | the same counts as downloads |
//! | `GET /metrics` | token or cookie | Prometheus text |

use super::auth::{Auth, COOKIE, SESSION_SECONDS, Token};
use super::{AdminError, metrics, page, query, vocab};
use crate::report::{self, OsRandom};
use crate::store::Store;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::civil::Date;
use std::future::Future;
use std::sync::Arc;

/// How the admin server behaves.
#[derive(Debug, Clone)]
pub struct Options {
    pub token: Token,
    /// Counts below this are hidden; never below `report::MIN_THRESHOLD`.
    pub threshold: i64,
    /// The date the default range ends on and `/metrics` counts up to; `None`: today (UTC).
    pub today: Option<Date>,
}

impl Options {
    pub fn new(token: Token) -> Options {
        Options { token, threshold: report::DEFAULT_THRESHOLD, today: None }
    }
}

struct Inner {
    store: Store,
    auth: Auth,
    threshold: i64,
    today: Option<Date>,
    started: i64,
}

impl Inner {
    fn today(&self) -> Date {
        self.today.unwrap_or_else(|| jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date())
    }
}

type Shared = State<Arc<Inner>>;

/// The admin routes, ready to serve or to nest into a bigger server.
pub fn router(store: Store, options: Options) -> Router {
    let inner = Inner {
        store,
        auth: Auth::new(&options.token),
        threshold: options.threshold.max(report::MIN_THRESHOLD),
        today: options.today,
        started: now(),
    };
    Router::new()
        .route("/", get(index))
        .route("/report.csv", get(csv))
        .route("/report.json", get(json))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/style.css", get(style))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .fallback(not_found)
        // Only the sign-in form posts a body; a token fits in far less.
        .layer(DefaultBodyLimit::max(4096))
        .layer(middleware::from_fn(security_headers))
        .with_state(Arc::new(inner))
}

/// Serve the admin page on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AdminError> {
    axum::serve(listener, router(store, options)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // Inline SVG needs nothing; styles come from /style.css; no script, no frames, no plugins.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    res
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// 401 with a challenge for scripts and the sign-in form for people.
fn unauthorized(problem: Option<&str>) -> Response {
    let mut res = html(StatusCode::UNAUTHORIZED, page::login_page(problem));
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"peerline admin\""));
    res
}

fn bad_request(message: &str) -> Response {
    html(StatusCode::BAD_REQUEST, page::error_page("Bad request", message))
}

fn unavailable(e: &crate::store::StoreError) -> Response {
    // StoreError texts never carry stored values, so they may be shown.
    tracing::warn!(error = %e, "admin: the store did not answer");
    html(StatusCode::SERVICE_UNAVAILABLE, page::error_page("Database unavailable", &e.to_string()))
}

/// Authorise, read the range, build the suppressed report: the one path every data view takes.
async fn suppressed_report(
    s: &Inner,
    headers: &HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(report::Report, query::Range), Response> {
    if !s.auth.authorized(headers, now()) {
        return Err(unauthorized(None));
    }
    let Ok(Query(pairs)) = q else { return Err(bad_request("the query string is not valid URL encoding")) };
    let range = query::parse(&pairs, s.today(), s.threshold).map_err(|m| bad_request(&m))?;
    let rows = s.store.counts(&range.from.to_string(), &range.to.to_string()).await.map_err(|e| unavailable(&e))?;
    // Labels are checked and suppression happens here, before anything is rendered:
    // nothing else reads `rows`.
    let rows = vocab::sanitize(rows);
    let report = report::build(&rows, &range.options(), &mut OsRandom);
    Ok((report, range))
}

async fn index(
    State(s): Shared,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match suppressed_report(&s, &headers, q).await {
        Ok((report, range)) => html(StatusCode::OK, page::report_page(&report, &range, s.threshold)),
        Err(res) => res,
    }
}

fn download(body: String, mime: &'static str, name: String) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, mime.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response()
}

async fn csv(
    State(s): Shared,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match suppressed_report(&s, &headers, q).await {
        Ok((r, range)) => {
            download(r.to_csv(), "text/csv; charset=utf-8", format!("peerline-{}-{}.csv", range.from, range.to))
        }
        Err(res) => res,
    }
}

async fn json(
    State(s): Shared,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match suppressed_report(&s, &headers, q).await {
        Ok((r, range)) => {
            let mut v = r.to_json();
            v["period"] = query::period_name(range.period).into();
            download(v.to_string(), "application/json", format!("peerline-{}-{}.json", range.from, range.to))
        }
        Err(res) => res,
    }
}

async fn metrics_text(State(s): Shared, headers: HeaderMap) -> Response {
    if !s.auth.authorized(&headers, now()) {
        return unauthorized(None);
    }
    let through = metrics::counted_through(s.today());
    let rows = s.store.counts("0000-01-01", &through.to_string()).await;
    let store_up = rows.is_ok();
    if let Err(e) = &rows {
        tracing::warn!(error = %e, "admin: the store did not answer a metrics scrape");
    }
    let process = metrics::Process { start_time_seconds: s.started, store_up };
    let body = metrics::render(rows.as_deref().unwrap_or(&[]), through, s.threshold, &process);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn healthz(State(s): Shared) -> Response {
    // A cheap read through the pool: proves the database answers, returns nothing of it.
    match s.store.session_count().await {
        Ok(_) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n").into_response(),
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "unavailable\n")
                .into_response()
        }
    }
}

async fn style() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE).into_response()
}

async fn login_form() -> Response {
    html(StatusCode::OK, page::login_page(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(s): Shared, form: Result<Form<LoginForm>, FormRejection>) -> Response {
    let ok = matches!(&form, Ok(Form(f)) if s.auth.token_ok(f.token.trim()));
    if !ok {
        // Slows guessing a little; the token's length (at least 16 characters) does the rest.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        return unauthorized(Some("That token is not right."));
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}",
        s.auth.session_value(now())
    );
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn logout() -> Response {
    let mut res = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    // Same name as auth::COOKIE; spelled out because a header from a static string cannot fail.
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("peerline_admin=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

async fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, page::error_page("Not found", "There is nothing at this address."))
}
