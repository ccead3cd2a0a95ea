//! `http`: sends one HTTP request described in the action's YAML.
//!
//! # Action fields
//!
//! ```yaml
//! runner: http
//! http:
//!   method: POST                      # default GET
//!   url: "https://api.example.com/v1/items/{{ id }}"
//!   headers:
//!     Authorization: "Bearer {{ params.token }}"
//!   json: {name: "{{ name }}", size: "{{ size }}"}   # or `body:` (a string), not both
//!   timeout: 30                       # seconds for the whole request, optional
//!   expect_status: [200, 201]         # default: any 2xx
//! ```
//!
//! # How parameters arrive
//!
//! `url`, header values, `json` and `body` are templates: `{{ expr }}` is a rhai expression
//! over the parameters. Each parameter is a variable of its own name, `params` is the whole
//! parameter object and `config` the pack configuration (unless a parameter has that name).
//! A string that is exactly `{{ expr }}` keeps the expression's type (so `size` above is
//! sent as a number when the parameter is one); text around `{{ }}` makes a string.
//!
//! # Result
//!
//! `{status, headers, body}`: the status code, the response headers (lower-case names;
//! repeated headers joined with `, `) and the body, parsed when it is JSON, else as text.
//! A status outside `expect_status` fails the execution with `HTTP 404 Not Found from GET
//! <url>`, the response still in the result. Connection errors, timeouts and bad rendered
//! values fail it with a message saying which.

use super::{ActionOutcome, RunContext, Runner};
use async_trait::async_trait;
use indexmap::IndexMap;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map};
use squall_core::config::Reference;
use squall_core::content::Action;
use squall_core::expr::{ExprError, Template, Vars};
use squall_core::model::Json;
use std::time::Duration;

/// Largest response body read; a bigger one fails the execution.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Methods accepted in `http.method` (case-insensitive).
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The `http` runner. Holds one HTTP client (connection pool, rustls) for all executions.
pub struct HttpRunner {
    client: Result<Client, String>,
}

impl HttpRunner {
    /// A runner with a fresh client. A client that cannot be built (no TLS roots...) makes
    /// every execution fail with the reason rather than the engine panic.
    pub fn new() -> Self {
        let client = Client::builder()
            .user_agent(concat!("squall/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                format!(
                    "could not set up the HTTP client: {}",
                    squall_core::error_chain(&e)
                )
            });
        HttpRunner { client }
    }
}

impl Default for HttpRunner {
    fn default() -> Self {
        HttpRunner::new()
    }
}

/// The settings of an `http` action.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// The request to send (required).
    #[serde(default)]
    pub http: Option<HttpSpec>,
}

/// The `http:` block of an action run by the `http` runner.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// HTTP method; default GET.
    #[serde(default)]
    pub method: Option<String>,
    /// Request URL; may hold `{{ }}` over the parameters.
    pub url: String,
    /// Request headers; values may hold `{{ }}`.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// JSON body (templated).
    #[serde(default)]
    pub json: Option<Json>,
    /// Raw body (templated).
    #[serde(default)]
    pub body: Option<String>,
    /// Request timeout in seconds.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Status codes that count as success; default any 2xx.
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
}

#[async_trait]
impl Runner for HttpRunner {
    fn name(&self) -> &'static str {
        "http"
    }

    fn reference(&self) -> Reference {
        Reference::settings::<HttpSettings>(
            "Sends one HTTP request rendered from the parameters and returns the status, \
             headers and body (JSON parsed when it is JSON).",
        )
    }

    fn validate(&self, action: &Action) -> Vec<(String, String)> {
        let settings = match action.settings::<HttpSettings>() {
            Ok(s) => s,
            Err(e) => return vec![e.problem("")],
        };
        match &settings.http {
            None => vec![(
                "http".to_string(),
                "the http runner needs an `http:` block with at least `url`".to_string(),
            )],
            Some(spec) => match Request::compile(spec) {
                Ok(req) => req.check_static(),
                Err(problems) => problems,
            },
        }
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        let client = match &self.client {
            Ok(c) => c,
            Err(msg) => return ActionOutcome::failed(msg.clone(), Json::Null),
        };
        let spec = match ctx.action.settings::<HttpSettings>() {
            Ok(HttpSettings { http: Some(spec) }) => spec,
            Ok(HttpSettings { http: None }) => {
                return ActionOutcome::failed("the action has no `http:` block", Json::Null)
            }
            Err(e) => return ActionOutcome::failed(e.to_string(), Json::Null),
        };
        let request = match Request::compile(&spec) {
            Ok(r) => r,
            Err(problems) => return ActionOutcome::failed(join_problems(&problems), Json::Null),
        };
        let mut vars = variables(
            &ctx.parameters,
            &ctx.pack_config,
            ctx.action.meta.parameters.keys(),
        );
        let rendered = match request.render(&mut vars) {
            Ok(r) => r,
            Err((field, msg)) => {
                return ActionOutcome::failed(format!("{field}: {msg}"), Json::Null)
            }
        };
        tokio::select! {
            outcome = send(client, rendered, &request.expect_status) => outcome,
            _ = ctx.cancel.cancelled() => ActionOutcome::canceled(Json::Null),
        }
    }
}

/// The template variables: each parameter, `params`, and `config`. A declared parameter
/// that was not given and has no default (`default: null` included) is `()`, so that a
/// template can use it rather than fail on an unknown variable.
fn variables<'a>(params: &Json, config: &Json, declared: impl Iterator<Item = &'a String>) -> Vars {
    let empty = Map::new();
    let map = params.as_object().unwrap_or(&empty);
    let mut vars = Vars::from_map(map);
    for name in declared {
        if !map.contains_key(name) {
            vars.set(name, &Json::Null);
        }
    }
    if !map.contains_key("config") {
        vars.set("config", config);
    }
    vars.set("params", params);
    vars
}

/// How the request body is given.
enum Body {
    None,
    Json(Template),
    Text(Template),
}

/// The method: fixed, or a template over the parameters (`method: "{{ method }}"`).
enum MethodSpec {
    Fixed(Method),
    Templated(Template),
}

/// A method name that is not one of [`METHODS`].
#[derive(Debug, thiserror::Error)]
#[error("unknown method `{0}`; use one of {methods}", methods = METHODS.join(", "))]
struct UnknownMethod(String);

/// Parse a method name, accepting only [`METHODS`].
fn parse_method(name: &str) -> Result<Method, UnknownMethod> {
    let upper = name.trim().to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        return Err(UnknownMethod(name.to_string()));
    }
    Method::from_bytes(upper.as_bytes()).map_err(|_| UnknownMethod(name.to_string()))
}

/// Why a rendered `url` cannot be requested.
#[derive(Debug, thiserror::Error)]
enum UrlError {
    /// It rendered to something other than a string.
    #[error("the URL must be a string, not {0}")]
    NotText(Json),
    /// It does not parse.
    #[error("`{url}` is not a valid URL")]
    Invalid {
        /// The rendered text.
        url: String,
        /// What the parser said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Its scheme is not `http` or `https`.
    #[error("`{url}`: scheme `{scheme}` is not http or https")]
    Scheme {
        /// The rendered text.
        url: String,
        /// Its scheme.
        scheme: String,
    },
}

/// The `http:` block with its templates compiled.
struct Request {
    method: MethodSpec,
    url: Template,
    headers: Vec<(String, Template)>,
    body: Body,
    timeout: Option<Duration>,
    expect_status: Vec<u16>,
}

/// A request ready to send.
struct Rendered {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: RenderedBody,
    timeout: Option<Duration>,
}

enum RenderedBody {
    None,
    Json(Json),
    Text(String),
}

/// The message of an expression error (it already ends with its position when known).
fn describe(e: &ExprError) -> String {
    e.to_string()
}

fn join_problems(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Request {
    /// Compile every template and check the static fields; all problems at once.
    fn compile(spec: &HttpSpec) -> Result<Request, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut template = |field: String, v: Json| match Template::compile(&v) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push((field, describe(&e)));
                None
            }
        };
        let url = template("http.url".into(), Json::String(spec.url.clone()));
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            if let Some(t) = template(format!("http.headers.{name}"), Json::String(value.clone())) {
                headers.push((name.clone(), t));
            }
        }
        let json_body = spec
            .json
            .as_ref()
            .and_then(|j| template("http.json".into(), j.clone()));
        let text_body = spec
            .body
            .as_ref()
            .and_then(|b| template("http.body".into(), Json::String(b.clone())));

        let method_src = spec.method.as_deref().unwrap_or("GET");
        let method = if method_src.contains("{{") {
            template("http.method".into(), Json::String(method_src.to_string()))
                .map(MethodSpec::Templated)
        } else {
            parse_method(method_src).ok().map(MethodSpec::Fixed)
        };
        if let (false, Err(e)) = (method_src.contains("{{"), parse_method(method_src)) {
            problems.push(("http.method".to_string(), e.to_string()));
        }
        for name in spec.headers.keys() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push((
                    format!("http.headers.{name}"),
                    "not a valid HTTP header name".to_string(),
                ));
            }
        }
        if spec.json.is_some() && spec.body.is_some() {
            problems.push((
                "http.json".to_string(),
                "give either `json` or `body`, not both".to_string(),
            ));
        }
        let timeout = match spec.timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                problems.push((
                    "http.timeout".to_string(),
                    format!("timeout must be a positive number of seconds, not {t}"),
                ));
                None
            }
        };
        let expect_status = spec.expect_status.clone().unwrap_or_default();
        if let Some(bad) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
            problems.push((
                "http.expect_status".to_string(),
                format!("{bad} is not an HTTP status code (100-599)"),
            ));
        }
        match (url, method) {
            (Some(url), Some(method)) if problems.is_empty() => Ok(Request {
                method,
                url,
                headers,
                body: match (json_body, text_body) {
                    (Some(j), _) => Body::Json(j),
                    (None, Some(t)) => Body::Text(t),
                    (None, None) => Body::None,
                },
                timeout,
                expect_status,
            }),
            _ => Err(problems),
        }
    }

    /// Problems visible without parameters: a URL with no `{{ }}` that is not a URL.
    fn check_static(&self) -> Vec<(String, String)> {
        if !self.url.is_static() {
            return Vec::new();
        }
        match self.url.render(&mut Vars::new()) {
            Ok(v) => match parse_url(&v) {
                Ok(_) => Vec::new(),
                Err(e) => vec![("http.url".to_string(), squall_core::error_chain(&e))],
            },
            Err(e) => vec![("http.url".to_string(), describe(&e))],
        }
    }

    /// Render the templates with `vars`; errors name the field.
    fn render(&self, vars: &mut Vars) -> Result<Rendered, (String, String)> {
        let url = self
            .url
            .render(vars)
            .map_err(|e| ("http.url".to_string(), describe(&e)))
            .and_then(|v| {
                parse_url(&v).map_err(|e| ("http.url".to_string(), squall_core::error_chain(&e)))
            })?;
        let mut headers = HeaderMap::new();
        for (name, t) in &self.headers {
            let field = format!("http.headers.{name}");
            let v = t.render(vars).map_err(|e| (field.clone(), describe(&e)))?;
            let text = text_of(&v);
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| (field.clone(), "not a valid HTTP header name".to_string()))?;
            let value = HeaderValue::from_str(&text).map_err(|_| {
                (
                    field.clone(),
                    "the rendered value is not a valid header value (control characters?)"
                        .to_string(),
                )
            })?;
            headers.append(name, value);
        }
        let body = match &self.body {
            Body::None => RenderedBody::None,
            // A `json` that renders to null sends no body (`json: "{{ body }}"` with no body).
            Body::Json(t) => match t
                .render(vars)
                .map_err(|e| ("http.json".to_string(), describe(&e)))?
            {
                Json::Null => RenderedBody::None,
                v => RenderedBody::Json(v),
            },
            Body::Text(t) => RenderedBody::Text(text_of(
                &t.render(vars)
                    .map_err(|e| ("http.body".to_string(), describe(&e)))?,
            )),
        };
        let method = match &self.method {
            MethodSpec::Fixed(m) => m.clone(),
            MethodSpec::Templated(t) => {
                let v = t
                    .render(vars)
                    .map_err(|e| ("http.method".to_string(), describe(&e)))?;
                parse_method(&text_of(&v))
                    .map_err(|e| ("http.method".to_string(), e.to_string()))?
            }
        };
        Ok(Rendered {
            method,
            url,
            headers,
            body,
            timeout: self.timeout,
        })
    }
}

/// A rendered value as text: strings as they are, anything else as JSON.
fn text_of(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_url(v: &Json) -> Result<Url, UrlError> {
    let Json::String(s) = v else {
        return Err(UrlError::NotText(v.clone()));
    };
    let url = Url::parse(s).map_err(|e| UrlError::Invalid {
        url: s.clone(),
        source: Box::new(e),
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(UrlError::Scheme {
            url: s.clone(),
            scheme: other.to_string(),
        }),
    }
}

/// The URL for messages, without a password in it.
fn shown_url(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("********"));
    }
    u.to_string()
}

fn request_error(
    e: &reqwest::Error,
    method: &Method,
    url: &str,
    timeout: Option<Duration>,
) -> String {
    if e.is_timeout() {
        let after = timeout.map_or(String::new(), |t| format!(" after {}s", t.as_secs_f64()));
        return format!("{method} {url} timed out{after}");
    }
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "could not read the response"
    } else if e.is_redirect() {
        "too many redirects"
    } else {
        "request failed"
    };
    // Drop reqwest's generic outer layer ("error sending request for url (...)").
    let detail = match std::error::Error::source(e) {
        Some(s) => squall_core::error_chain(s),
        None => e.to_string(),
    };
    format!("{method} {url}: {what}: {detail}")
}

/// Send the request and read the response.
async fn send(client: &Client, req: Rendered, expect: &[u16]) -> ActionOutcome {
    let shown = shown_url(&req.url);
    let method = req.method.clone();
    let mut builder = client.request(req.method, req.url).headers(req.headers);
    if let Some(t) = req.timeout {
        builder = builder.timeout(t);
    }
    builder = match req.body {
        RenderedBody::None => builder,
        RenderedBody::Json(j) => builder.json(&j),
        RenderedBody::Text(t) => builder.body(t),
    };
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) => {
            return ActionOutcome::failed(
                request_error(&e, &method, &shown, req.timeout),
                Json::Null,
            )
        }
    };
    let status = response.status();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Json::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_string(), Json::String(value));
            }
        }
    }
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_BODY {
                    return ActionOutcome::failed(
                        format!(
                            "{method} {shown}: the response body is larger than {} MiB",
                            MAX_BODY / (1024 * 1024)
                        ),
                        json!({"status": status.as_u16(), "headers": headers, "body": Json::Null}),
                    );
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return ActionOutcome::failed(
                    request_error(&e, &method, &shown, req.timeout),
                    json!({"status": status.as_u16(), "headers": headers, "body": Json::Null}),
                )
            }
        }
    }
    let body = parse_body(&bytes);
    let result = json!({"status": status.as_u16(), "headers": headers, "body": body});
    let ok = if expect.is_empty() {
        status.is_success()
    } else {
        expect.contains(&status.as_u16())
    };
    if ok {
        ActionOutcome::succeeded(result)
    } else {
        let code = status.as_u16();
        let message = match status.canonical_reason() {
            Some(reason) => format!("HTTP {code} {reason} from {method} {shown}"),
            None => format!("HTTP {code} from {method} {shown}"),
        };
        ActionOutcome::failed(message, result)
    }
}

/// The body as JSON when it parses as JSON (whatever the content type says), else as text.
fn parse_body(bytes: &[u8]) -> Json {
    let text = String::from_utf8_lossy(bytes);
    if !text.trim().is_empty() {
        if let Ok(v) = serde_json::from_str::<Json>(&text) {
            return v;
        }
    }
    Json::String(text.into_owned())
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
