//! What went wrong with an object store, in the user's terms: the store's own errors sorted
//! into "does not answer", "no such bucket", "credentials refused", "no such object" and the
//! rest ([`Failure`]), and the one message per case a runner check gives ([`ObjectStoreError`]).

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

use super::config::{Credentials, Target};
use crate::{BlobError, CheckProblem};

/// Why an object store cannot be used, naming the runner and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    /// The `artifacts:` block (or the credentials in the environment) cannot work as written.
    #[error("runner `{runner}`: artifacts: {reason}")]
    Invalid { runner: String, reason: String },
    /// Nothing answers at the endpoint (refused, timed out, no such host).
    #[error(
        "runner `{runner}`: the artifact store at {endpoint} does not answer ({detail}): check \
         artifacts.endpoint in runners.yaml and that the server is up and reachable from here"
    )]
    Unreachable {
        runner: String,
        endpoint: String,
        detail: String,
    },
    /// The server answers but has no such bucket.
    #[error(
        "runner `{runner}`: bucket `{bucket}` does not exist at {endpoint}: create it, or fix \
         artifacts.url in runners.yaml"
    )]
    NoBucket {
        runner: String,
        bucket: String,
        endpoint: String,
    },
    /// The credentials were refused (401/403), or could not be had.
    #[error("runner `{runner}`: no access to {url} at {endpoint} ({detail}): {fix}")]
    Credentials {
        runner: String,
        endpoint: String,
        url: String,
        detail: String,
        fix: String,
    },
    /// Anything else the store answered.
    #[error("runner `{runner}`: artifact store {url}: {detail}")]
    Other {
        runner: String,
        url: String,
        detail: String,
    },
}

impl ObjectStoreError {
    /// The kind of problem, as `tuna runners check` reports it.
    pub fn problem(&self) -> CheckProblem {
        match self {
            ObjectStoreError::Unreachable { .. } => CheckProblem::Unreachable,
            ObjectStoreError::Credentials { .. } => CheckProblem::AuthFailed,
            ObjectStoreError::Invalid { .. }
            | ObjectStoreError::NoBucket { .. }
            | ObjectStoreError::Other { .. } => CheckProblem::Broken,
        }
    }

    /// The message as a [`BlobError`] (an unreachable store stays unreachable).
    pub(crate) fn into_blob_error(self) -> BlobError {
        match self {
            ObjectStoreError::Unreachable { .. } => BlobError::Unreachable(self.to_string()),
            _ => BlobError::Other(self.to_string()),
        }
    }
}

/// An error of the store, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Unreachable(String),
    NoBucket,
    Denied(String),
    NotFound,
    Other(String),
}

impl Failure {
    pub fn of(e: &object_store::Error) -> Failure {
        let text = e.to_string();
        let code = tag(&text, "Code");
        if let Some(kind) = http_kind(e)
            && matches!(kind, HttpErrorKind::Connect | HttpErrorKind::Timeout)
        {
            return Failure::Unreachable(root_cause(e));
        }
        match code {
            Some("NoSuchBucket") => return Failure::NoBucket,
            Some(
                c @ ("InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidToken"
                | "TokenRefreshRequired"),
            ) => {
                let message = tag(&text, "Message").unwrap_or_default();
                return Failure::Denied(format!("{c}: {message}").trim_end_matches(": ").into());
            }
            _ => {}
        }
        match e {
            object_store::Error::NotFound { .. } => Failure::NotFound,
            object_store::Error::PermissionDenied { .. } => Failure::Denied("403 Forbidden".into()),
            object_store::Error::Unauthenticated { .. } => {
                Failure::Denied("401 Unauthorized".into())
            }
            _ => Failure::Other(text),
        }
    }

    /// The failure as the error of a check or setup step.
    pub fn into_error(self, target: &Target) -> ObjectStoreError {
        let runner = target.runner.clone();
        match self {
            Failure::Unreachable(detail) => ObjectStoreError::Unreachable {
                runner,
                endpoint: target.endpoint.clone(),
                detail,
            },
            Failure::NoBucket => ObjectStoreError::NoBucket {
                runner,
                bucket: target.bucket.clone(),
                endpoint: target.endpoint.clone(),
            },
            Failure::Denied(detail) => ObjectStoreError::Credentials {
                runner,
                endpoint: target.endpoint.clone(),
                url: target.url.clone(),
                detail,
                fix: target.credentials_fix(),
            },
            Failure::NotFound => ObjectStoreError::Other {
                runner,
                url: target.url.clone(),
                detail: "not found".into(),
            },
            Failure::Other(detail) => ObjectStoreError::Other {
                runner,
                url: target.url.clone(),
                detail,
            },
        }
    }
}

/// The store's error `e` in the user's terms, for the runner of `target`.
pub(crate) fn classify(target: &Target, e: &object_store::Error) -> ObjectStoreError {
    let failure = Failure::of(e);
    // Without keys in the environment, the client first asks the machine's metadata service:
    // a failure of a request that did not go to the store is a failure to get credentials.
    if matches!(target.credentials, Credentials::Ambient)
        && matches!(failure, Failure::Unreachable(_) | Failure::Other(_))
        && !e.to_string().contains(&target.endpoint)
    {
        return Failure::Denied(format!(
            "getting credentials from this machine's metadata service failed: {}",
            root_cause(e)
        ))
        .into_error(target);
    }
    failure.into_error(target)
}

/// The store's error `e` as a [`BlobError`], for the runner of `target`.
pub(crate) fn blob_error(target: &Target, e: &object_store::Error) -> BlobError {
    classify(target, e).into_blob_error()
}

/// The kind of the transport error inside `e`, if it is one.
fn http_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<HttpError>() {
            return Some(h.kind());
        }
        cur = err.source();
    }
    None
}

/// The innermost cause of `e` ("Connection refused (os error 111)").
fn root_cause(e: &object_store::Error) -> String {
    let mut last: &(dyn StdError + 'static) = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The text of the first `<name>…</name>` element of an S3 error body quoted in `text`.
fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let len = text[start..].find(&format!("</{name}>"))?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_come_out_of_an_error_body() {
        let body = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\
            <Error><Code>InvalidAccessKeyId</Code><Message>The key does not exist.</Message></Error>";
        assert_eq!(super::tag(body, "Code"), Some("InvalidAccessKeyId"));
        assert_eq!(super::tag(body, "Message"), Some("The key does not exist."));
        assert_eq!(super::tag(body, "RequestId"), None);
    }
}
