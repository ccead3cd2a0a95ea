//! The aws pack's connection settings (`config/aws.yaml`) and the SDK clients built from
//! them, shared by the `aws.*` runners and the `aws.rds.poll` sensor.
//!
//! ```yaml
//! default_account: default
//! accounts:
//!   default:
//!     region: eu-west-1
//!     profile: null            # a named profile from ~/.aws/config
//!     access_key_id: null      # static credentials
//!     secret_access_key: null  # (secret)
//!     session_token: null      # (secret)
//!     role_arn: null           # assume this role (STS) on top of the base credentials
//!     external_id: null
//!     session_name: squall
//!     endpoint_url: null       # e.g. a moto server in tests
//! ```
//!
//! An account without static credentials or a profile uses the SDK's default provider
//! chain (environment, shared config files, web identity, ECS, IMDS). The account named
//! `default` needs no entry at all: without one it is "the default chain, region from the
//! environment". Clients are built once per account settings and region, and cached.

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_rds::config::http::HttpResponse;
use aws_sdk_rds::config::SharedHttpClient;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use serde::{Deserialize, Serialize};
use squall_core::locks::MutexExt;
use squall_core::model::Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// The account used when neither an action nor `default_account` names one.
pub const DEFAULT_ACCOUNT: &str = "default";
/// STS session name used when an account or action gives none.
pub const DEFAULT_SESSION_NAME: &str = "squall";
/// Where the settings live, for messages.
const FILE: &str = "config/aws.yaml";

/// One named AWS account of `config/aws.yaml`. Empty strings count as absent.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Region of the account's clients (an action's `region` overrides it).
    #[serde(default)]
    pub region: Option<String>,
    /// A named profile of the shared AWS config files.
    #[serde(default)]
    pub profile: Option<String>,
    /// Static access key id (with `secret_access_key`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Static secret access key (secret: masked everywhere).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary static credentials (secret).
    #[serde(default)]
    pub session_token: Option<String>,
    /// A role to assume with STS on top of the base credentials.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// External id required by the role's trust policy.
    #[serde(default)]
    pub external_id: Option<String>,
    /// STS session name when assuming `role_arn` (default `squall`).
    #[serde(default)]
    pub session_name: Option<String>,
    /// Endpoint override for every service (a moto server in tests).
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| squall_core::model::MASK);
        f.debug_struct("Account")
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id)
            .field("session_name", &self.session_name)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

impl Account {
    fn normalize(&mut self) {
        for v in [
            &mut self.region,
            &mut self.profile,
            &mut self.access_key_id,
            &mut self.secret_access_key,
            &mut self.session_token,
            &mut self.role_arn,
            &mut self.external_id,
            &mut self.session_name,
            &mut self.endpoint_url,
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
    }

    /// Combinations that cannot work, as `(field, message)`.
    fn check(&self) -> Option<(&'static str, String)> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => {
                return Some((
                    "secret_access_key",
                    "access_key_id is set but secret_access_key is missing".into(),
                ))
            }
            (None, Some(_)) => {
                return Some((
                    "access_key_id",
                    "secret_access_key is set but access_key_id is missing".into(),
                ))
            }
            _ => {}
        }
        if self.session_token.is_some() && self.access_key_id.is_none() {
            return Some((
                "session_token",
                "session_token needs access_key_id and secret_access_key".into(),
            ));
        }
        if self.profile.is_some() && self.access_key_id.is_some() {
            return Some((
                "profile",
                "give either `profile` or static keys (access_key_id/secret_access_key), not both"
                    .into(),
            ));
        }
        if self.external_id.is_some() && self.role_arn.is_none() {
            return Some((
                "external_id",
                "external_id is only used with role_arn; set role_arn or remove it".into(),
            ));
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Some((
                    "endpoint_url",
                    format!("endpoint_url `{url}` must start with http:// or https://"),
                ));
            }
        }
        None
    }
}

/// The parsed `config/aws.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    /// Account used when an action or sensor names none.
    pub default_account: String,
    /// Accounts by name.
    pub accounts: BTreeMap<String, Account>,
}

/// Parse the aws pack configuration (`{}` when there is none). Errors name the file and
/// the field (`accounts.prod.regoin`). Secret keys and session tokens are registered as
/// secrets so that they are masked wherever they might appear.
pub fn parse(pack_config: &Json) -> Result<AwsSettings, String> {
    let default_account = match pack_config.get("default_account") {
        None | Some(Json::Null) => DEFAULT_ACCOUNT.to_string(),
        Some(Json::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(other) => {
            return Err(format!(
                "{FILE}: default_account must be an account name, got {other}"
            ))
        }
    };
    let mut accounts = BTreeMap::new();
    match pack_config.get("accounts") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => {
            for (name, value) in map {
                let value = if value.is_null() {
                    Json::Object(Default::default())
                } else {
                    value.clone()
                };
                let mut account: Account =
                    serde_path_to_error::deserialize(value).map_err(|e| {
                        let path = e.path().to_string();
                        let at = if path == "." {
                            format!("accounts.{name}")
                        } else {
                            format!("accounts.{name}.{path}")
                        };
                        format!("{FILE}: {at}: {}", e.inner())
                    })?;
                account.normalize();
                if let Some((field, msg)) = account.check() {
                    return Err(format!("{FILE}: accounts.{name}.{field}: {msg}"));
                }
                for secret in [&account.secret_access_key, &account.session_token]
                    .into_iter()
                    .flatten()
                {
                    squall_core::secrets::register(secret);
                }
                accounts.insert(name.clone(), account);
            }
        }
        Some(other) => {
            return Err(format!(
                "{FILE}: accounts must be a map of account name to settings, got {other}"
            ))
        }
    }
    Ok(AwsSettings {
        default_account,
        accounts,
    })
}

impl AwsSettings {
    /// The account `name` (else the default account) with its name. The `default` account
    /// without an entry is the SDK's default chain.
    pub fn account(&self, name: Option<&str>) -> Result<(String, Account), String> {
        let name = name.unwrap_or(&self.default_account);
        if let Some(a) = self.accounts.get(name) {
            return Ok((name.to_string(), a.clone()));
        }
        if name == DEFAULT_ACCOUNT {
            return Ok((name.to_string(), Account::default()));
        }
        let known: Vec<&str> = self.accounts.keys().map(String::as_str).collect();
        Err(format!(
            "AWS account `{name}` is not configured: add it under `accounts:` in {FILE} (configured: {})",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    }
}

/// The clients of one account in one region.
pub struct Aws {
    /// Account name.
    pub account: String,
    /// Region the clients talk to.
    pub region: String,
    /// The endpoint override, when configured.
    pub endpoint_url: Option<String>,
    /// RDS client.
    pub rds: aws_sdk_rds::Client,
    /// STS client.
    pub sts: aws_sdk_sts::Client,
}

impl Aws {
    /// What `service` ("RDS", "STS") is reached at, for messages.
    pub fn target(&self, service: &str) -> String {
        match &self.endpoint_url {
            Some(url) => format!("the {service} endpoint {url}"),
            None => format!(
                "the {service} endpoint of region {} (account `{}`)",
                self.region, self.account
            ),
        }
    }
}

/// One rustls (ring) HTTPS client for every SDK client of the process.
fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

fn cache() -> &'static Mutex<HashMap<String, Arc<Aws>>> {
    static C: OnceLock<Mutex<HashMap<String, Arc<Aws>>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The clients for `account` (else the default account) in `region` (else the
/// account's region, else the SDK's region chain), built from the pack configuration.
pub async fn connect(
    pack_config: &Json,
    account: Option<&str>,
    region: Option<&str>,
) -> Result<Arc<Aws>, String> {
    let settings = parse(pack_config)?;
    let (name, acct) = settings.account(account)?;
    let region = region.map(str::to_string).or_else(|| acct.region.clone());
    // Keyed by the settings themselves, so an edited config/aws.yaml takes effect.
    let key = format!(
        "{name}\n{}\n{}",
        region.as_deref().unwrap_or(""),
        serde_json::to_string(&acct).unwrap_or_default()
    );
    if let Some(c) = cache().locked().get(&key) {
        return Ok(c.clone());
    }
    let sdk = sdk_config(&name, &acct, region.as_deref()).await?;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| {
            format!(
                "no AWS region for account `{name}`: set accounts.{name}.region in {FILE}, pass `region`, or set AWS_REGION"
            )
        })?;
    let aws = Arc::new(Aws {
        account: name,
        region,
        endpoint_url: acct.endpoint_url.clone(),
        rds: aws_sdk_rds::Client::new(&sdk),
        sts: aws_sdk_sts::Client::new(&sdk),
    });
    cache().locked().insert(key, aws.clone());
    Ok(aws)
}

/// The SDK configuration of one account: region, endpoint, base credentials (static,
/// profile or default chain) and, with `role_arn`, credentials assumed through STS.
async fn sdk_config(name: &str, acct: &Account, region: Option<&str>) -> Result<SdkConfig, String> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    if let Some(url) = &acct.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(p) = &acct.profile {
        loader = loader.profile_name(p.clone());
    }
    if let (Some(id), Some(secret)) = (&acct.access_key_id, &acct.secret_access_key) {
        loader = loader.credentials_provider(Credentials::new(
            id.clone(),
            secret.clone(),
            acct.session_token.clone(),
            None,
            "squall-config",
        ));
    }
    let base = loader.load().await;
    let Some(role) = &acct.role_arn else {
        return Ok(base);
    };
    let mut builder = AssumeRoleProvider::builder(role.clone())
        .session_name(
            acct.session_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SESSION_NAME.into()),
        )
        .configure(&base);
    if let Some(id) = &acct.external_id {
        builder = builder.external_id(id.clone());
    }
    if base.region().is_none() {
        return Err(format!(
            "account `{name}` assumes {role} but has no region: set accounts.{name}.region in {FILE}"
        ));
    }
    let provider = builder.build().await;
    Ok(base
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// An SDK error as users should read it: the service's `Code: message`, which endpoint
/// could not be reached and why, or which credentials are missing and where to put them.
pub fn describe_error<E>(e: &SdkError<E, HttpResponse>, aws: &Aws, service: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let target = aws.target(service);
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => format!(
                    "{target} answered HTTP {}: {}",
                    s.raw().status().as_u16(),
                    chain(err)
                ),
            }
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            format!("cannot reach {target}: {}", source_chain(e))
        }
        SdkError::DispatchFailure(_) if source_chain(e).contains("no credentials") => format!(
            "no AWS credentials for account `{a}`: set access_key_id and secret_access_key, or profile, under accounts.{a} in {FILE}, or provide them in the environment ({})",
            source_chain(e),
            a = aws.account,
        ),
        SdkError::TimeoutError(_) => format!("no answer from {target} in time"),
        _ => format!("request to {target} failed: {}", chain(e)),
    }
}

/// An error and its sources, `a: b: c`, without repeating a message its source repeats.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The sources of `e` without its own (generic) message such as "dispatch failure".
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    e.source().map(chain).unwrap_or_else(|| e.to_string())
}

/// The service error code of `e`, when the service answered with one.
pub fn error_code<E>(e: &SdkError<E, HttpResponse>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}
