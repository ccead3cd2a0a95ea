//! `aws.sts.assume_role`: temporary credentials for a role. The secret key and session
//! token are registered as secrets, so records and output show them masked while the
//! clear values still flow to the next task of a workflow.

use super::{clients, opt_i32, Outcome, Params};
use crate::aws::config::{describe_error, DEFAULT_SESSION_NAME};
use crate::runners::RunContext;
use aws_sdk_sts::primitives::DateTimeFormat;
use serde_json::json;

squall_core::work_runner!(
    /// `aws.sts.assume_role`: `{access_key_id, secret_access_key, session_token,
    /// expiration, assumed_role_arn}`.
    AssumeRole, "aws.sts.assume_role", assume_role,
    crate::runners::aws::guarded
);

async fn assume_role(ctx: &RunContext) -> Outcome {
    let p = Params::of(ctx);
    let role = p.str("role_arn")?;
    let session = p.opt_str("session_name")?.unwrap_or(DEFAULT_SESSION_NAME);
    let aws = clients(ctx).await?;
    let out = aws
        .sts
        .assume_role()
        .role_arn(role)
        .role_session_name(session)
        .set_duration_seconds(opt_i32(&p, "duration_seconds")?)
        .set_external_id(p.opt_str("external_id")?.map(str::to_string))
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
