//! `aws.sts.assume_role`: temporary credentials for a role. The secret key and session
//! token are registered as secrets, so records and output show them masked while the
//! clear values still flow to the next task of a workflow.

use super::{clients, int32, Outcome};
use crate::aws::config::{describe_error, DEFAULT_SESSION_NAME};
use crate::runners::params::decode;
use crate::runners::RunContext;
use aws_sdk_sts::primitives::DateTimeFormat;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

squall_core::work_runner!(
    /// `aws.sts.assume_role`: `{access_key_id, secret_access_key, session_token,
    /// expiration, assumed_role_arn}`.
    AssumeRole, "aws.sts.assume_role", assume_role, AssumeRoleParams,
    "Assumes an IAM role and returns temporary credentials `{access_key_id, secret_access_key, session_token, expiration, assumed_role_arn}`, the secrets masked in records.",
    crate::runners::aws::guarded
);

/// Parameters of `aws.sts.assume_role` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleParams {
    /// The ARN of the role to assume.
    pub role_arn: String,
    /// The role session name.
    #[serde(default = "session_name")]
    pub session_name: String,
    /// Lifetime of the credentials in seconds (AWS's default, 3600, when absent).
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    /// The external id the role's trust policy requires.
    #[serde(default)]
    pub external_id: Option<String>,
    /// An account under `accounts:` in `config/aws.yaml`; `default_account` when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region; the account's region when absent.
    #[serde(default)]
    pub region: Option<String>,
}

fn session_name() -> String {
    DEFAULT_SESSION_NAME.to_string()
}

async fn assume_role(ctx: &RunContext) -> Outcome {
    let p: AssumeRoleParams = decode(ctx)?;
    let aws = clients(ctx, &p.account, &p.region).await?;
    let out = aws
        .sts
        .assume_role()
        .role_arn(&p.role_arn)
        .role_session_name(&p.session_name)
        .set_duration_seconds(int32("duration_seconds", p.duration_seconds)?)
        .set_external_id(p.external_id.clone())
        .send()
        .await
        .map_err(|e| describe_error(&e, &aws, "STS"))?;
    let creds = out
        .credentials()
        .ok_or("STS accepted the request but returned no credentials")?;
    squall_core::secrets::register(creds.secret_access_key());
    squall_core::secrets::register(creds.session_token());
    let expiration = creds
        .expiration()
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default();
    Ok(json!({
        "access_key_id": creds.access_key_id(),
        "secret_access_key": creds.secret_access_key(),
        "session_token": creds.session_token(),
        "expiration": expiration,
        "assumed_role_arn": out.assumed_role_user().map(|u| u.arn()),
    }))
}
